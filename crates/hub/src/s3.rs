//! Contents on S3-compatible object storage (a centre's Ceph RGW, MinIO, AWS S3), through
//! `object_store`. A write is checked on local disk first (size, digest), exactly as for the
//! local store, and only then uploaded under its digest, in parts when large: an object
//! appears whole when its upload completes, or not at all. The HTTP client is hyper's (the
//! one the Slurm client uses), over plain HTTP: like the rest of the factory it has no TLS
//! stack, so an `https` endpoint goes through a local proxy.

use crate::blobs::{BlobError, Stored, write_checked};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use http_body_util::BodyExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::buffered::BufWriter;
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpRequestBody, HttpResponse,
    HttpResponseBody, HttpService,
};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWriteExt};

/// Where the contents go: an endpoint, a bucket, a key prefix; credentials from the
/// standard `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `http://host:port` of the S3 API.
    pub endpoint: String,
    pub bucket: String,
    /// Keys start with it (`aifactory/`), so that a bucket can be shared.
    pub prefix: String,
    pub region: String,
}

#[derive(Debug)]
pub struct S3Blobs {
    store: Arc<AmazonS3>,
    prefix: String,
    /// Where uploads are checked before they are sent.
    tmp: PathBuf,
}

/// hyper's client as `object_store`'s HTTP service.
#[derive(Debug, Default)]
struct HyperConnector;

#[derive(Debug)]
struct HyperService(
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, HttpRequestBody>,
);

impl HttpConnector for HyperConnector {
    fn connect(&self, _: &ClientOptions) -> object_store::Result<HttpClient> {
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Ok(HttpClient::new(HyperService(client)))
    }
}

#[async_trait::async_trait]
impl HttpService for HyperService {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let response = self.0.request(req).await.map_err(|e| {
            let kind = if e.is_connect() {
                HttpErrorKind::Connect
            } else {
                HttpErrorKind::Request
            };
            HttpError::new(kind, e)
        })?;
        Ok(response.map(|body| HttpResponseBody::new(body.map_err(|e| HttpError::new(HttpErrorKind::Interrupted, e)))))
    }
}

impl S3Blobs {
    /// Connects (nothing is sent until the first request); `work_dir` holds uploads being
    /// checked.
    pub fn open(config: &S3Config, work_dir: impl Into<PathBuf>) -> Result<S3Blobs, BlobError> {
        let store = AmazonS3Builder::from_env()
            .with_endpoint(&config.endpoint)
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_allow_http(true)
            .with_virtual_hosted_style_request(false)
            .with_http_connector(HyperConnector)
            .build()
            .map_err(|e| BlobError::Remote(e.to_string()))?;
        let tmp = work_dir.into().join("tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|source| BlobError::Io {
            path: tmp.clone(),
            source,
        })?;
        let prefix = config.prefix.trim_matches('/').to_string();
        Ok(S3Blobs {
            store: Arc::new(store),
            prefix,
            tmp,
        })
    }

    fn key(&self, sha256: &str) -> ObjectPath {
        let key = format!("sha256/{}/{}/{sha256}", &sha256[..2], &sha256[2..4]);
        if self.prefix.is_empty() {
            ObjectPath::from(key)
        } else {
            ObjectPath::from(format!("{}/{key}", self.prefix))
        }
    }

    pub async fn contains(&self, sha256: &str) -> bool {
        crate::oid::is_hex(sha256, 64) && self.store.head(&self.key(sha256)).await.is_ok()
    }

    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        size: u64,
        sha256: Option<&str>,
    ) -> Result<Stored, BlobError> {
        let tmp = self.tmp.join(crate::blobs::random_name());
        let result = async {
            let stored = write_checked(reader, &tmp, size, sha256).await?;
            if !self.contains(&stored.sha256).await {
                self.upload(&tmp, &stored.sha256).await?;
            }
            Ok(stored)
        }
        .await;
        let _ = tokio::fs::remove_file(&tmp).await;
        result
    }

    /// Sends a checked file under its digest, in parts of a few MiB when large; an upload
    /// that fails is aborted, so no part of it is ever an object.
    async fn upload(&self, file: &Path, sha256: &str) -> Result<(), BlobError> {
        let store: Arc<dyn ObjectStore> = self.store.clone();
        let mut writer = BufWriter::new(store, self.key(sha256));
        let io = |source| BlobError::Io {
            path: file.to_path_buf(),
            source,
        };
        let mut f = tokio::fs::File::open(file).await.map_err(io)?;
        let sent = async {
            tokio::io::copy(&mut f, &mut writer).await?;
            writer.shutdown().await
        }
        .await;
        if let Err(e) = sent {
            let _ = writer.abort().await;
            return Err(BlobError::Remote(format!("uploading {sha256}: {e}")));
        }
        Ok(())
    }

    /// `length` bytes from `start`, as a stream.
    pub async fn read_range(
        &self,
        sha256: &str,
        start: u64,
        length: u64,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, BlobError> {
        if length == 0 {
            return Ok(futures_util::stream::empty().boxed());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(start..start + length)),
            ..GetOptions::default()
        };
        let got = self
            .store
            .get_opts(&self.key(sha256), options)
            .await
            .map_err(|e| BlobError::Remote(format!("reading {sha256}: {e}")))?;
        Ok(got.into_stream().map(|r| r.map_err(std::io::Error::other)).boxed())
    }

    /// Downloads a content to `dest` (whole, or not at all).
    pub async fn download(&self, sha256: &str, size: u64, dest: &Path) -> Result<(), BlobError> {
        let partial = dest.with_extension("partial");
        let io = |source| BlobError::Io {
            path: partial.clone(),
            source,
        };
        let mut stream = self.read_range(sha256, 0, size).await?;
        let mut f = tokio::fs::File::create(&partial).await.map_err(io)?;
        while let Some(chunk) = stream.next().await {
            f.write_all(&chunk.map_err(io)?).await.map_err(io)?;
        }
        f.sync_all().await.map_err(io)?;
        tokio::fs::rename(&partial, dest).await.map_err(io)
    }
}
