//! A build as it is asked for: everything `buildspec run` takes, as one typed value. The command
//! line makes one; a dispatcher of many builds makes one per build and hands it to the worker or
//! the Slurm job that runs it (on a pipe, or in a private file: never on a command line); the
//! record keeps it, masked, so that `rerun` asks for the build again as it was asked for.
//!
//! A request names files (the environment file, the parameters, the values to mask): they are
//! read when the build is made of it ([`BuildRequest::options`]), by the process that runs it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::build::shell::SessionKind;
use crate::build::{BuildOptions, Destination, Packaging};
use crate::env::mask::Masker;

/// A build, as asked for. Paths are as given, relative to `cwd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRequest {
    /// Where relative paths start from, and where the build was asked for.
    pub cwd: PathBuf,
    /// The buildspec file.
    pub buildspec: PathBuf,
    /// The source directory (`CODEBUILD_SRC_DIR`).
    pub source: PathBuf,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The project (default: the source directory's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// How commands share state.
    pub session: SessionKind,
    /// The build's time limit in milliseconds; 0 for none.
    pub timeout_ms: u64,
    /// How long a process has between SIGTERM and SIGKILL, in milliseconds.
    pub grace_ms: u64,
    /// How long UPLOAD_ARTIFACTS may take after a timeout or a stop, in milliseconds.
    pub cleanup_timeout_ms: u64,
    /// `--env` assignments (`NAME=VALUE`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// `--env-file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_file: Option<PathBuf>,
    /// `--clean-env`: nothing inherited from the runner's environment.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clean_env: bool,
    /// `--strict`: warnings are errors.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strict: bool,
    /// `--parameters`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<PathBuf>,
    /// `--secrets`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<PathBuf>,
    /// Values to mask (`--mask`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mask: Vec<String>,
    /// A file of values to mask (`--mask-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask_file: Option<PathBuf>,
    /// Where artifact sets go: a folder, or `s3://bucket/prefix`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<String>,
    /// A folder per set, or a zip.
    #[serde(default)]
    pub packaging: Packaging,
    /// Where report files are copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reports: Option<PathBuf>,
    /// The cache directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_dir: Option<PathBuf>,
    /// Whether the console gets JSON events rather than the text log.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub json_log: bool,
    /// How many bytes of output the log and the console keep; `None` for no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_limit: Option<u64>,
    /// Where a copy of the final record goes (`--record-file`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_file: Option<PathBuf>,
    /// Where the exported variables go (`--exported-variables`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exported_variables: Option<PathBuf>,
    /// For a build of a batch: the batch's id and the build's identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<(String, String)>,
    /// The uuid its record takes, when its dispatcher chose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<String>,
    /// The buildspec's name for the record, when the file run is a copy of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildspec_name: Option<String>,
    /// For a build on a copy of the source: the source it was copied from, which `rerun` uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_source: Option<PathBuf>,
}

/// Why a request cannot be made into a build.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// `--env` or `--env-file` is malformed.
    #[error(transparent)]
    Env(#[from] crate::env::EnvError),
    /// `--parameters` or `--secrets` cannot be used.
    #[error(transparent)]
    Providers(#[from] crate::env::secrets::ProviderError),
    /// `--artifacts s3://...` with a wrong URL or incomplete AWS settings.
    #[error("--artifacts: {0}")]
    S3(#[from] crate::outputs::s3::S3Error),
    /// The values to mask cannot be read, or one is too short.
    #[error("{0}")]
    Mask(String),
}

impl BuildRequest {
    /// A path of the request, as the process that runs the build finds it.
    fn at(&self, path: &Path) -> PathBuf {
        if path.is_absolute() || self.cwd.as_os_str().is_empty() {
            path.to_path_buf()
        } else {
            self.cwd.join(path)
        }
    }

    /// The values to mask: `mask`'s and the lines of `mask_file`.
    pub fn masks(&self) -> Result<Vec<String>, RequestError> {
        let mut all = self.mask.clone();
        if let Some(file) = &self.mask_file {
            let path = self.at(file);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                RequestError::Mask(format!(
                    "cannot read the values to mask from {}: {e}",
                    path.display()
                ))
            })?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim_end_matches('\r');
                if line.is_empty() {
                    continue;
                }
                let value = crate::env::mask::check_value(line).map_err(|why| {
                    RequestError::Mask(format!("{}:{}: {why}", file.display(), n + 1))
                })?;
                all.push(value);
            }
        }
        Ok(all)
    }

    /// The environment's layers the request gives: `--env`, `--env-file`, and the runner's own
    /// environment unless `clean_env`.
    pub fn layers(&self) -> Result<crate::env::Layers, RequestError> {
        let env_file = self.env_file.as_deref().map(|path| self.at(path));
        Ok(crate::env::Layers::given(
            &self.env,
            env_file.as_deref(),
            self.clean_env,
        )?)
    }

    /// The build this request asks for, as the engine runs it: its files read (the environment
    /// file, the parameters and secrets, the values to mask), the S3 settings taken from this
    /// process's environment. `owns_children` and `flush_record` are the caller's to say.
    pub fn options(
        &self,
        owns_children: bool,
        flush_record: bool,
    ) -> Result<BuildOptions, RequestError> {
        let ms = |ms: u64| Duration::from_millis(ms);
        Ok(BuildOptions {
            buildspec: self.at(&self.buildspec),
            source_dir: self.at(&self.source),
            state_dir: self.at(&self.state_dir),
            project: self.project.clone(),
            session: self.session,
            timeout: (self.timeout_ms > 0).then(|| ms(self.timeout_ms)),
            grace: ms(self.grace_ms),
            cleanup_timeout: ms(self.cleanup_timeout_ms),
            layers: self.layers()?,
            initiator: crate::env::initiator(),
            strict: self.strict,
            providers: crate::env::secrets::Providers::load(
                self.parameters.as_ref().map(|p| self.at(p)).as_deref(),
                self.secrets.as_ref().map(|p| self.at(p)).as_deref(),
            )?,
            mask: self.masks()?,
            owns_children,
            flush_record,
            artifacts: self.destination()?,
            packaging: self.packaging,
            reports: self.reports.as_ref().map(|p| self.at(p)),
            cache_dir: self.cache_dir.as_ref().map(|p| self.at(p)),
            batch: self.batch.clone(),
            request: Some(self.clone()),
            buildspec_name: self
                .buildspec_name
                .clone()
                .or_else(|| Some(self.buildspec.display().to_string())),
            uuid: self.uuid.clone(),
            log_limit: self.log_limit,
        })
    }

    /// Where the artifact sets go: a folder, or S3 with the settings of this process's
    /// environment (read before the build starts, so that a mistake costs no build).
    fn destination(&self) -> Result<Destination, RequestError> {
        match self.artifacts.as_deref() {
            None => Ok(Destination::BuildDir),
            Some(url) if url.starts_with("s3://") => Ok(Destination::S3 {
                url: url.parse()?,
                config: crate::outputs::s3::S3Config::from_env(|name| std::env::var(name).ok())?,
            }),
            Some(dir) => Ok(Destination::Dir(self.at(Path::new(dir)))),
        }
    }

    /// The build asked for again, as `rerun` runs it: on its original source and buildspec
    /// (not the copies it ran on), without what belonged to its one run (its uuid, its record
    /// file, its exported variables' file).
    pub fn for_rerun(&self) -> BuildRequest {
        let mut request = self.clone();
        if let Some(source) = request.original_source.take() {
            request.source = source;
        }
        if let Some(name) = request.buildspec_name.take() {
            request.buildspec = PathBuf::from(name);
        }
        request.uuid = None;
        request.record_file = None;
        request.exported_variables = None;
        request
    }

    /// The request with every value `masker` hides replaced by `***`, for the record; true when
    /// one was (such a request cannot be run again: the values are not there).
    pub fn masked_by(&self, masker: &Masker) -> (BuildRequest, bool) {
        let masked = std::cell::Cell::new(false);
        let text = |value: &str| {
            let shown = masker.text(value);
            masked.set(masked.get() | (shown != value));
            shown.into_owned()
        };
        let path = |p: &Path| PathBuf::from(text(&p.to_string_lossy()));
        let mut request = self.clone();
        request.cwd = path(&self.cwd);
        request.buildspec = path(&self.buildspec);
        request.source = path(&self.source);
        request.state_dir = path(&self.state_dir);
        request.original_source = self.original_source.as_deref().map(path);
        request.project = self.project.as_deref().map(text);
        request.env = self.env.iter().map(|e| text(e)).collect();
        request.mask = self.mask.iter().map(|m| text(m)).collect();
        request.artifacts = self.artifacts.as_deref().map(text);
        (request, masked.get())
    }
}
