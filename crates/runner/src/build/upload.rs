//! UPLOAD_ARTIFACTS: the artifact sets, written where `--artifacts` says.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use buildspec::model::ArtifactSet;

use super::Build;
use crate::events::Phase;
use crate::outcome::{Context, ContextCode, Status};
use crate::outputs::artifacts::{self, Rules, pattern};
use crate::outputs::s3::{S3Config, S3Url, Uploader};
use crate::platform;
use crate::store::ArtifactRecord;

/// Where artifact sets are written.
#[derive(Debug, Clone, Default)]
pub enum Destination {
    /// The build's own `artifacts/` folder in the state directory.
    #[default]
    BuildDir,
    /// A folder: each set lands in `<folder>/<name or identifier>`.
    Dir(PathBuf),
    /// An S3 bucket and prefix: each set is written to the build's own `artifacts/` folder,
    /// then uploaded under `<prefix>/[<s3-prefix>/]<name or identifier>`.
    S3 {
        /// The bucket and prefix.
        url: S3Url,
        /// How to reach it.
        config: S3Config,
    },
}

/// How a set is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Packaging {
    /// A folder per set.
    #[default]
    None,
    /// One zip per set.
    Zip,
}

impl Packaging {
    /// `none` or `zip`, as the record says it.
    pub fn as_str(self) -> &'static str {
        match self {
            Packaging::None => "none",
            Packaging::Zip => "zip",
        }
    }
}

/// How long `artifacts.name` and `cache.key` may take to evaluate.
const EVALUATE_LIMIT: Duration = Duration::from_secs(60);

impl Build<'_> {
    pub(super) fn upload_artifacts(&mut self) {
        self.begin_phase(Phase::UploadArtifacts, 1);
        let sets: Vec<(String, ArtifactSet)> = self
            .plan
            .as_ref()
            .map(|p| {
                p.artifacts
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if !sets.is_empty() {
            // Collecting and sending files takes time: the record shows the phase meanwhile.
            self.save_record();
        }
        // Every set that failed, each with its reason: the first is not the only one to fix.
        let mut failures: Vec<String> = Vec::new();
        let mut uploader = None;
        if let Destination::S3 { url, config } = &self.options.artifacts
            && !sets.is_empty()
        {
            match Uploader::new(url.clone(), config.clone()) {
                Ok(u) => uploader = Some(u),
                Err(e) => failures.push(e.to_string()),
            }
        }
        for (id, set) in &sets {
            if self.deadline.is_some_and(|d| Instant::now() >= d) {
                failures.push("the upload ran out of time".to_owned());
                break;
            }
            let uploaded = self.upload_set(id, set).and_then(|()| match &uploader {
                Some(u) => self.send_set(u, set),
                None => Ok(()),
            });
            if let Err(reason) = uploaded {
                let reason = if id == "primary" {
                    reason
                } else {
                    format!("{id}: {reason}")
                };
                self.message(&format!("Artifact set failed: {reason}"));
                failures.push(reason);
            }
        }
        self.process_reports();
        self.save_cache();
        let failure = (!failures.is_empty()).then(|| failures.join("; "));
        match failure {
            None => self.end_phase(Phase::UploadArtifacts, Status::Succeeded, None, true),
            Some(message) => {
                self.succeeding = false;
                self.end_phase(
                    Phase::UploadArtifacts,
                    Status::Failed,
                    Some(Context::new(ContextCode::ClientError, message)),
                    true,
                );
            }
        }
    }

    pub(super) fn expand(&self, text: &str) -> String {
        pattern::expand_vars(text, &self.shell_state.variables)
    }

    /// Collects one set and writes it; the error is the phase context's message.
    fn upload_set(&mut self, id: &str, set: &ArtifactSet) -> Result<(), String> {
        let rules = Rules {
            files: set.files.0.iter().map(|f| self.expand(&f.value)).collect(),
            base_directory: set.base_directory.as_ref().map(|b| self.expand(&b.value)),
            discard_paths: set.discard_paths.is_some_and(|d| d.value.0),
            exclude: set
                .exclude_paths
                .0
                .iter()
                .map(|f| self.expand(&f.value))
                .collect(),
            enable_symlinks: set.enable_symlinks.is_some_and(|d| d.value.0),
        };
        let name = match &set.name {
            Some(expr) => Some(self.evaluate(&expr.value)?),
            None => None,
        };
        let folder = set_folder(name.as_deref().unwrap_or(id))?;
        let collection = self.collect(&rules).map_err(|e| e.to_string())?;
        let root = match &self.options.artifacts {
            Destination::BuildDir | Destination::S3 { .. } => self.recorder.dir().join("artifacts"),
            Destination::Dir(dir) => dir.clone(),
        };
        let zip = self.options.packaging == Packaging::Zip;
        let mut dest = root.join(&folder);
        if zip && dest.extension().is_none_or(|e| e != "zip") {
            dest.as_mut_os_string().push(".zip");
        }
        if self
            .recorder
            .record()
            .artifacts
            .iter()
            .any(|a| Path::new(&a.location) == dest)
        {
            return Err(format!(
                "{} is already written by another artifact set: give this one a `name`",
                dest.display()
            ));
        }
        let parent = dest.parent().unwrap_or(&root).to_path_buf();
        std::fs::create_dir_all(&parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        let staged = parent.join(format!(
            ".{}.partial-{}",
            dest.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default(),
            self.recorder.record().uuid
        ));
        let user = self.current_user();
        let reader = artifacts::Identity::user(user.as_ref());
        let written = if zip {
            artifacts::to_zip(&collection.entries, &staged, reader)
        } else {
            artifacts::to_folder(&collection.entries, &staged, reader)
        }
        .and_then(|files| artifacts::replace(&staged, &dest).map(|()| files));
        let files = match written {
            Ok(files) => files,
            Err(e) => {
                // Half a set is worse than none: what was written goes.
                let _ = std::fs::remove_dir_all(&staged).or_else(|_| std::fs::remove_file(&staged));
                return Err(e.to_string());
            }
        };
        let bytes: u64 = files.iter().map(|f| f.size).sum();
        self.message(&format!(
            "Wrote {} file(s), {bytes} bytes, of artifact set {id} to {}",
            files.len(),
            dest.display()
        ));
        self.recorder.edit().artifacts.push(ArtifactRecord {
            identifier: id.to_owned(),
            name,
            location: dest.display().to_string(),
            packaging: self.options.packaging.as_str().to_owned(),
            files,
            uploaded: None,
        });
        Ok(())
    }

    /// The user of the phase the build is at (the last that ran), whose permissions what the
    /// build leaves is collected with; `None` for the runner's own.
    pub(super) fn current_user(&self) -> Option<platform::RunAs> {
        self.spec.as_ref().and_then(|s| s.user.clone())
    }

    /// Collects files from the source directory as the build's user, logging what collecting
    /// them logged (also when it then fails, as CodeBuild does).
    pub(super) fn collect(
        &mut self,
        rules: &Rules,
    ) -> Result<artifacts::Collection, artifacts::CollectError> {
        let source = PathBuf::from(&self.recorder.record().source);
        let user = self.current_user();
        let reader = artifacts::Identity::user(user.as_ref());
        let (result, messages) = match artifacts::collect(&source, rules, reader) {
            Ok(mut collection) => {
                let messages = std::mem::take(&mut collection.messages);
                (Ok(collection), messages)
            }
            Err(failed) => (Err(failed.error), failed.messages),
        };
        for line in &messages {
            self.message(line);
        }
        result
    }

    /// Uploads the set just written (the record's last) to S3. A failure keeps the local copy.
    fn send_set(&mut self, uploader: &Uploader, set: &ArtifactSet) -> Result<(), String> {
        let Some(written) = self.recorder.record().artifacts.last().cloned() else {
            return Ok(());
        };
        let local = PathBuf::from(&written.location);
        let folder = local
            .strip_prefix(self.recorder.dir().join("artifacts"))
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let s3_prefix = set
            .s3_prefix
            .as_ref()
            .map(|p| self.expand(&p.value).trim_matches('/').to_owned())
            .filter(|p| !p.is_empty());
        let base = match &s3_prefix {
            Some(prefix) => format!("{prefix}/{folder}"),
            None => folder,
        };
        let build_arn = self.recorder.record().id.clone();
        let metadata = [("codebuild-buildarn", build_arn.as_str())];
        let mut uploads: Vec<(PathBuf, String)> = Vec::new();
        if written.packaging == Packaging::Zip.as_str() {
            uploads.push((local.clone(), base.clone()));
        } else {
            for file in &written.files {
                if file.link.is_some() {
                    // S3 has no links, and following one could leave the base directory.
                    self.message(&format!("warning: symlink {} is not uploaded", file.path));
                    continue;
                }
                uploads.push((local.join(&file.path), format!("{base}/{}", file.path)));
            }
        }
        self.message(&format!(
            "Uploading {} object(s) to {}",
            uploads.len(),
            uploader.bucket_url()
        ));
        let next = std::sync::atomic::AtomicUsize::new(0);
        let failed: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);
        // A few uploads at once: small objects cost round trips more than bandwidth.
        std::thread::scope(|scope| {
            for _ in 0..uploads.len().clamp(1, 4) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((path, key)) = uploads.get(i) else {
                            break;
                        };
                        if let Err(e) = uploader.upload_file(path, key, &metadata) {
                            if let Ok(mut first) = failed.lock() {
                                first.get_or_insert(e.to_string());
                            }
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().ok().flatten() {
            return Err(format!(
                "{e} (the local copy is kept in {})",
                local.display()
            ));
        }
        let url = match &self.options.artifacts {
            Destination::S3 { url, .. } => format!("s3://{}/{}", url.bucket, url.key(&base)),
            _ => base,
        };
        self.message(&format!("Uploaded artifact set to {url}"));
        if let Some(last) = self.recorder.edit().artifacts.last_mut() {
            last.uploaded = Some(url);
        }
        Ok(())
    }

    /// Evaluates `artifacts.name` or `cache.key` the way the build's shell would: as the user
    /// of the phase the build is at (the last that ran; the first, for the cache's restore),
    /// with the build's variables and working directory. The expression is the buildspec's and
    /// the variables are what the build's commands left (a `PATH` of theirs included): run as
    /// the runner, a root runner would run what a `run-as` build put on its `PATH`.
    pub(super) fn evaluate(&mut self, expr: &str) -> Result<String, String> {
        let plan_shell = self.plan.as_ref().map(|p| p.shell);
        let program = plan_shell.map_or("sh", |s| s.program());
        let cwd = if self.shell_state.cwd.is_empty() {
            self.recorder.record().source.clone()
        } else {
            self.shell_state.cwd.clone()
        };
        let mut command = Command::new(program);
        command
            .arg("-c")
            .arg(r#"eval "printf '%s' \"$1\"""#)
            .arg("buildspec")
            .arg(expr)
            .env_clear()
            .envs(&self.shell_state.variables)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        platform::default_signals(&mut command);
        if let Some(user) = self.spec.as_ref().and_then(|s| s.user.as_ref()) {
            platform::switch_user(&mut command, user);
        }
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {program} to evaluate `{expr}`: {e}"))?;
        let mut value = Vec::new();
        let mut errors = Vec::new();
        let finished = read_until(&mut child, &mut value, &mut errors, EVALUATE_LIMIT);
        if !finished {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("`{expr}` did not finish within {EVALUATE_LIMIT:?}"));
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            let errors = String::from_utf8_lossy(&errors);
            return Err(format!(
                "cannot evaluate `{expr}`: {}",
                errors.trim().lines().last().unwrap_or("the shell failed")
            ));
        }
        let value = String::from_utf8_lossy(&value)
            .trim_end_matches('\n')
            .to_owned();
        // A name that holds a secret is shown masked, like everything else.
        if value != expr {
            let shown = self.masker.text(&value).into_owned();
            self.message(&format!("Evaluated `{expr}` as {shown}"));
        }
        Ok(value)
    }
}

/// Reads a child's stdout and stderr until both close, at most `limit`; false when time ran out.
fn read_until(
    child: &mut std::process::Child,
    out: &mut Vec<u8>,
    err: &mut Vec<u8>,
    limit: Duration,
) -> bool {
    let end = Instant::now() + limit;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return true;
    };
    let (mut out_open, mut err_open) = (true, true);
    let mut buf = [0u8; 4096];
    while out_open || err_open {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let mut fds = Vec::new();
        if out_open {
            fds.push(platform::borrow(&stdout));
        }
        if err_open {
            fds.push(platform::borrow(&stderr));
        }
        let Ok(ready) = platform::wait_readable(&fds, Some(left)) else {
            return false;
        };
        let mut ready = ready.iter().map(|r| r.readable);
        if out_open && ready.next().unwrap_or(false) {
            match stdout.read(&mut buf) {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        if err_open && ready.next().unwrap_or(false) {
            match stderr.read(&mut buf) {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => err.extend_from_slice(&buf[..n]),
            }
        }
    }
    true
}

/// The folder (or zip) a set lands in, relative to the destination: its name may have
/// directories (`builds/42/app`) but must stay inside.
fn set_folder(name: &str) -> Result<String, String> {
    match pattern::normalize(name.trim()) {
        Some(folder) if !folder.is_empty() && !name.trim().starts_with('/') => Ok(folder),
        _ => Err(format!(
            "the artifact name `{name}` is not a relative path inside the destination"
        )),
    }
}
