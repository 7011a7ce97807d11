//! The build's record: the one place it is changed and written. A change marks it unsaved; it
//! is written (masked, whole or not at all) when the build next starts or waits on anything
//! outside it, so that the phases a build passes through without waiting cost one write between
//! them, and a runner killed at any moment still leaves a record of what it was doing.

use std::path::{Path, PathBuf};

use crate::env::mask::Masker;
use crate::store::{BuildRecord, StateDir, StateError, write_atomic};

pub(super) struct Recorder {
    state_dir: StateDir,
    /// The build's folder: the record, the log, the environment dumps.
    dir: PathBuf,
    record: BuildRecord,
    /// Whether the record has changed since it was last written.
    unsaved: bool,
    /// Whether `build.json` exists: it is first written once the buildspec has been read
    /// ([`Recorder::start`]).
    recorded: bool,
}

impl Recorder {
    /// The recorder of `record`, in the folder `dir` of `state_dir`; it writes nothing yet.
    pub(super) fn new(state_dir: StateDir, dir: PathBuf, record: BuildRecord) -> Recorder {
        Recorder {
            state_dir,
            dir,
            record,
            unsaved: false,
            recorded: false,
        }
    }

    /// The record as it is now (in clear: what is written is masked).
    pub(super) fn record(&self) -> &BuildRecord {
        &self.record
    }

    /// The record, to change: it is marked unsaved.
    pub(super) fn edit(&mut self) -> &mut BuildRecord {
        self.unsaved = true;
        &mut self.record
    }

    /// Marks the record unsaved.
    pub(super) fn changed(&mut self) {
        self.unsaved = true;
    }

    /// Whether the record changed since it was last written.
    pub(super) fn unsaved(&self) -> bool {
        self.unsaved
    }

    /// The build's folder.
    pub(super) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the record is.
    pub(super) fn path(&self) -> PathBuf {
        self.dir.join("build.json")
    }

    /// The record with every value to hide masked, as it is written.
    pub(super) fn masked(&self, masker: &Masker) -> BuildRecord {
        self.record.masked_by(masker)
    }

    /// Writes the record for the first time (its lease says a runner that dies may leave it
    /// IN_PROGRESS), and makes the build the state directory's last.
    pub(super) fn start(&mut self, masker: &Masker) -> Result<(), StateError> {
        self.state_dir.lease(&self.record.uuid)?;
        self.write(masker, false)?;
        self.recorded = true;
        self.state_dir.set_last(&self.record.uuid)
    }

    /// Writes the record if it changed.
    pub(super) fn save(&mut self, masker: &Masker) -> Result<(), StateError> {
        if !self.unsaved {
            return Ok(());
        }
        self.write(masker, false)
    }

    /// Writes the final record, on the disk before it returns when the state directory
    /// flushes; the build is no longer running, and is the last one even if it never wrote a
    /// record before (a buildspec that does not check).
    pub(super) fn finish(&mut self, masker: &Masker) -> Result<(), StateError> {
        self.write(masker, true)?;
        self.state_dir.release(&self.record.uuid);
        if !self.recorded {
            self.state_dir.set_last(&self.record.uuid)?;
        }
        Ok(())
    }

    /// Gives up the record of a build that could not start: no runner holds it any more.
    pub(super) fn abandon(&self) {
        self.state_dir.release(&self.record.uuid);
    }

    /// Replaces the record; `sync` waits until it is on the disk.
    fn write(&mut self, masker: &Masker, sync: bool) -> Result<(), StateError> {
        self.unsaved = false;
        let masked;
        let record = if masker.is_empty() {
            &self.record
        } else {
            masked = self.record.masked_by(masker);
            &masked
        };
        let mut json = serde_json::to_vec_pretty(record).unwrap_or_default();
        json.push(b'\n');
        let sync = sync && self.state_dir.flushes();
        let path = self.path();
        match write_atomic(&path, &json, sync) {
            // Nor did it fit over the old record's blocks (a record grows as phases end): a
            // compact one may. A record left IN_PROGRESS would say the build never ended.
            Err(e) if e.is_out_of_space() => {
                let mut compact = serde_json::to_vec(record).unwrap_or_default();
                compact.push(b'\n');
                crate::store::overwrite_in_place(&path, &compact, sync).map_err(|_| e)
            }
            written => written,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorder(state: &Path) -> Recorder {
        let state_dir = StateDir::open(state).expect("state");
        let fresh = crate::store::FreshRecord {
            project: "p".into(),
            buildspec: "buildspec.yml".into(),
            source: "/src".into(),
            initiator: "me".into(),
            session: "compat".into(),
            batch: None,
        };
        let uuid = "0b7c5e3c-52b1-4bb4-a1de-0f6c2d7e9a01";
        let dir = state_dir.build_dir(uuid);
        let record = BuildRecord::new(
            uuid,
            1,
            &fresh,
            &dir.join("build.log"),
            jiff::Timestamp::now(),
        );
        std::fs::create_dir_all(&dir).expect("dir");
        Recorder::new(state_dir, dir, record)
    }

    fn on_disk(recorder: &Recorder) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(recorder.path()).expect("a record")).expect("json")
    }

    #[test]
    fn a_change_is_written_once_and_masked() {
        let state = tempfile::tempdir().expect("tempdir");
        let mut recorder = recorder(state.path());
        let masker = Masker::new(["hunter22"]);
        assert!(
            !recorder.path().exists(),
            "nothing is written before the start"
        );
        recorder.start(&masker).expect("start");
        assert!(!recorder.unsaved());
        recorder.edit().project = "p-hunter22".into();
        assert!(recorder.unsaved());
        recorder.save(&masker).expect("save");
        assert!(!recorder.unsaved());
        assert_eq!(on_disk(&recorder)["project"], "p-***");
        assert_eq!(
            recorder.record().project,
            "p-hunter22",
            "kept in clear in memory"
        );
        // Unchanged, it is not written again.
        std::fs::remove_file(recorder.path()).expect("remove");
        recorder.save(&masker).expect("save");
        assert!(!recorder.path().exists());
    }

    #[test]
    fn the_final_record_of_a_build_never_started_still_becomes_the_last() {
        let state = tempfile::tempdir().expect("tempdir");
        let mut recorder = recorder(state.path());
        recorder
            .finish(&Masker::new(Vec::<String>::new()))
            .expect("finish");
        let uuid = &recorder.record().uuid;
        assert_eq!(on_disk(&recorder)["uuid"], uuid.as_str());
        let last = StateDir::open(state.path())
            .expect("state")
            .find(None)
            .expect("the last build");
        assert_eq!(&last.uuid, uuid);
    }
}
