//! The state directory: one folder per build, the projects' build numbers, the `last` build, the
//! leases of the builds running, and the completion of a record whose runner could not finish it.
//!
//! ```text
//! <state>/builds/<uuid>/build.json    the record, replaced atomically as the phases change
//!                      /build.log     CodeBuild's log format
//!                      /buildspec.yml the buildspec as run
//!                      /scripts.sh    the generated command scripts, one after the other
//!                      /env/          the environment at the start and at the end, secrets as ***
//! <state>/projects/<project>.counter  build numbers, allocated under a file lock
//! <state>/last                        the uuid of the most recently started build
//! <state>/running/<uuid>              a lease, while the build runs
//! ```

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::error::{StateError, io_error};
use super::files::{create_private_dir, private_file, write_atomic};
use super::record::{BuildRecord, FreshRecord, PhaseRecord, Placement, Verdict};
use crate::events::Phase;
use crate::outcome::{Context, Status, exit};

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    /// Whether final records and build numbers are flushed to the disk as they are written.
    flush_each: bool,
}

impl StateDir {
    /// Opens (and creates) a state directory.
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, StateError> {
        let root = root.into();
        for dir in [root.join("builds"), root.join("projects")] {
            create_private_dir(&dir).map_err(io_error("cannot create", &dir))?;
        }
        // Each build's folder is a hierarchy of its own.
        crate::platform::spread_subdirectories(&root.join("builds"));
        Ok(StateDir {
            root,
            flush_each: true,
        })
    }

    /// A state directory to read, as it is: nothing is created (a command that only reads
    /// records leaves no state directory where there was none).
    pub fn at(root: impl Into<PathBuf>) -> StateDir {
        StateDir {
            root: root.into(),
            flush_each: true,
        }
    }

    /// The same directory, whose final records and build numbers are not flushed to the disk
    /// one by one: [`StateDir::flush`] flushes them all later.
    pub fn flushed_later(self) -> StateDir {
        StateDir {
            flush_each: false,
            ..self
        }
    }

    /// Whether final records are flushed as they are written.
    pub fn flushes(&self) -> bool {
        self.flush_each
    }

    /// Flushes what was written to the directory's filesystem to the disk.
    pub fn flush(&self) -> Result<(), StateError> {
        crate::platform::sync_filesystem(&self.root).map_err(io_error("cannot flush", &self.root))
    }

    /// The directory's path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of a build.
    pub fn build_dir(&self, uuid: &str) -> PathBuf {
        self.root.join("builds").join(uuid)
    }

    /// Allocates the next build number of a project. The counter file is locked while it is read
    /// and written, so runners that start at the same moment get distinct numbers.
    pub fn next_number(&self, project: &str) -> Result<u64, StateError> {
        let name: String = project
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.root.join("projects").join(format!("{name}.counter"));
        let mut file = open_to_write_over(&path)?;
        file.lock().map_err(io_error("cannot lock", &path))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(io_error("cannot read", &path))?;
        let number = text.trim().parse::<u64>().unwrap_or(0) + 1;
        // Written over the old number, which is never longer, rather than truncated first:
        // freeing and allocating the file's block for every build is what costs, not the write.
        let new = format!("{number}\n");
        file.rewind()
            .and_then(|_| file.write_all(new.as_bytes()))
            .and_then(|()| {
                if text.len() > new.len() {
                    file.set_len(new.len() as u64)
                } else {
                    Ok(())
                }
            })
            .and_then(|()| {
                if self.flush_each {
                    file.sync_data()
                } else {
                    Ok(())
                }
            })
            .map_err(io_error("cannot write", &path))?;
        // The lock is released when the file is closed.
        Ok(number)
    }

    /// Records which build started last. Written over the old uuid, which has the same length,
    /// in one write: replacing the file instead (a new file renamed over it) cost every build a
    /// file's creation and deletion, which a journal-less ext4 makes slower with every file
    /// deleted in the minutes before. A reader that catches the write half done reads again
    /// ([`Self::find`]).
    pub fn set_last(&self, uuid: &str) -> Result<(), StateError> {
        use std::os::unix::fs::FileExt;
        let path = self.root.join("last");
        let line = format!("{uuid}\n");
        let file = open_to_write_over(&path)?;
        file.write_all_at(line.as_bytes(), 0)
            .and_then(|()| {
                // Only a file written otherwise (by hand, or a uuid of another form) is longer.
                if file.metadata()?.len() > line.len() as u64 {
                    file.set_len(line.len() as u64)?;
                }
                Ok(())
            })
            .map_err(io_error("cannot write", &path))
    }

    /// The uuid `last` holds. A read that caught a write half done names no build; the next
    /// read, a moment later, finds the whole uuid.
    fn last(&self) -> Result<BuildRecord, StateError> {
        let path = self.root.join("last");
        let mut attempts = 0;
        loop {
            let uuid =
                fs::read_to_string(&path).map_err(|_| StateError::NotFound("--last".to_owned()))?;
            // Only a uuid names a build: anything else in `last` (written by hand, or half
            // written) is not a path to follow.
            if uuid::Uuid::parse_str(uuid.trim()).is_err() {
                if attempts < 3 {
                    attempts += 1;
                    continue;
                }
                return Err(StateError::NotFound("--last".to_owned()));
            }
            match self.read(uuid.trim()) {
                Err(StateError::Io { .. }) if attempts < 3 => attempts += 1,
                read => return read,
            }
        }
    }

    /// Reads a record.
    pub fn read(&self, uuid: &str) -> Result<BuildRecord, StateError> {
        let path = self.build_dir(uuid).join("build.json");
        let text = fs::read(&path).map_err(io_error("cannot read", &path))?;
        serde_json::from_slice(&text).map_err(|source| StateError::Corrupt {
            path: path.display().to_string(),
            source,
        })
    }

    /// Finds a build by uuid, `project:uuid` id, a unique prefix of either, or `--last`.
    pub fn find(&self, query: Option<&str>) -> Result<BuildRecord, StateError> {
        let Some(query) = query else {
            return self.last();
        };
        // `project:uuid` must match its project too; a bare uuid (or prefix) matches any.
        let (project, wanted) = match query.rsplit_once(':') {
            Some((project, uuid)) => (Some(project), uuid),
            None => (None, query),
        };
        let dir = self.root.join("builds");
        let mut matches = Vec::new();
        let entries = match fs::read_dir(&dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(StateError::NotFound(query.to_owned()));
            }
            listed => listed.map_err(io_error("cannot list", &dir))?,
        };
        for entry in entries {
            let entry = entry.map_err(io_error("cannot list", &dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(wanted) {
                matches.push(name);
            }
        }
        if let Some(project) = project {
            matches.retain(|uuid| self.read(uuid).is_ok_and(|r| r.project == project));
        }
        if let Some(exact) = matches.iter().find(|m| *m == wanted) {
            return self.read(exact);
        }
        match matches.len() {
            0 => Err(StateError::NotFound(query.to_owned())),
            1 => self.read(&matches[0]),
            _ => Err(StateError::Ambiguous {
                query: query.to_owned(),
                matches,
            }),
        }
    }
}

impl StateDir {
    fn leases_dir(&self) -> PathBuf {
        self.root.join("running")
    }

    /// Takes the lease of a build that starts (`running/<uuid>`): it says the build's record
    /// may be left IN_PROGRESS by a runner that dies, for [`crate::store::abandoned::recover`] to find.
    pub(crate) fn lease(&self, uuid: &str) -> Result<(), StateError> {
        let dir = self.leases_dir();
        let path = dir.join(uuid);
        match private_file(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                create_private_dir(&dir).map_err(io_error("cannot create", &dir))?;
                private_file(&path).map_err(io_error("cannot create", &path))?;
            }
            made => {
                made.map_err(io_error("cannot create", &path))?;
            }
        }
        Ok(())
    }

    /// Lets go of a build's lease: its record is final.
    pub(crate) fn release(&self, uuid: &str) {
        let _ = fs::remove_file(self.leases_dir().join(uuid));
    }

    /// The builds that hold a lease: running, or left IN_PROGRESS by a runner that died.
    pub(crate) fn leases(&self) -> Vec<String> {
        fs::read_dir(self.leases_dir())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| uuid::Uuid::parse_str(name).is_ok())
            .collect()
    }

    /// Claims a lease for this process, so that of two commands that found the same dead
    /// build one ends it; false when another got there first.
    pub(crate) fn claim(&self, uuid: &str) -> bool {
        let dir = self.leases_dir();
        let claimed = dir.join(format!(".ending-{uuid}-{}", std::process::id()));
        let won = fs::rename(dir.join(uuid), &claimed).is_ok();
        if won {
            let _ = fs::remove_file(claimed);
        }
        won
    }

    /// Completes the record of build `uuid` after its runner is gone. A record still IN_PROGRESS
    /// (the runner was killed) ends with the verdict: its open phase closed with the verdict's
    /// context, the end time and exit code set, a line added to the log. A record that ended
    /// takes the verdict's status only when `overrides` (the scheduler ended the build for a
    /// reason of its own, such as its time limit). A build that never wrote a record (it never
    /// started) gets one, with an empty phase list, and a log that says why. The placement, when
    /// given, is recorded in every case.
    pub fn complete(
        &self,
        uuid: &str,
        fresh: &FreshRecord,
        verdict: Option<&Verdict>,
        overrides: bool,
        placement: Option<Placement>,
    ) -> Result<BuildRecord, StateError> {
        let dir = self.build_dir(uuid);
        let log_path = dir.join("build.log");
        let now = Timestamp::now();
        let mut record = match self.read(uuid) {
            Ok(record) => record,
            Err(StateError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                create_private_dir(&dir).map_err(io_error("cannot create", &dir))?;
                let number = self.next_number(&fresh.project)?;
                let mut record = BuildRecord::new(uuid, number, fresh, &log_path, now);
                // It never left the queue: the verdict closes that phase.
                record.phases.push(PhaseRecord {
                    phase: Phase::Queued,
                    status: Status::InProgress,
                    start_time: now,
                    end_time: None,
                    duration_ms: None,
                    contexts: Vec::new(),
                    attempts: 1,
                });
                record
            }
            Err(e) => return Err(e),
        };
        let unfinished = record.status == Status::InProgress;
        if let Some(verdict) = verdict.filter(|_| unfinished || overrides) {
            record.status = verdict.status;
            let context = Context::new(verdict.status_code, verdict.message.clone());
            match record
                .phases
                .iter_mut()
                .rev()
                .find(|p| p.end_time.is_none())
            {
                Some(phase) => {
                    phase.status = verdict.status;
                    phase.end_time = Some(now);
                    phase.duration_ms = Some(
                        u64::try_from(now.duration_since(phase.start_time).as_millis().max(0))
                            .unwrap_or(0),
                    );
                    phase.contexts.push(context);
                }
                None => {
                    if let Some(phase) = record.phases.last_mut() {
                        phase.contexts.push(context);
                    }
                }
            }
            record.end_time.get_or_insert(now);
            record.exit_code = Some(
                verdict
                    .exit_code
                    .unwrap_or_else(|| exit::of(verdict.status, None, false)),
            );
            let line = format!(
                "[Container] {} {}: {}\n",
                crate::events::log_time(now),
                verdict.status_code.as_str(),
                verdict.message
            );
            let appended = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&log_path)
                .and_then(|mut log| log.write_all(line.as_bytes()));
            appended.map_err(io_error("cannot write", &log_path))?;
        }
        if placement.is_some() {
            record.placement = placement;
        }
        let mut json = serde_json::to_vec_pretty(&record).unwrap_or_default();
        json.push(b'\n');
        write_atomic(&dir.join("build.json"), &json, true)?;
        self.release(uuid);
        Ok(record)
    }
}

/// Opens (or creates) a private file to read and to write over in place, keeping what it holds.
fn open_to_write_over(path: &Path) -> Result<File, StateError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io_error("cannot open", path))
}

/// The user's state directory: `$XDG_STATE_HOME/buildspec`, else `~/.local/state/buildspec`.
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("buildspec"));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".local/state/buildspec"))
}

/// The batch records: `<state>/batches/<uuid>.json`.
impl StateDir {
    fn batch_path(&self, uuid: &str) -> PathBuf {
        self.root.join("batches").join(format!("{uuid}.json"))
    }

    /// Writes a batch's record, whole or not at all (it is rewritten as builds start and end:
    /// a reader never sees half of it).
    pub fn write_batch(&self, batch: &super::batch::BatchRecord) -> Result<(), StateError> {
        let dir = self.root.join("batches");
        create_private_dir(&dir).map_err(io_error("cannot create", &dir))?;
        let mut json = serde_json::to_vec_pretty(batch).unwrap_or_default();
        json.push(b'\n');
        write_atomic(&self.batch_path(batch.uuid()), &json, false)
    }

    /// The record of batch `id` (`batch:<uuid>`, or the uuid).
    pub fn read_batch(&self, id: &str) -> Result<super::batch::BatchRecord, StateError> {
        let path = self.batch_path(id.trim_start_matches("batch:"));
        let bytes = fs::read(&path).map_err(io_error("cannot read", &path))?;
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt {
            path: path.display().to_string(),
            source,
        })
    }

    /// The records of every batch whose uuid starts with `prefix` (all for an empty one); the
    /// ones that cannot be read are left out.
    pub fn batches(&self, prefix: &str) -> Vec<super::batch::BatchRecord> {
        let dir = self.root.join("batches");
        fs::read_dir(&dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|name| name.strip_suffix(".json").map(str::to_owned))
            .filter(|uuid| uuid.starts_with(prefix))
            .filter_map(|uuid| self.read_batch(&uuid).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_across_threads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = StateDir::open(dir.path()).expect("open");
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let state = state.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|_| state.next_number("p").expect("number"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().expect("thread"))
            .collect();
        all.sort_unstable();
        assert_eq!(all, (1..=200).collect::<Vec<_>>());
        assert_eq!(state.next_number("other").expect("number"), 1);
    }
}
