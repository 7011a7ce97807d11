//! Arbitrary bytes through `buildspec::check`, then `plan()` and `render()`: none may panic.
//!
//! Bytes that are not UTF-8 are read lossily (U+FFFD for each bad sequence), so every input
//! reaches the parser; the file reader rejects such files before `check`, but `check` is public.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    for strict in [false, true] {
        let checked = buildspec::check(
            buildspec::SourceFile::new("fuzz.yml", text.clone()),
            &buildspec::Options { strict },
        );
        let _ = checked.counts();
        let plan = checked.plan();
        // A plan exists exactly when there is no error.
        assert_eq!(plan.is_some(), checked.buildspec.is_some() && !checked.has_errors());
        let _ = checked.render();
    }
});
