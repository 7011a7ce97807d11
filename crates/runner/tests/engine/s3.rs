//! Artifact uploads to a real S3 server on loopback: s3s-fs over a temporary directory, with
//! access-key authentication, started and stopped by each test.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use runner::outputs::s3::{S3Config, S3Error, S3Url, Uploader};
use s3s::dto::{
    AbortMultipartUploadInput, AbortMultipartUploadOutput, CompleteMultipartUploadInput,
    CompleteMultipartUploadOutput, CreateMultipartUploadInput, CreateMultipartUploadOutput,
    PutObjectInput, PutObjectOutput, UploadPartInput, UploadPartOutput,
};
use s3s::{S3, S3Request, S3Response, S3Result};
use tokio::sync::Notify;

const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const BUCKET: &str = "artifacts";
const MIB: usize = 1024 * 1024;
const BUILD_ARN: &str = "arn:aws:codebuild:us-east-1:123456789012:build/test:0b6c2a1e";

/// The calls an upload made, as the server saw them (after authentication).
#[derive(Debug, Default)]
struct Calls {
    put_object: AtomicUsize,
    create_multipart: AtomicUsize,
    upload_part: AtomicUsize,
    complete_multipart: AtomicUsize,
    abort_multipart: AtomicUsize,
}

/// s3s-fs, counting the upload calls. With `stop_at_part`, the server goes away while it
/// receives that part: the handler never answers and the server stops, dropping every
/// connection.
struct Counting {
    fs: s3s_fs::FileSystem,
    /// s3s-fs's root, whose directories are the buckets.
    root: PathBuf,
    calls: Arc<Calls>,
    stop_at_part: Option<usize>,
    stop: Arc<Notify>,
}

#[async_trait::async_trait]
impl S3 for Counting {
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        self.calls.put_object.fetch_add(1, Ordering::SeqCst);
        // As S3 answers; s3s-fs would create the bucket's directory.
        if !self.root.join(&req.input.bucket).is_dir() {
            return Err(s3s::s3_error!(NoSuchBucket));
        }
        self.fs.put_object(req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        self.calls.create_multipart.fetch_add(1, Ordering::SeqCst);
        self.fs.create_multipart_upload(req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let part = self.calls.upload_part.fetch_add(1, Ordering::SeqCst) + 1;
        if self.stop_at_part == Some(part) {
            self.stop.notify_one();
            std::future::pending::<()>().await;
        }
        self.fs.upload_part(req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        self.calls.complete_multipart.fetch_add(1, Ordering::SeqCst);
        self.fs.complete_multipart_upload(req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        self.calls.abort_multipart.fetch_add(1, Ordering::SeqCst);
        self.fs.abort_multipart_upload(req).await
    }
}

/// An S3 server on 127.0.0.1, in its own thread and runtime, with one bucket.
pub(crate) struct Server {
    addr: SocketAddr,
    root: tempfile::TempDir,
    calls: Arc<Calls>,
    stop: Arc<Notify>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub(crate) fn start() -> Server {
        Server::start_with(None)
    }

    /// A server that goes away while it receives part `stop_at_part` (from 1), if some.
    fn start_with(stop_at_part: Option<usize>) -> Server {
        let root = tempfile::tempdir().expect("tempdir");
        // A bucket is a directory of s3s-fs's root.
        std::fs::create_dir(root.path().join(BUCKET)).expect("mkdir bucket");
        let calls = Arc::new(Calls::default());
        let stop = Arc::new(Notify::new());
        let s3 = Counting {
            fs: s3s_fs::FileSystem::new(root.path()).expect("s3s-fs"),
            root: root.path().to_owned(),
            calls: Arc::clone(&calls),
            stop_at_part,
            stop: Arc::clone(&stop),
        };
        let mut service = s3s::service::S3ServiceBuilder::new(s3);
        service.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = service.build();

        let (bound, address) = std::sync::mpsc::channel();
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                    .await
                    .expect("bind 127.0.0.1:0");
                bound
                    .send(listener.local_addr().expect("bound address"))
                    .expect("the test waits for the address");
                let http = ConnBuilder::new(TokioExecutor::new());
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((socket, _)) = accepted else { continue };
                            let connection = http
                                .serve_connection(TokioIo::new(socket), service.clone())
                                .into_owned();
                            tokio::spawn(async move {
                                let _ = connection.await;
                            });
                        }
                        () = stopped.notified() => break,
                    }
                }
            });
            // Dropping the runtime drops the listener and every connection task: the server
            // is gone, mid-request or not.
            drop(runtime);
        });
        let addr = address.recv().expect("the server is listening");
        Server {
            addr,
            root,
            calls,
            stop,
            thread: Some(thread),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server and waits until its listener and connections are closed.
    pub(crate) fn shut_down(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends cleanly");
        }
    }

    /// Where s3s-fs keeps an object of the bucket.
    fn object(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// The user metadata s3s-fs stored with the object (it keeps it in a
    /// `.bucket-<b64>.object-<b64>.metadata.json` file of its root).
    fn metadata(&self) -> Vec<serde_json::Value> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(self.root.path()).expect("read root") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if name.starts_with(".bucket-") && name.ends_with(".metadata.json") {
                let text = std::fs::read(&path).expect("read metadata");
                let json: serde_json::Value = serde_json::from_slice(&text).expect("json");
                found.push(json["user_metadata"].clone());
            }
        }
        found
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// The settings the engine would read for this server, with fast retries.
fn config(endpoint: &str, access_key: &str, secret_key: &str) -> S3Config {
    let env = HashMap::from([
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_ACCESS_KEY_ID", access_key.to_owned()),
        ("AWS_SECRET_ACCESS_KEY", secret_key.to_owned()),
    ]);
    let mut config = S3Config::from_env(|name| env.get(name).cloned()).expect("valid settings");
    config.retries = 2;
    config.backoff_base = Duration::from_millis(10);
    config.retry_timeout = Duration::from_secs(5);
    config
}

fn uploader(url: &str, config: S3Config) -> Uploader {
    Uploader::new(url.parse().expect("valid URL"), config).expect("uploader")
}

/// A file of `len` bytes that is not one byte repeated, so that misplaced parts show.
fn file_of(dir: &Path, name: &str, len: usize) -> (PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let path = dir.join(name);
    std::fs::write(&path, &bytes).expect("write file");
    (path, bytes)
}

#[test]
fn s3_small_file_goes_up_in_one_put_with_its_metadata() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = file_of(dir.path(), "app.txt", 100_000);
    let uploader = uploader(
        "s3://artifacts/builds/42/",
        config(&server.endpoint(), ACCESS_KEY, SECRET_KEY),
    );
    assert_eq!(
        uploader.bucket_url(),
        format!("{}/{BUCKET}", server.endpoint()),
        "an IP endpoint gets path-style requests"
    );

    let key = uploader
        .upload_file(&path, "out/app.txt", &[("codebuild-buildarn", BUILD_ARN)])
        .expect("uploaded");

    assert_eq!(key, "builds/42/out/app.txt");
    let stored = std::fs::read(server.object(&key)).expect("the object is on disk");
    assert!(stored == bytes, "the object's bytes differ from the file's");
    assert_eq!(server.calls.put_object.load(Ordering::SeqCst), 1);
    assert_eq!(server.calls.create_multipart.load(Ordering::SeqCst), 0);
    assert_eq!(
        server.metadata(),
        [serde_json::json!({ "codebuild-buildarn": BUILD_ARN })],
        "x-amz-meta-codebuild-buildarn reached the server"
    );
}

#[test]
fn s3_large_file_goes_up_in_parts() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, bytes) = file_of(dir.path(), "big.bin", 12 * MIB);
    let mut config = config(&server.endpoint(), ACCESS_KEY, SECRET_KEY);
    config.part_size = 5 * MIB;
    config.multipart_threshold = 5 * MIB as u64;
    let uploader = uploader("s3://artifacts", config);

    let key = uploader
        .upload_file(&path, "big.bin", &[("codebuild-buildarn", BUILD_ARN)])
        .expect("uploaded");

    assert_eq!(key, "big.bin");
    let calls = &server.calls;
    assert_eq!(calls.put_object.load(Ordering::SeqCst), 0);
    assert_eq!(calls.create_multipart.load(Ordering::SeqCst), 1);
    // 5 + 5 + 2 MiB.
    assert_eq!(calls.upload_part.load(Ordering::SeqCst), 3);
    assert_eq!(calls.complete_multipart.load(Ordering::SeqCst), 1);
    assert_eq!(calls.abort_multipart.load(Ordering::SeqCst), 0);
    let stored = std::fs::read(server.object(&key)).expect("the object is on disk");
    assert_eq!(stored.len(), bytes.len());
    assert!(stored == bytes, "the parts were not joined in order");
    assert_eq!(
        server.metadata(),
        [serde_json::json!({ "codebuild-buildarn": BUILD_ARN })],
        "the metadata of a multipart upload reached the object"
    );
}

#[test]
fn s3_wrong_credentials_are_denied_at_once() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = file_of(dir.path(), "app.txt", 1000);
    let wrong_secret = "not-the-secret-0123456789abcdef";
    for (access_key, code) in [
        (ACCESS_KEY, "SignatureDoesNotMatch"),
        ("AKIAUNKNOWNKEY000000", "NotSignedUp"),
    ] {
        let mut config = config(&server.endpoint(), access_key, wrong_secret);
        // A retry would wait at least this long: a quick answer means none happened.
        config.retries = 5;
        config.backoff_base = Duration::from_secs(5);
        let uploader = uploader("s3://artifacts/p", config);

        let started = Instant::now();
        let error = uploader
            .upload_file(&path, "app.txt", &[])
            .expect_err("denied");

        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{code}: took {:?}, so it was retried",
            started.elapsed()
        );
        let message = error.to_string();
        assert!(
            matches!(&error, S3Error::AccessDenied { code: c, .. } if c == code),
            "{error:?}"
        );
        assert!(
            message.starts_with("access denied to s3://artifacts/p/app.txt"),
            "{message}"
        );
        assert!(
            message.contains("check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"),
            "{message}"
        );
        assert!(!message.contains(wrong_secret), "{message}");
        assert!(!format!("{error:?}").contains(wrong_secret), "{error:?}");
        assert!(!format!("{uploader:?}").contains(wrong_secret));
    }
    assert_eq!(server.calls.put_object.load(Ordering::SeqCst), 0);
}

#[test]
fn s3_missing_bucket_is_named() {
    let server = Server::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = file_of(dir.path(), "app.txt", 1000);
    let config = config(&server.endpoint(), ACCESS_KEY, SECRET_KEY);
    let uploader = uploader("s3://no-such-bucket/p", config);

    let error = uploader
        .upload_file(&path, "app.txt", &[])
        .expect_err("no bucket");

    assert_eq!(
        error.to_string(),
        format!(
            "bucket no-such-bucket does not exist at {}/no-such-bucket",
            server.endpoint()
        )
    );
}

#[test]
fn s3_server_gone_before_the_upload() {
    let mut server = Server::start();
    let endpoint = server.endpoint();
    server.shut_down();
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = file_of(dir.path(), "app.txt", 1000);
    let uploader = uploader("s3://artifacts", config(&endpoint, ACCESS_KEY, SECRET_KEY));

    let started = Instant::now();
    let error = uploader
        .upload_file(&path, "app.txt", &[])
        .expect_err("nobody listens");

    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        error.to_string(),
        format!("cannot reach {endpoint}/{BUCKET}: connection refused")
    );
}

#[test]
fn s3_server_gone_in_the_middle_of_a_multipart_upload() {
    let server = Server::start_with(Some(2));
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = file_of(dir.path(), "big.bin", 12 * MIB);
    let mut config = config(&server.endpoint(), ACCESS_KEY, SECRET_KEY);
    config.part_size = 5 * MIB;
    config.multipart_threshold = 5 * MIB as u64;
    let uploader = uploader("s3://artifacts", config);

    let started = Instant::now();
    let error = uploader
        .upload_file(&path, "big.bin", &[])
        .expect_err("the server went away");

    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(error, S3Error::Unreachable { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot reach {}/{BUCKET}: ", server.endpoint())),
        "{message}"
    );
    assert!(server.calls.upload_part.load(Ordering::SeqCst) >= 2);
    assert_eq!(server.calls.complete_multipart.load(Ordering::SeqCst), 0);
    assert!(
        !server.object("big.bin").exists(),
        "no object from a failed upload"
    );
}

#[test]
fn s3_bad_keys_and_metadata_fail_before_sending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (path, _) = file_of(dir.path(), "app.txt", 10);
    // Nothing listens there: anything sent would fail otherwise.
    let uploader = uploader(
        "s3://artifacts/p",
        config("http://127.0.0.1:9", ACCESS_KEY, SECRET_KEY),
    );
    type Metadata = &'static [(&'static str, &'static str)];
    let cases: [(&str, Metadata, &str); 5] = [
        ("a/../b", &[], "invalid object key \"p/a/../b\""),
        ("a//b", &[], "invalid object key \"p/a//b\""),
        (
            "ok",
            &[("has space", "v")],
            "invalid metadata \"has space\"",
        ),
        ("ok", &[("", "v")], "invalid metadata \"\""),
        ("ok", &[("k", "caf\u{e9}")], "invalid metadata \"k\""),
    ];
    for (key, metadata, expected) in cases {
        let error = uploader
            .upload_file(&path, key, metadata)
            .expect_err("rejected");
        assert!(error.to_string().starts_with(expected), "{key}: {error}");
    }
    let error = uploader
        .upload_file(&dir.path().join("missing"), "x", &[])
        .expect_err("no such file");
    assert!(matches!(error, S3Error::Read { .. }), "{error:?}");
}

#[test]
fn s3_url_parsing() {
    let ok = [
        ("s3://bucket", "bucket", ""),
        ("s3://bucket/", "bucket", ""),
        ("s3://bucket/prefix", "bucket", "prefix"),
        ("s3://my.bucket-1/a/b/", "my.bucket-1", "a/b"),
        ("s3://bucket//a/b//", "bucket", "a/b"),
    ];
    for (url, bucket, prefix) in ok {
        let parsed: S3Url = url.parse().unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            parsed,
            S3Url {
                bucket: bucket.to_owned(),
                prefix: prefix.to_owned()
            },
            "{url}"
        );
    }
    let bad = [
        ("bucket/prefix", "expected s3://BUCKET"),
        ("https://bucket/prefix", "expected s3://BUCKET"),
        ("S3://bucket", "expected s3://BUCKET"),
        ("s3:/bucket", "expected s3://BUCKET"),
        ("s3://", "no bucket name"),
        ("s3:///prefix", "no bucket name"),
        ("s3://my bucket", "' ' cannot be in a bucket name"),
        ("s3://bucket?x=1", "'?' cannot be in a bucket name"),
        ("s3://bucket/a//b", "bad prefix"),
        ("s3://bucket/../b", "bad prefix"),
    ];
    for (url, reason) in bad {
        let error = url.parse::<S3Url>().expect_err(url);
        assert!(
            error
                .to_string()
                .starts_with(&format!("invalid S3 URL {url:?}: {reason}")),
            "{url}: {error}"
        );
    }
    let url: S3Url = "s3://bucket/a/b".parse().expect("valid");
    assert_eq!(url.to_string(), "s3://bucket/a/b");
    assert_eq!(url.key("/c/d.txt"), "a/b/c/d.txt");
}

#[test]
fn s3_config_from_env() {
    struct Case {
        env: &'static [(&'static str, &'static str)],
        endpoint: Option<&'static str>,
        region: &'static str,
        path_style: bool,
        allow_http: bool,
    }
    const KEYS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
    ];
    let cases = [
        Case {
            env: &[],
            endpoint: None,
            region: "us-east-1",
            path_style: false,
            allow_http: false,
        },
        Case {
            env: &[("AWS_DEFAULT_REGION", "eu-west-1")],
            endpoint: None,
            region: "eu-west-1",
            path_style: false,
            allow_http: false,
        },
        Case {
            env: &[
                ("AWS_REGION", "eu-central-1"),
                ("AWS_DEFAULT_REGION", "eu-west-1"),
            ],
            endpoint: None,
            region: "eu-central-1",
            path_style: false,
            allow_http: false,
        },
        Case {
            env: &[("AWS_REGION", ""), ("AWS_DEFAULT_REGION", "eu-west-1")],
            endpoint: None,
            region: "eu-west-1",
            path_style: false,
            allow_http: false,
        },
        Case {
            env: &[("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/")],
            endpoint: Some("http://127.0.0.1:9000"),
            region: "us-east-1",
            path_style: false,
            allow_http: true,
        },
        Case {
            env: &[
                ("AWS_ENDPOINT_URL", "http://generic:9000"),
                ("AWS_ENDPOINT_URL_S3", "https://s3.example.com"),
            ],
            endpoint: Some("https://s3.example.com"),
            region: "us-east-1",
            path_style: false,
            allow_http: false,
        },
        Case {
            env: &[
                ("AWS_ENDPOINT_URL_S3", "http://minio:9000"),
                ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
            ],
            endpoint: None,
            region: "us-east-1",
            path_style: false,
            allow_http: false,
        },
        Case {
            env: &[("AWS_S3_FORCE_PATH_STYLE", "true")],
            endpoint: None,
            region: "us-east-1",
            path_style: true,
            allow_http: false,
        },
        Case {
            env: &[("AWS_S3_FORCE_PATH_STYLE", "FALSE")],
            endpoint: None,
            region: "us-east-1",
            path_style: false,
            allow_http: false,
        },
        Case {
            env: &[("AWS_S3_ADDRESSING_STYLE", "path")],
            endpoint: None,
            region: "us-east-1",
            path_style: true,
            allow_http: false,
        },
        Case {
            env: &[("AWS_S3_ADDRESSING_STYLE", "virtual")],
            endpoint: None,
            region: "us-east-1",
            path_style: false,
            allow_http: false,
        },
    ];
    for case in cases {
        let env: HashMap<&str, &str> = KEYS.iter().chain(case.env).copied().collect();
        let config = S3Config::from_env(|name| env.get(name).map(|v| (*v).to_owned()))
            .unwrap_or_else(|e| panic!("{:?}: {e}", case.env));
        let what = format!("{:?}", case.env);
        assert_eq!(config.endpoint.as_deref(), case.endpoint, "{what}");
        assert_eq!(config.region, case.region, "{what}");
        assert_eq!(config.path_style, case.path_style, "{what}");
        assert_eq!(config.allow_http, case.allow_http, "{what}");
        assert_eq!(config.access_key_id, "AKID");
        assert_eq!(config.secret_access_key, "s3cr3t-value");
        assert_eq!(config.retries, 4);
    }

    let env = HashMap::from([
        ("AWS_ACCESS_KEY_ID", "AKID"),
        ("AWS_SECRET_ACCESS_KEY", "s3cr3t-value"),
        ("AWS_SESSION_TOKEN", "t0ken-value"),
        ("AWS_MAX_ATTEMPTS", "1"),
    ]);
    let config = S3Config::from_env(|name| env.get(name).map(|v| (*v).to_owned())).expect("valid");
    assert_eq!(config.session_token.as_deref(), Some("t0ken-value"));
    assert_eq!(config.retries, 0);
    let debug = format!("{config:?}");
    assert!(debug.contains("AKID"), "{debug}");
    assert!(!debug.contains("s3cr3t-value"), "{debug}");
    assert!(!debug.contains("t0ken-value"), "{debug}");

    let errors: [(&[(&str, &str)], &str); 7] = [
        (
            &[],
            "S3 settings: no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        ),
        (
            &[("AWS_ACCESS_KEY_ID", "AKID")],
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY",
        ),
        (
            &[("AWS_SECRET_ACCESS_KEY", "s3cr3t-value")],
            "AWS_SECRET_ACCESS_KEY is set but",
        ),
        (
            &[KEYS[0], KEYS[1], ("AWS_ENDPOINT_URL", "minio:9000")],
            "AWS_ENDPOINT_URL=\"minio:9000\"",
        ),
        (
            &[KEYS[0], KEYS[1], ("AWS_ENDPOINT_URL_S3", "ftp://x")],
            "the scheme must be http or https",
        ),
        (
            &[KEYS[0], KEYS[1], ("AWS_S3_FORCE_PATH_STYLE", "yes")],
            "expected true or false",
        ),
        (
            &[KEYS[0], KEYS[1], ("AWS_MAX_ATTEMPTS", "0")],
            "AWS_MAX_ATTEMPTS=\"0\"",
        ),
    ];
    for (env, expected) in errors {
        let env: HashMap<&str, &str> = env.iter().copied().collect();
        let error =
            S3Config::from_env(|name| env.get(name).map(|v| (*v).to_owned())).expect_err(expected);
        let message = error.to_string();
        assert!(message.contains(expected), "{message}");
        assert!(!message.contains("s3cr3t-value"), "{message}");
    }
}

#[test]
fn s3_addressing_style() {
    let cases = [
        // (endpoint, path style asked, bucket, bucket URL)
        (
            None,
            false,
            "bucket",
            "https://bucket.s3.us-east-1.amazonaws.com",
        ),
        (
            None,
            true,
            "bucket",
            "https://s3.us-east-1.amazonaws.com/bucket",
        ),
        (
            None,
            false,
            "my.bucket",
            "https://s3.us-east-1.amazonaws.com/my.bucket",
        ),
        (
            Some("https://s3.example.com"),
            false,
            "bucket",
            "https://bucket.s3.example.com",
        ),
        (
            Some("https://s3.example.com:8443/base"),
            false,
            "b",
            "https://b.s3.example.com:8443/base",
        ),
        (
            Some("https://s3.example.com"),
            true,
            "bucket",
            "https://s3.example.com/bucket",
        ),
        (
            Some("http://127.0.0.1:9000"),
            false,
            "bucket",
            "http://127.0.0.1:9000/bucket",
        ),
        (
            Some("http://localhost:9000"),
            false,
            "bucket",
            "http://localhost:9000/bucket",
        ),
        (
            Some("http://[::1]:9000"),
            false,
            "bucket",
            "http://[::1]:9000/bucket",
        ),
    ];
    for (endpoint, path_style, bucket, expected) in cases {
        let mut config = config("http://127.0.0.1:1", ACCESS_KEY, SECRET_KEY);
        config.endpoint = endpoint.map(str::to_owned);
        config.path_style = path_style;
        let uploader = uploader(&format!("s3://{bucket}"), config);
        assert_eq!(uploader.bucket_url(), expected, "{endpoint:?} {path_style}");
        let debug = format!("{uploader:?}");
        assert!(!debug.contains(SECRET_KEY), "{debug}");
    }
    let mut config = config("http://127.0.0.1:1", ACCESS_KEY, SECRET_KEY);
    config.part_size = 1024;
    let error =
        Uploader::new("s3://bucket".parse().expect("valid"), config).expect_err("too small");
    assert!(error.to_string().contains("outside S3's limits"), "{error}");
}

/// A build that writes two files and uploads its artifacts to `server`.
fn s3_build(server: &Server, secret: &str, yaml_artifacts: &str) -> crate::Fixture {
    let mut fixture = crate::Fixture::new(&format!(
        "version: 0.2\nphases:\n  build:\n    commands:\n      - mkdir -p out/sub && echo one > out/a.txt && echo two > out/sub/b.txt\nartifacts:\n{yaml_artifacts}"
    ));
    fixture.options.artifacts = runner::build::Destination::S3 {
        url: format!("s3://{BUCKET}/builds").parse().expect("valid URL"),
        config: config(&server.endpoint(), ACCESS_KEY, secret),
    };
    fixture
}

#[test]
fn s3_a_build_uploads_each_set_under_its_prefix_and_name() {
    let server = Server::start();
    let fixture = s3_build(
        &server,
        SECRET_KEY,
        "  files: ['**/*']\n  base-directory: out\n  s3-prefix: web\n  secondary-artifacts:\n    extra:\n      files: [out/a.txt]\n      name: extra-$CODEBUILD_BUILD_NUMBER\n",
    );
    let ran = fixture.run();
    ran.expect(runner::events::Status::Succeeded);
    assert_eq!(
        std::fs::read_to_string(server.object("builds/web/primary/sub/b.txt")).expect("uploaded"),
        "two\n"
    );
    assert!(server.object("builds/web/primary/a.txt").is_file());
    assert!(server.object("builds/extra-1/out/a.txt").is_file());
    assert_eq!(
        ran.record.artifacts[0].uploaded.as_deref(),
        Some("s3://artifacts/builds/web/primary")
    );
    // Every object carries the build's id, as CodeBuild's carry its ARN.
    let metadata = server.metadata();
    assert_eq!(metadata.len(), 3);
    assert!(
        metadata
            .iter()
            .all(|m| m["codebuild-buildarn"] == ran.record.id.as_str())
    );
}

#[test]
fn s3_a_zip_goes_up_as_one_object() {
    let server = Server::start();
    let mut fixture = s3_build(&server, SECRET_KEY, "  files: [out/a.txt]\n");
    fixture.options.packaging = runner::build::Packaging::Zip;
    let ran = fixture.run();
    ran.expect(runner::events::Status::Succeeded);
    let zip = server.object("builds/primary.zip");
    let listed = std::process::Command::new("unzip")
        .arg("-Z1")
        .arg(&zip)
        .output()
        .expect("unzip");
    assert_eq!(String::from_utf8_lossy(&listed.stdout), "out/a.txt\n");
}

#[test]
fn s3_a_refused_upload_fails_the_phase_and_keeps_the_local_copy() {
    let server = Server::start();
    let fixture = s3_build(&server, "not-the-secret", "  files: [out/a.txt]\n");
    let ran = fixture.run();
    ran.expect(runner::events::Status::Failed);
    let upload = ran
        .record
        .phases
        .iter()
        .find(|p| p.phase == runner::events::Phase::UploadArtifacts)
        .expect("UPLOAD_ARTIFACTS ran");
    let context = &upload.contexts[0];
    assert_eq!(context.status_code, "CLIENT_ERROR");
    assert!(
        context.message.contains("access denied"),
        "{}",
        context.message
    );
    assert!(
        !context.message.contains("not-the-secret"),
        "{}",
        context.message
    );
    assert!(
        context.message.contains("the local copy is kept"),
        "{}",
        context.message
    );
    let local = std::path::Path::new(&ran.record.artifacts[0].location);
    assert_eq!(
        std::fs::read_to_string(local.join("out/a.txt")).expect("local copy"),
        "one\n"
    );
}

#[test]
fn s3_a_server_that_is_gone_fails_the_phase_and_keeps_the_local_copy() {
    let mut server = Server::start();
    let fixture = s3_build(&server, SECRET_KEY, "  files: [out/a.txt]\n");
    server.shut_down();
    let ran = fixture.run();
    ran.expect(runner::events::Status::Failed);
    let upload = ran
        .record
        .phases
        .iter()
        .find(|p| p.phase == runner::events::Phase::UploadArtifacts)
        .expect("UPLOAD_ARTIFACTS ran");
    assert!(
        upload.contexts[0].message.contains("cannot reach"),
        "{}",
        upload.contexts[0].message
    );
    assert!(
        std::path::Path::new(&ran.record.artifacts[0].location)
            .join("out/a.txt")
            .is_file()
    );
}
