//! The build's runtime folders: the scripts its shells run and the files in which a command's
//! state comes back to the runner, and who may write where.
//!
//! ```text
//! <base>/buildspec-<uuid>/           the runner's: its own phases' scripts, `update`, `state`
//!                                    and `exit-state`; no one else may enter it (0700)
//! <base>/buildspec-<uuid>-users/     the runner's, 0711: others may pass through, not list it
//!                        <uid>/      a `run-as` user's own (0700): the scripts of that user's
//!                                    phases, and the state files its commands write
//! ```
//!
//! The runner may be root while a phase runs as another user. Nothing that the runner, or a
//! phase of another user, reads, runs or sources lies where a `run-as` phase can write, rename or
//! replace it: a user's folder holds only what that user's own phases run, and its parent is not
//! the user's to change. The runner writes into a user's folder, and reads the state reports
//! from it, as that user ([`platform::as_user`]): a link planted there leads nowhere the user
//! could not go, and a report is read only when it is a regular file of bounded size (a FIFO
//! would block the runner, a huge file fill its memory).

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};

use crate::platform::{self, RunAs};

/// A state report larger than this is refused: the environment a shell can pass on is far
/// smaller (the kernel's limit for a command's arguments and environment is a few MiB).
const REPORT_LIMIT: u64 = 64 * 1024 * 1024;

/// A build's runtime folders.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// The runner's own folder.
    own: PathBuf,
    /// Whether `own` is in memory (removed at the end), or the build folder's `scripts/` (kept
    /// with the record, only its state files removed).
    in_memory: bool,
    /// The parent of the `run-as` users' folders, once there is one.
    users: Option<PathBuf>,
}

impl Runtime {
    /// The runner's folder in memory (`$XDG_RUNTIME_DIR`, else `/dev/shm`), else `scripts/` in
    /// the build's folder: creating a file on a journaled disk costs more than running a trivial
    /// command, and the state files hold secrets in clear.
    pub(crate) fn create(uuid: &str, build_dir: &Path) -> io::Result<Runtime> {
        let bases = [
            std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
            Some(PathBuf::from("/dev/shm")),
        ];
        if let Some(own) = make_in(
            bases.into_iter().flatten(),
            &format!("buildspec-{uuid}"),
            0o700,
        ) {
            return Ok(Runtime {
                own,
                in_memory: true,
                users: None,
            });
        }
        let own = build_dir.join("scripts");
        crate::store::create_private_dir(&own)?;
        Ok(Runtime {
            own,
            in_memory: false,
            users: None,
        })
    }

    /// Makes a folder of its own for each `run-as` user. Their parent must be one every user can
    /// pass through (`/dev/shm`, else the temporary directory): not `$XDG_RUNTIME_DIR`, which is
    /// the runner's user's alone, nor the state directory, which may be in a private home.
    pub(crate) fn add_users(&mut self, uuid: &str, users: &[&RunAs]) -> io::Result<()> {
        if users.is_empty() {
            return Ok(());
        }
        let name = format!("buildspec-{uuid}-users");
        let bases = [PathBuf::from("/dev/shm"), std::env::temp_dir()];
        let parent = make_in(bases.into_iter(), &name, 0o711).ok_or_else(|| {
            io::Error::other("neither /dev/shm nor the temporary directory can hold them")
        })?;
        self.users = Some(parent.clone());
        for user in users {
            let dir = parent.join(user.uid.to_string());
            fs::DirBuilder::new().mode(0o700).create(&dir)?;
            platform::give_to(&dir, user)?;
        }
        Ok(())
    }

    /// The folder of `user`'s phases (the runner's own for `None`).
    pub(crate) fn dir(&self, user: Option<&RunAs>) -> PathBuf {
        match (user, &self.users) {
            (Some(user), Some(parent)) => parent.join(user.uid.to_string()),
            _ => self.own.clone(),
        }
    }

    /// Removes what the build left: the folders in memory, or, for a folder kept with the
    /// record, the files that hold values in clear.
    pub(crate) fn remove(&self) {
        if self.in_memory {
            let _ = fs::remove_dir_all(&self.own);
        } else {
            for name in ["update", "state", "exit-state"] {
                let _ = fs::remove_file(self.own.join(name));
            }
        }
        if let Some(users) = &self.users {
            let _ = fs::remove_dir_all(users);
        }
    }
}

/// Creates `<base>/<name>` with `mode` in the first base that allows it.
fn make_in(bases: impl Iterator<Item = PathBuf>, name: &str, mode: u32) -> Option<PathBuf> {
    bases.filter(|b| b.is_dir()).find_map(|base| {
        let dir = base.join(name);
        fs::DirBuilder::new().mode(mode).create(&dir).ok()?;
        // The umask may have taken bits away.
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(mode)).ok()?;
        Some(dir)
    })
}

/// Removes the runtime folders a build left, wherever they are: for a build whose runner died
/// (a killed worker, a runner killed with SIGKILL), on behalf of that runner.
pub(crate) fn remove_left(uuid: &str) {
    let bases = [
        std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from),
        Some(PathBuf::from("/dev/shm")),
        Some(std::env::temp_dir()),
    ];
    for base in bases.into_iter().flatten() {
        for name in [
            format!("buildspec-{uuid}"),
            format!("buildspec-{uuid}-users"),
        ] {
            let dir = base.join(name);
            // A link in its place is not followed (remove_dir_all removes the link).
            if fs::symlink_metadata(&dir).is_ok() {
                let _ = fs::remove_dir_all(&dir);
            }
        }
    }
}

/// Writes a file of `dir` that `user`'s shell reads (a script, an update), as that user: it is
/// theirs, and a link they put in its place leads only where they could write themselves.
pub(crate) fn write(dir: &Path, user: Option<&RunAs>, name: &str, bytes: &[u8]) -> io::Result<()> {
    let path = dir.join(name);
    platform::as_user(user, || crate::store::write_private(&path, bytes))?
}

/// Reads and removes a state report that `user`'s shell wrote in `dir`; `None` when there is
/// none (a command that ended with `exit` writes none). Read as that user, and only a regular
/// file of bounded size: a link to a file the user cannot read, a FIFO, a device, or a file
/// larger than any report is an error, not something the runner reads.
pub(crate) fn take(dir: &Path, user: Option<&RunAs>, name: &str) -> io::Result<Option<Vec<u8>>> {
    let path = dir.join(name);
    let read = platform::as_user(user, || {
        crate::store::read_regular(&path, REPORT_LIMIT).map_err(|e| {
            io::Error::other(format!(
                "the state report {} is refused: {e}",
                path.display()
            ))
        })
    })?;
    let _ = fs::remove_file(&path);
    read
}
