//! Object ids as git and Git LFS name contents, which the Hub client compares and caches
//! by: a small file is named by its git blob id (SHA-1 of `blob <size>\0<content>`), a
//! large one by the SHA-256 of its content, behind a pointer file whose own blob id is the
//! tree entry's `oid`.

use sha1::{Digest as _, Sha1};

/// Files up to this size are committed inline ("regular"); larger ones go through the LFS
/// upload API, as on the Hugging Face Hub.
pub const REGULAR_MAX: u64 = 10 * 1024 * 1024;

/// The git blob id of `content`.
pub fn git_blob_id(content: &[u8]) -> String {
    let mut h = GitBlobHasher::new(content.len() as u64);
    h.update(content);
    h.finish()
}

/// A git blob id computed piece by piece; the size must be known before the content.
#[derive(Debug, Clone)]
pub struct GitBlobHasher(Sha1);

impl GitBlobHasher {
    pub fn new(size: u64) -> GitBlobHasher {
        let mut h = Sha1::new();
        h.update(format!("blob {size}\0").as_bytes());
        GitBlobHasher(h)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// The Git LFS pointer file that stands for a large file in a git tree.
pub fn lfs_pointer(sha256: &str, size: u64) -> String {
    format!("version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n")
}

/// Whether `s` is a lower-case hexadecimal digest of `len` characters.
pub fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_ids_are_gits() {
        // `printf 'hello\n' | git hash-object --stdin` and `git hash-object /dev/null`.
        assert_eq!(git_blob_id(b"hello\n"), "ce013625030ba8dba906f756967f9e9ca394464a");
        assert_eq!(git_blob_id(b""), "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391");
        let mut h = GitBlobHasher::new(6);
        h.update(b"hel");
        h.update(b"lo\n");
        assert_eq!(h.finish(), git_blob_id(b"hello\n"));
    }

    #[test]
    fn pointers_are_git_lfs_ones() {
        let p = lfs_pointer(&"a".repeat(64), 12345);
        assert!(p.starts_with("version https://git-lfs.github.com/spec/v1\noid sha256:aaaa"));
        assert!(p.ends_with("\nsize 12345\n"));
        assert!(is_hex(&"0f".repeat(32), 64));
        assert!(!is_hex(&"0F".repeat(32), 64));
        assert!(!is_hex("abc", 64));
    }
}
