//! The content-addressed store of file contents on local disk: each content once, under its
//! SHA-256 (`sha256/ab/cd/abcd…`). A write goes to a temporary file, is checked (size,
//! digest) and synced, and only then renamed into place, so nothing half-written is ever
//! visible under a digest, and a content stored twice takes the space of one.

use crate::oid::GitBlobHasher;
use sha2::{Digest as _, Sha256};
use std::path::{Path, PathBuf};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("the content is larger than the {limit} bytes allowed")]
    TooLarge { limit: u64 },
    #[error("the content has {got} bytes, not the {expected} announced")]
    WrongSize { expected: u64, got: u64 },
    #[error("the content's SHA-256 is {got}, not the {expected} announced")]
    WrongDigest { expected: String, got: String },
    #[error("the upload was cut off after {got} bytes: {reason}")]
    Interrupted { got: u64, reason: String },
    #[error("the object store: {0}")]
    Remote(String),
    #[error("the blob store at {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A content as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
    pub git_blob_id: String,
}

/// Where contents are kept: on local disk (the default) or on S3-compatible storage.
#[derive(Debug, Clone)]
pub enum Blobs {
    Local(LocalBlobs),
    S3(std::sync::Arc<crate::s3::S3Blobs>),
}

impl Blobs {
    pub async fn contains(&self, sha256: &str) -> bool {
        match self {
            Blobs::Local(b) => b.contains(sha256).await,
            Blobs::S3(b) => b.contains(sha256).await,
        }
    }

    /// Stores `size` bytes read from `reader`, checking the size and, when given, the
    /// digest; nothing is kept unless both hold.
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        size: u64,
        sha256: Option<&str>,
        limit: u64,
    ) -> Result<Stored, BlobError> {
        if size > limit {
            return Err(BlobError::TooLarge { limit });
        }
        match self {
            Blobs::Local(b) => b.put(reader, size, sha256, limit).await,
            Blobs::S3(b) => b.put(reader, size, sha256).await,
        }
    }

    pub async fn put_bytes(&self, bytes: &[u8], limit: u64) -> Result<Stored, BlobError> {
        let mut reader = bytes;
        self.put(&mut reader, bytes.len() as u64, None, limit).await
    }

    /// `length` bytes of a content from `start`, streamed in chunks of `chunk` bytes.
    pub async fn read_range(
        &self,
        sha256: &str,
        start: u64,
        length: u64,
        chunk: usize,
    ) -> Result<futures_util::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>, BlobError> {
        use futures_util::StreamExt as _;
        use tokio::io::AsyncSeekExt as _;
        match self {
            Blobs::Local(b) => {
                let path = b.path(sha256);
                let io = |source| BlobError::Io {
                    path: path.clone(),
                    source,
                };
                let mut f = tokio::fs::File::open(&path).await.map_err(io)?;
                if start > 0 {
                    f.seek(std::io::SeekFrom::Start(start)).await.map_err(io)?;
                }
                Ok(tokio_util::io::ReaderStream::with_capacity(f.take(length), chunk).boxed())
            }
            Blobs::S3(b) => b.read_range(sha256, start, length).await,
        }
    }

    /// A small content whole (cards, configuration).
    pub async fn read_small(&self, sha256: &str, size: u64) -> Result<Vec<u8>, BlobError> {
        use futures_util::StreamExt as _;
        let mut out = Vec::with_capacity(size as usize);
        let mut stream = self.read_range(sha256, 0, size, 64 * 1024).await?;
        while let Some(chunk) = stream.next().await {
            out.extend_from_slice(&chunk.map_err(|e| BlobError::Remote(e.to_string()))?);
        }
        Ok(out)
    }

    /// Puts a content at `dest` for a job: a hard link to the stored file where it can
    /// (the same file system), else a copy; downloaded whole from object storage.
    pub async fn stage(&self, sha256: &str, size: u64, dest: &Path) -> Result<(), BlobError> {
        match self {
            Blobs::Local(b) => {
                let blob = b.path(sha256);
                let dest = dest.to_path_buf();
                tokio::task::spawn_blocking(move || {
                    if std::fs::hard_link(&blob, &dest).is_err() {
                        std::fs::copy(&blob, &dest).map_err(|source| BlobError::Io { path: dest, source })?;
                    }
                    Ok(())
                })
                .await
                .map_err(|e| BlobError::Remote(e.to_string()))?
            }
            Blobs::S3(b) => b.download(sha256, size, dest).await,
        }
    }
}

#[derive(Debug, Clone)]
pub struct LocalBlobs {
    root: PathBuf,
}

impl LocalBlobs {
    /// The store under `root` (created when missing); temporary files of writes that never
    /// finished (a crash) are removed.
    pub fn open(root: impl Into<PathBuf>) -> Result<LocalBlobs, BlobError> {
        let root = root.into();
        let tmp = root.join("tmp");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| BlobError::Io { path, source }
        };
        std::fs::create_dir_all(root.join("sha256")).map_err(io(&root))?;
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(LocalBlobs { root })
    }

    /// Where a content lives (whether or not it is there).
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.root
            .join("sha256")
            .join(&sha256[..2])
            .join(&sha256[2..4])
            .join(sha256)
    }

    pub async fn contains(&self, sha256: &str) -> bool {
        crate::oid::is_hex(sha256, 64) && tokio::fs::try_exists(self.path(sha256)).await.unwrap_or(false)
    }

    /// Stores `size` bytes read from `reader`, checking the size and, when given, the
    /// digest; nothing is kept unless both hold.
    pub async fn put<R: AsyncRead + Unpin>(
        &self,
        reader: &mut R,
        size: u64,
        sha256: Option<&str>,
        limit: u64,
    ) -> Result<Stored, BlobError> {
        if size > limit {
            return Err(BlobError::TooLarge { limit });
        }
        let tmp = self.root.join("tmp").join(random_name());
        let result = write_checked(reader, &tmp, size, sha256).await;
        match result {
            Ok(stored) => {
                let target = self.path(&stored.sha256);
                let io = |source| BlobError::Io {
                    path: target.clone(),
                    source,
                };
                if tokio::fs::try_exists(&target).await.unwrap_or(false) {
                    // Stored already: the same bytes, by their digest.
                    let _ = tokio::fs::remove_file(&tmp).await;
                } else {
                    tokio::fs::create_dir_all(target.parent().expect("a blob path has a parent"))
                        .await
                        .map_err(io)?;
                    // Read-only: jobs get hard links to it, which must not change it.
                    use std::os::unix::fs::PermissionsExt as _;
                    tokio::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o444))
                        .await
                        .map_err(io)?;
                    tokio::fs::rename(&tmp, &target).await.map_err(io)?;
                }
                Ok(stored)
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// Stores bytes held in memory (small files committed inline).
    pub async fn put_bytes(&self, bytes: &[u8], limit: u64) -> Result<Stored, BlobError> {
        let mut reader = bytes;
        self.put(&mut reader, bytes.len() as u64, None, limit).await
    }
}

/// Writes `size` bytes of `reader` to `tmp`, checking the size and, when given, the digest;
/// synced before it returns.
pub(crate) async fn write_checked<R: AsyncRead + Unpin>(
    reader: &mut R,
    tmp: &Path,
    size: u64,
    sha256: Option<&str>,
) -> Result<Stored, BlobError> {
    {
        let io = |source| BlobError::Io {
            path: tmp.to_path_buf(),
            source,
        };
        let mut file = tokio::fs::File::create(tmp).await.map_err(io)?;
        let mut digest = Sha256::new();
        let mut git = GitBlobHasher::new(size);
        let mut got = 0u64;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = reader.read(&mut buf).await.map_err(|e| BlobError::Interrupted {
                got,
                reason: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            got += n as u64;
            if got > size {
                return Err(BlobError::WrongSize { expected: size, got });
            }
            digest.update(&buf[..n]);
            git.update(&buf[..n]);
            file.write_all(&buf[..n]).await.map_err(io)?;
        }
        if got != size {
            return Err(BlobError::WrongSize { expected: size, got });
        }
        let actual = hex::encode(digest.finalize());
        if let Some(expected) = sha256
            && expected != actual
        {
            return Err(BlobError::WrongDigest {
                expected: expected.to_string(),
                got: actual,
            });
        }
        file.sync_all().await.map_err(io)?;
        Ok(Stored {
            sha256: actual,
            size,
            git_blob_id: git.finish(),
        })
    }
}

pub(crate) fn random_name() -> String {
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes).expect("the system's random source");
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> LocalBlobs {
        let dir = std::env::temp_dir().join(format!("aifactory-blobs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        LocalBlobs::open(dir).unwrap()
    }

    fn leftovers(s: &LocalBlobs) -> usize {
        std::fs::read_dir(s.root.join("tmp")).unwrap().count()
    }

    #[tokio::test]
    async fn contents_are_stored_once_under_their_digest() {
        let s = store("once");
        let a = s.put_bytes(b"hello\n", 100).await.unwrap();
        assert_eq!(
            a.sha256,
            "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
        );
        assert_eq!(a.git_blob_id, crate::oid::git_blob_id(b"hello\n"));
        assert_eq!(std::fs::read(s.path(&a.sha256)).unwrap(), b"hello\n");
        let again = s.put_bytes(b"hello\n", 100).await.unwrap();
        assert_eq!(again, a);
        assert!(s.contains(&a.sha256).await);
        assert_eq!(leftovers(&s), 0);
    }

    #[tokio::test]
    async fn wrong_sizes_digests_and_cut_uploads_leave_nothing() {
        let s = store("bad");
        let mut short: &[u8] = b"abc";
        assert!(matches!(
            s.put(&mut short, 4, None, 100).await,
            Err(BlobError::WrongSize { expected: 4, got: 3 })
        ));
        let mut long: &[u8] = b"abcde";
        assert!(matches!(
            s.put(&mut long, 4, None, 100).await,
            Err(BlobError::WrongSize { .. })
        ));
        let mut right: &[u8] = b"abcd";
        let wrong = "0".repeat(64);
        assert!(matches!(
            s.put(&mut right, 4, Some(&wrong), 100).await,
            Err(BlobError::WrongDigest { .. })
        ));
        let mut big: &[u8] = b"abcd";
        assert!(matches!(
            s.put(&mut big, 4, None, 3).await,
            Err(BlobError::TooLarge { limit: 3 })
        ));
        // A reader that fails half-way, as a client that hangs up.
        let broken = tokio_test_reader();
        let mut broken = std::pin::pin!(broken);
        assert!(matches!(
            s.put(&mut broken, 10, None, 100).await,
            Err(BlobError::Interrupted { got: 3, .. })
        ));
        assert_eq!(leftovers(&s), 0);
        assert_eq!(
            std::fs::read_dir(s.root.join("sha256")).unwrap().count(),
            0,
            "nothing stored"
        );
    }

    /// Three bytes, then an error.
    fn tokio_test_reader() -> impl AsyncRead {
        use tokio::io::AsyncReadExt as _;
        let ok: &'static [u8] = b"abc";
        ok.chain(Failing)
    }

    struct Failing;

    impl AsyncRead for Failing {
        fn poll_read(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            _: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "gone")))
        }
    }
}
