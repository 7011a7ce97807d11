//! The cache: restored at the end of DOWNLOAD_SOURCE, before INSTALL; saved in
//! UPLOAD_ARTIFACTS. A cache problem is logged and never fails the build: a cache only saves
//! time.

use std::path::PathBuf;

use buildspec::model::{Cache as CacheSpec, CacheAction};

use super::Build;
use crate::outputs::artifacts::{self, CollectError, Rules};
use crate::store::cache::{Cache, Save, Saved, Wanted};

impl Build<'_> {
    fn cache_spec(&self) -> Option<CacheSpec> {
        self.plan.as_ref().and_then(|p| p.cache.clone())
    }

    fn open_cache(&mut self) -> Option<Cache> {
        let dir = self
            .options
            .cache_dir
            .clone()
            .unwrap_or_else(|| self.options.state_dir.join("cache"));
        match Cache::open(&dir) {
            Ok(cache) => Some(cache),
            Err(e) => {
                self.message(&format!("Skip cache due to: {e}"));
                None
            }
        }
    }

    /// The entry's key: `cache.key` as the shell evaluates it, or the project's own entry.
    fn cache_key(&mut self, spec: &CacheSpec) -> Option<(String, bool)> {
        match &spec.key {
            Some(expr) => match self.evaluate(&expr.value) {
                Ok(key) if !key.is_empty() => Some((key, true)),
                Ok(_) => {
                    self.message(&format!(
                        "Skip cache due to: the key `{}` is empty",
                        expr.value
                    ));
                    None
                }
                Err(e) => {
                    self.message(&format!("Skip cache due to: {e}"));
                    None
                }
            },
            None => Some((format!("project/{}", self.recorder.record().project), false)),
        }
    }

    pub(super) fn restore_cache(&mut self) {
        let Some(spec) = self.cache_spec() else {
            self.message("Cache is not defined in the buildspec");
            return;
        };
        if spec.paths.0.is_empty() {
            self.message("Skip cache due to: no paths specified to be cached");
            return;
        }
        if spec.action.is_some_and(|a| a.value == CacheAction::Save) {
            self.message("Skip cache restore due to: cache action is save");
            return;
        }
        let Some((key, keyed)) = self.cache_key(&spec) else {
            return;
        };
        let Some(cache) = self.open_cache() else {
            return;
        };
        self.save_record();
        // Fallback keys only apply to a keyed cache, as on CodeBuild.
        let mut fallbacks = Vec::new();
        if keyed {
            for expr in &spec.fallback_keys {
                match self.evaluate(&expr.value) {
                    Ok(prefix) if !prefix.is_empty() => fallbacks.push(prefix),
                    Ok(_) => {}
                    Err(e) => self.message(&format!("warning: fallback key skipped: {e}")),
                }
            }
        }
        let Some(found) = cache.find(&key, &fallbacks) else {
            self.message(&format!("Cache miss: no cache entry for key {key}"));
            return;
        };
        self.message(&format!(
            "Restoring cache from key {} (saved {} by build {})",
            found.key, found.saved, found.build
        ));
        let source = PathBuf::from(&self.recorder.record().source);
        let paths: Vec<String> = spec.paths.0.iter().map(|p| self.expand(&p.value)).collect();
        let (wanted, warnings) = Wanted::new(&paths);
        for warning in &warnings {
            self.message(warning);
        }
        // Written as the first phase's user (the build is at that user already): the cache
        // writes nowhere that user could not.
        let user = self.current_user();
        let writer = artifacts::Identity::user(user.as_ref());
        match cache.restore(&found.key, &source, &wanted, writer) {
            Ok(restored) => {
                self.message(&format!(
                    "Restored {} file(s) from the cache",
                    restored.files
                ));
                if restored.skipped_count > 0 {
                    self.message(&format!(
                        "warning: {} file(s) of the cache entry were not restored:",
                        restored.skipped_count
                    ));
                    for line in &restored.skipped {
                        self.message(&format!("warning:   {line}"));
                    }
                    let more = restored.skipped_count - restored.skipped.len();
                    if more > 0 {
                        self.message(&format!("warning:   and {more} more"));
                    }
                }
            }
            Err(e) => self.message(&format!("warning: the cache could not be restored: {e}")),
        }
    }

    pub(super) fn save_cache(&mut self) {
        let Some(spec) = self.cache_spec() else {
            return;
        };
        if spec.paths.0.is_empty() || spec.action.is_some_and(|a| a.value == CacheAction::Restore) {
            return;
        }
        // A failed build's dependencies may be half installed: they must not become the entry
        // the next builds start from (a keyed one could never be replaced).
        if !self.succeeding {
            self.message("Skip cache save due to: the build failed");
            return;
        }
        let Some((key, keyed)) = self.cache_key(&spec) else {
            return;
        };
        let Some(cache) = self.open_cache() else {
            return;
        };
        self.save_record();
        let (absolute, relative): (Vec<String>, Vec<String>) = spec
            .paths
            .0
            .iter()
            .map(|p| self.expand(&p.value))
            .partition(|p| p.starts_with('/'));
        let source = PathBuf::from(&self.recorder.record().source);
        // Saved as the last phase's user: the cache takes nothing that user could not read.
        let user = self.current_user();
        let reader = artifacts::Identity::user(user.as_ref());
        let mut collections = [None, None];
        for (slot, (files, base)) in collections
            .iter_mut()
            .zip([(relative, None), (absolute, Some("/".to_owned()))])
        {
            if files.is_empty() {
                continue;
            }
            let rules = Rules {
                files,
                base_directory: base,
                ..Rules::default()
            };
            match artifacts::collect(&source, &rules, reader) {
                Ok(c) => *slot = Some(c),
                Err(failed) if failed.error == CollectError::NoMatch => {}
                Err(failed) => self.message(&format!("warning: cache: {failed}")),
            }
        }
        let [relative, absolute] = collections;
        if relative.is_none() && absolute.is_none() {
            self.message("Skip cache save due to: no files matched the cache paths");
            return;
        }
        self.message(&format!("Saving cache under key {key}"));
        let save = Save {
            key: &key,
            replace: !keyed,
            relative: relative.as_ref(),
            absolute: absolute.as_ref(),
            build: &self.recorder.record().id,
            reader,
        };
        match cache.save(&save) {
            Ok(Saved::Saved(n)) => self.message(&format!("Saved {n} file(s) to the cache")),
            Ok(Saved::Exists) => self.message(&format!(
                "Cache entry {key} exists: a keyed entry is never overwritten"
            )),
            Err(e) => self.message(&format!("warning: the cache could not be saved: {e}")),
        }
    }
}
