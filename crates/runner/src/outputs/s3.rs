//! Uploads of build artifacts to S3 (`--artifacts s3://bucket/prefix`).
//!
//! The engine is synchronous: an [`Uploader`] owns a small tokio runtime (two workers) and its
//! calls block. The client is `object_store`'s S3 store. Its settings come from the standard AWS
//! environment variables ([`S3Config::from_env`]); static credentials are required, so that a
//! missing key is an error at once rather than a probe of the instance metadata service.
//!
//! A file up to the multipart threshold goes up in one `PutObject`; a larger one goes up in
//! parts, read from the file as they are sent, a few at a time, so that memory stays bounded
//! whatever the file's size. Transient failures (connection errors, 5xx, 429) are retried with
//! exponential backoff; an authentication or permission failure is not, and says so.

use std::error::Error as _;
use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::net::Ipv4Addr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, BackoffConfig, ClientOptions, ObjectStore, PutMultipartOptions,
    PutOptions, RetryConfig, WriteMultipart,
};

/// The smallest part S3 accepts (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;
/// The largest part S3 accepts.
pub const MAX_PART_SIZE: usize = 5 * 1024 * 1024 * 1024;
/// The most parts one upload may have; a larger file gets larger parts.
const MAX_PARTS: u64 = 10_000;
/// Parts in flight at once. Memory is at most one more part than this, plus a read buffer.
const CONCURRENCY: usize = 4;
/// How much of the file one read takes.
const READ_BUFFER: usize = 1024 * 1024;
/// The longest wait for a connection to be made.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest one request may take, a part of `MAX_PART_SIZE`'s default included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest wait between two retries.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// `s3://bucket/prefix` as given to `--artifacts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket's name.
    pub bucket: String,
    /// The key prefix, without a leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl S3Url {
    /// The full key of `name` under the prefix.
    pub fn key(&self, name: &str) -> String {
        let name = name.trim_start_matches('/');
        if self.prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{}/{name}", self.prefix)
        }
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        Ok(())
    }
}

impl FromStr for S3Url {
    type Err = S3Error;

    fn from_str(url: &str) -> Result<Self, S3Error> {
        let invalid = |reason: String| S3Error::InvalidUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| invalid("expected s3://BUCKET or s3://BUCKET/PREFIX".to_owned()))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket name".to_owned()));
        }
        if bucket.len() > 255 {
            return Err(invalid(
                "the bucket name is longer than 255 characters".to_owned(),
            ));
        }
        if let Some(c) = bucket
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(invalid(format!("{c:?} cannot be in a bucket name")));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty() {
            ObjectPath::parse(prefix).map_err(|e| invalid(format!("bad prefix: {e}")))?;
        }
        Ok(S3Url {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// Connection settings, read the standard way from the environment.
///
/// The fields are public so that a caller (or a test) can adjust what the environment gave.
#[derive(Clone)]
pub struct S3Config {
    /// A custom endpoint (`AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`), without a trailing
    /// `/`; `None` for AWS itself.
    pub endpoint: Option<String>,
    /// The region requests are signed for (`AWS_REGION`, else `AWS_DEFAULT_REGION`, else
    /// `us-east-1`).
    pub region: String,
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`. Never printed, not even by `Debug`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials. Never printed either.
    pub session_token: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`) rather than virtual-hosted ones
    /// (`bucket.endpoint/key`): `AWS_S3_FORCE_PATH_STYLE=true` or
    /// `AWS_S3_ADDRESSING_STYLE=path`. An endpoint that is an IP address or `localhost`, or a
    /// bucket name that is not a DNS label, gets path style anyway.
    pub path_style: bool,
    /// Whether plain HTTP is allowed: true when the endpoint is `http://`.
    pub allow_http: bool,
    /// Retries of a failed request (connection errors, 5xx, 429): `AWS_MAX_ATTEMPTS` less one,
    /// 4 by default.
    pub retries: u32,
    /// The first wait before a retry; each next one doubles, up to 10 s, with jitter.
    pub backoff_base: Duration,
    /// No retry starts later than this after a request's first attempt.
    pub retry_timeout: Duration,
    /// The size of each part of a multipart upload (the last may be smaller), at least 5 MiB.
    pub part_size: usize,
    /// Files larger than this go up in parts.
    pub multipart_threshold: u64,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("path_style", &self.path_style)
            .field("allow_http", &self.allow_http)
            .field("retries", &self.retries)
            .field("backoff_base", &self.backoff_base)
            .field("retry_timeout", &self.retry_timeout)
            .field("part_size", &self.part_size)
            .field("multipart_threshold", &self.multipart_threshold)
            .finish()
    }
}

impl S3Config {
    /// The default part size and multipart threshold, as the AWS CLI's.
    pub const DEFAULT_PART_SIZE: usize = 8 * 1024 * 1024;

    /// Reads the settings from the environment through `get` (`std::env::var(..).ok()` in the
    /// engine, a map in tests). Empty values count as unset.
    ///
    /// `AWS_ENDPOINT_URL_S3` takes precedence over `AWS_ENDPOINT_URL`, and
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true` ignores both, as in the AWS SDKs and CLI.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, S3Error> {
        let var = |name: &str| {
            get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let flag = |name: &str| -> Result<bool, S3Error> {
            match var(name) {
                None => Ok(false),
                Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
                Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
                Some(v) => Err(S3Error::Config(format!(
                    "{name}={v:?}: expected true or false"
                ))),
            }
        };

        let endpoint = if flag("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")? {
            None
        } else {
            match ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
                .into_iter()
                .find_map(|name| var(name).map(|v| (name, v)))
            {
                Some((name, url)) => Some(
                    parse_endpoint(&url)
                        .map_err(|reason| S3Error::Config(format!("{name}={url:?}: {reason}")))?,
                ),
                None => None,
            }
        };
        let allow_http = endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));

        let region = var("AWS_REGION")
            .or_else(|| var("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_owned());

        let (access_key_id, secret_access_key) =
            match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
                (Some(id), Some(secret)) => (id, secret),
                (Some(_), None) => {
                    return Err(S3Error::Config(
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not".to_owned(),
                    ));
                }
                (None, Some(_)) => {
                    return Err(S3Error::Config(
                        "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not".to_owned(),
                    ));
                }
                (None, None) => {
                    return Err(S3Error::Config(
                        "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                            .to_owned(),
                    ));
                }
            };

        let addressing_path = match var("AWS_S3_ADDRESSING_STYLE") {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("path") => true,
            Some(v) if v.eq_ignore_ascii_case("virtual") || v.eq_ignore_ascii_case("auto") => false,
            Some(v) => {
                return Err(S3Error::Config(format!(
                    "AWS_S3_ADDRESSING_STYLE={v:?}: expected path, virtual or auto"
                )));
            }
        };
        let path_style = flag("AWS_S3_FORCE_PATH_STYLE")? || addressing_path;

        let retries = match var("AWS_MAX_ATTEMPTS") {
            None => 4,
            Some(v) => match v.parse::<u32>() {
                Ok(attempts) if attempts >= 1 => attempts - 1,
                _ => {
                    return Err(S3Error::Config(format!(
                        "AWS_MAX_ATTEMPTS={v:?}: expected a number of attempts, 1 or more"
                    )));
                }
            },
        };

        Ok(S3Config {
            endpoint,
            region,
            access_key_id,
            secret_access_key,
            session_token: var("AWS_SESSION_TOKEN"),
            path_style,
            allow_http,
            retries,
            backoff_base: Duration::from_millis(200),
            retry_timeout: Duration::from_secs(180),
            part_size: Self::DEFAULT_PART_SIZE,
            multipart_threshold: Self::DEFAULT_PART_SIZE as u64,
        })
    }
}

/// An endpoint URL, checked, without its trailing `/`.
fn parse_endpoint(url: &str) -> Result<String, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or("expected http://HOST or https://HOST")?;
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return Err(format!("the scheme must be http or https, not {scheme}"));
    }
    if rest.contains(['?', '#']) || rest.contains(char::is_whitespace) {
        return Err("expected a URL without a query, fragment or spaces".to_owned());
    }
    let rest = rest.trim_end_matches('/');
    if rest.split('/').next().unwrap_or_default().is_empty() {
        return Err("no host".to_owned());
    }
    Ok(format!("{}://{rest}", scheme.to_ascii_lowercase()))
}

/// The URL of the bucket, which object keys follow after a `/`.
fn bucket_url(config: &S3Config, bucket: &str) -> Result<String, S3Error> {
    // Virtual-hosted style needs the bucket to be a DNS label (with dots, TLS certificates
    // of `*.s3.amazonaws.com` do not match), as the AWS SDKs decide.
    let dns_label = bucket
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-');
    let Some(endpoint) = &config.endpoint else {
        let domain = if config.region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        let region = &config.region;
        return Ok(if config.path_style || !dns_label {
            format!("https://s3.{region}.{domain}/{bucket}")
        } else {
            format!("https://{bucket}.s3.{region}.{domain}")
        });
    };
    let endpoint = parse_endpoint(endpoint)
        .map_err(|reason| S3Error::Config(format!("endpoint {endpoint:?}: {reason}")))?;
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", &endpoint));
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let host = if authority.starts_with('[') {
        // An IPv6 address.
        authority
    } else {
        authority.split(':').next().unwrap_or(authority)
    };
    let by_address = authority.starts_with('[')
        || host.parse::<Ipv4Addr>().is_ok()
        || host.eq_ignore_ascii_case("localhost");
    Ok(if config.path_style || by_address || !dns_label {
        format!("{endpoint}/{bucket}")
    } else {
        format!("{scheme}://{bucket}.{authority}{path}")
    })
}

/// What went wrong with S3: each message names the bucket or endpoint and the cause, and never
/// a secret.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The `s3://` URL cannot be used.
    #[error("invalid S3 URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The settings (environment) cannot be used.
    #[error("S3 settings: {0}")]
    Config(String),
    /// The client's runtime cannot start.
    #[error("cannot start the S3 client: {0}")]
    Runtime(#[source] io::Error),
    /// The local file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The object key is not one S3 (or the client) accepts.
    #[error("invalid object key {key:?}: {reason}")]
    InvalidKey {
        /// The full key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A metadata entry cannot be sent as an `x-amz-meta-*` header.
    #[error("invalid metadata {name:?}: {reason}")]
    InvalidMetadata {
        /// The entry's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// The server refused the credentials or the permission. Not retried.
    #[error("access denied to s3://{bucket}/{key} ({code}): {hint}")]
    AccessDenied {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// S3's error code (`SignatureDoesNotMatch`, `InvalidAccessKeyId`, `AccessDenied`...).
        code: String,
        /// What to check.
        hint: &'static str,
    },
    /// The bucket does not exist.
    #[error("bucket {bucket} does not exist at {endpoint}")]
    NoSuchBucket {
        /// The bucket.
        bucket: String,
        /// The bucket's URL.
        endpoint: String,
    },
    /// The server cannot be reached, or went away, after the retries.
    #[error("cannot reach {endpoint}: {cause}")]
    Unreachable {
        /// The bucket's URL.
        endpoint: String,
        /// What the connection did.
        cause: String,
    },
    /// Any other failure of the upload.
    #[error("cannot upload to s3://{bucket}/{key}: {cause}")]
    Upload {
        /// The bucket.
        bucket: String,
        /// The object's key.
        key: String,
        /// The client's message.
        cause: String,
    },
}

/// Uploads files to one bucket and prefix. Its calls block; they must not be made from inside
/// an async runtime.
pub struct Uploader {
    url: S3Url,
    bucket_url: String,
    store: AmazonS3,
    runtime: tokio::runtime::Runtime,
    part_size: usize,
    multipart_threshold: u64,
    retries: u32,
    /// Removed from any message, in case a server echoes them.
    secrets: Vec<String>,
}

impl fmt::Debug for Uploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uploader")
            .field("url", &self.url)
            .field("bucket_url", &self.bucket_url)
            .field("part_size", &self.part_size)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// Why an upload stopped, before it is told in an [`S3Error`].
enum Failure {
    Read(io::Error),
    Store(object_store::Error),
}

impl Uploader {
    /// A client for `url` with `config`. Nothing is sent yet.
    pub fn new(url: S3Url, config: S3Config) -> Result<Self, S3Error> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&config.part_size) {
            return Err(S3Error::Config(format!(
                "part size {} is outside S3's limits of 5 MiB to 5 GiB",
                config.part_size
            )));
        }
        let bucket_url = bucket_url(&config, &url.bucket)?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-upload")
            .enable_all()
            .build()
            .map_err(S3Error::Runtime)?;

        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: config.backoff_base,
                max_backoff: MAX_BACKOFF.max(config.backoff_base),
                base: 2.0,
            },
            max_retries: config.retries as usize,
            retry_timeout: config.retry_timeout,
        };
        let options = ClientOptions::new()
            .with_allow_http(config.allow_http)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&url.bucket)
            .with_region(&config.region)
            // The bucket's URL as worked out here, used as it is.
            .with_endpoint(&bucket_url)
            .with_virtual_hosted_style_request(true)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_client_options(options)
            .with_retry(retry);
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let store = {
            let _entered = runtime.enter();
            builder
                .build()
                .map_err(|e| S3Error::Config(format!("cannot set up the S3 client: {e}")))?
        };

        let secrets = std::iter::once(&config.secret_access_key)
            .chain(&config.session_token)
            // A very short secret would blank out ordinary words.
            .filter(|s| s.len() >= 8)
            .cloned()
            .collect();
        Ok(Uploader {
            url,
            bucket_url,
            store,
            runtime,
            part_size: config.part_size,
            multipart_threshold: config.multipart_threshold,
            retries: config.retries,
            secrets,
        })
    }

    /// Where the bucket is: the endpoint and addressing style applied.
    pub fn bucket_url(&self) -> &str {
        &self.bucket_url
    }

    /// Uploads one local file to `<prefix>/<key>`, with `metadata` as `x-amz-meta-*` headers
    /// (names are lowercased; values must be printable ASCII). Files above the multipart
    /// threshold go up in parts. Returns the object's full key.
    pub fn upload_file(
        &self,
        local: &Path,
        key: &str,
        metadata: &[(&str, &str)],
    ) -> Result<String, S3Error> {
        let full = self.url.key(key);
        let location = ObjectPath::parse(&full).map_err(|e| S3Error::InvalidKey {
            key: full.clone(),
            reason: e.to_string(),
        })?;
        if location.as_ref().is_empty() {
            return Err(S3Error::InvalidKey {
                key: full,
                reason: "empty".to_owned(),
            });
        }
        let attributes = attributes(metadata)?;
        let read_error = |source| S3Error::Read {
            path: local.display().to_string(),
            source,
        };
        let mut file = File::open(local).map_err(read_error)?;
        let len = file.metadata().map_err(read_error)?.len();

        let outcome = if len > self.multipart_threshold {
            self.runtime
                .block_on(self.put_in_parts(&mut file, &location, attributes, len))
        } else {
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or_default());
            file.read_to_end(&mut bytes).map_err(read_error)?;
            let options = PutOptions {
                attributes,
                ..PutOptions::default()
            };
            self.runtime
                .block_on(self.store.put_opts(&location, bytes.into(), options))
                .map(drop)
                .map_err(Failure::Store)
        };
        match outcome {
            Ok(()) => Ok(location.to_string()),
            Err(Failure::Read(source)) => Err(read_error(source)),
            Err(Failure::Store(error)) => Err(self.explain(&error, location.as_ref())),
        }
    }

    /// A multipart upload, read from `file` as the parts go.
    async fn put_in_parts(
        &self,
        file: &mut File,
        location: &ObjectPath,
        attributes: Attributes,
        len: u64,
    ) -> Result<(), Failure> {
        let part_size = part_size(self.part_size, len);
        let options = PutMultipartOptions {
            attributes,
            ..PutMultipartOptions::default()
        };
        let upload = self
            .store
            .put_multipart_opts(location, options)
            .await
            .map_err(Failure::Store)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        match send_parts(&mut writer, file, part_size).await {
            // Sends the last part, waits for all, completes; aborts if any failed.
            Ok(()) => writer.finish().await.map(drop).map_err(Failure::Store),
            Err(failure) => {
                // Best effort: the upload's parts are not kept on the server.
                let _ = writer.abort().await;
                Err(failure)
            }
        }
    }

    /// The error of a failed request, in terms of what to check.
    fn explain(&self, error: &object_store::Error, key: &str) -> S3Error {
        let bucket = self.url.bucket.clone();
        let key = key.to_owned();
        let text = self.scrub(error.to_string());
        let code = s3_code(&text);
        let denied = matches!(
            error,
            object_store::Error::PermissionDenied { .. }
                | object_store::Error::Unauthenticated { .. }
        );
        if denied
            || code
                .as_deref()
                .is_some_and(|c| credential_code(c) || c == "AccessDenied")
        {
            let code = code.unwrap_or_else(|| "AccessDenied".to_owned());
            let hint = if credential_code(&code)
                || matches!(error, object_store::Error::Unauthenticated { .. })
            {
                "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if the \
                 credentials are temporary)"
            } else {
                "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY: these credentials may not \
                 write to this bucket (s3:PutObject)"
            };
            return S3Error::AccessDenied {
                bucket,
                key,
                code,
                hint,
            };
        }
        if code.as_deref() == Some("NoSuchBucket") {
            return S3Error::NoSuchBucket {
                bucket,
                endpoint: self.bucket_url.clone(),
            };
        }
        if let Some(cause) = transport_cause(error) {
            return S3Error::Unreachable {
                endpoint: self.bucket_url.clone(),
                cause: self.scrub(cause),
            };
        }
        S3Error::Upload {
            bucket,
            key,
            cause: text,
        }
    }

    fn scrub(&self, mut text: String) -> String {
        for secret in &self.secrets {
            text = text.replace(secret.as_str(), "<redacted>");
        }
        text
    }
}

/// Reads `file` into `writer`, never more than [`CONCURRENCY`] parts in flight.
async fn send_parts(
    writer: &mut WriteMultipart,
    file: &mut File,
    part_size: usize,
) -> Result<(), Failure> {
    let mut buffer = vec![0; READ_BUFFER.min(part_size)];
    loop {
        let read = match file.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(read) => read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Read(e)),
        };
        // A full buffer starts a part: wait for room first.
        writer
            .wait_for_capacity(CONCURRENCY)
            .await
            .map_err(Failure::Store)?;
        writer.write(&buffer[..read]);
    }
}

/// The part size for a file of `len` bytes: `configured`, or more if the file would need more
/// than S3's 10,000 parts.
fn part_size(configured: usize, len: u64) -> usize {
    let needed = usize::try_from(len.div_ceil(MAX_PARTS)).unwrap_or(MAX_PART_SIZE);
    configured.max(needed).min(MAX_PART_SIZE)
}

/// `metadata` as object attributes, checked so that each makes a valid header.
fn attributes(metadata: &[(&str, &str)]) -> Result<Attributes, S3Error> {
    let mut attributes = Attributes::with_capacity(metadata.len());
    for &(name, value) in metadata {
        let invalid = |reason: &str| S3Error::InvalidMetadata {
            name: name.to_owned(),
            reason: reason.to_owned(),
        };
        if name.is_empty() {
            return Err(invalid("the name is empty"));
        }
        // An HTTP header name's characters (RFC 9110 `token`).
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            return Err(invalid(
                "a name may only have letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        if !value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
        {
            return Err(invalid("a value may only have printable ASCII characters"));
        }
        attributes.insert(
            Attribute::Metadata(name.to_ascii_lowercase().into()),
            value.to_owned().into(),
        );
    }
    Ok(attributes)
}

/// The S3 error code in an error response's body, if the message has one.
fn s3_code(text: &str) -> Option<String> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_owned())
}

/// Whether an S3 error code says the credentials themselves are wrong.
fn credential_code(code: &str) -> bool {
    matches!(
        code,
        "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "NotSignedUp"
            | "InvalidToken"
            | "ExpiredToken"
            | "TokenRefreshRequired"
            | "InvalidSecurity"
    )
}

/// What the connection did, if the request failed on the way rather than with a response.
fn transport_cause(error: &object_store::Error) -> Option<String> {
    let mut kind = None;
    let mut innermost = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return Some("connection refused".to_owned()),
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => {
                    return Some("the connection was lost".to_owned());
                }
                io::ErrorKind::TimedOut => return Some("timed out".to_owned()),
                _ => {}
            }
        }
        if let Some(http) = e.downcast_ref::<HttpError>() {
            kind = Some(http.kind());
        }
        innermost = Some(e);
        source = e.source();
    }
    let detail = innermost.map(ToString::to_string).unwrap_or_default();
    match kind? {
        HttpErrorKind::Connect => Some(format!("cannot connect: {detail}")),
        HttpErrorKind::Timeout => Some("timed out".to_owned()),
        HttpErrorKind::Interrupted => Some("the connection was lost".to_owned()),
        HttpErrorKind::Request => Some(format!("the server closed the connection: {detail}")),
        _ => None,
    }
}
