//! Revisions: a commit is the full list of a repository's files at one point (path, content
//! digest, size), its parent, author, time and message; its id is the SHA-1 of all that in
//! a canonical form, so that the same content always has the same id and an id names
//! exactly one content (the Hub client expects 40 hexadecimal characters).

use serde::{Deserialize, Serialize};
use sha1::{Digest as _, Sha1};
use std::collections::BTreeMap;

/// A file in a revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    pub sha256: String,
    pub size: u64,
    /// The git blob id of the content (small files) or of its LFS pointer (large ones).
    pub git_oid: String,
    /// Uploaded through the LFS API (named by its SHA-256 in the Hub's answers).
    pub lfs: bool,
}

/// What a commit changes: files added or replaced, files and folders removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub put: BTreeMap<String, FileEntry>,
    pub delete_files: Vec<String>,
    pub delete_folders: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("`{0}` does not exist in this revision")]
    NoSuchFile(String),
    #[error("`{0}` is both a file and a folder")]
    FileAndFolder(String),
}

/// The tree after `changes` applied to `before`; deleting what is not there is an error,
/// as is a file where a folder is (or the reverse).
pub fn apply(
    before: &BTreeMap<String, FileEntry>,
    changes: &Changes,
) -> Result<BTreeMap<String, FileEntry>, CommitError> {
    let mut tree = before.clone();
    for path in &changes.delete_files {
        if tree.remove(path).is_none() {
            return Err(CommitError::NoSuchFile(path.clone()));
        }
    }
    for folder in &changes.delete_folders {
        let prefix = format!("{}/", folder.trim_end_matches('/'));
        let n = tree.len();
        tree.retain(|p, _| !p.starts_with(&prefix));
        if tree.len() == n {
            return Err(CommitError::NoSuchFile(folder.clone()));
        }
    }
    for (path, entry) in &changes.put {
        tree.insert(path.clone(), entry.clone());
    }
    // A path that is also another path's folder.
    let mut previous: Option<&String> = None;
    for path in tree.keys() {
        if let Some(p) = previous
            && path.starts_with(&format!("{p}/"))
        {
            return Err(CommitError::FileAndFolder(p.clone()));
        }
        previous = Some(path);
    }
    Ok(tree)
}

/// The content-addressed id of a commit.
pub fn commit_id(
    parent: Option<&str>,
    author: &str,
    time: i64,
    message: &str,
    tree: &BTreeMap<String, FileEntry>,
) -> String {
    let mut h = Sha1::new();
    h.update(b"aifactory-commit v1\n");
    h.update(format!("parent {}\nauthor {author}\ntime {time}\n", parent.unwrap_or("-")).as_bytes());
    h.update(format!("message {}\n{message}\n", message.len()).as_bytes());
    for (path, f) in tree {
        h.update(format!("file {} {} {} {}\n", f.sha256, f.size, u8::from(f.lfs), path.len()).as_bytes());
        h.update(path.as_bytes());
        h.update(b"\n");
    }
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8) -> FileEntry {
        FileEntry {
            sha256: format!("{n:02x}").repeat(32),
            size: u64::from(n),
            git_oid: format!("{n:02x}").repeat(20),
            lfs: false,
        }
    }

    fn tree(paths: &[&str]) -> BTreeMap<String, FileEntry> {
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), entry(i as u8)))
            .collect()
    }

    #[test]
    fn changes_apply_and_bad_ones_are_refused() {
        let before = tree(&["README.md", "data/a.csv", "data/b.csv"]);
        let mut changes = Changes::default();
        changes.put.insert("model.bin".into(), entry(9));
        changes.delete_folders.push("data".into());
        let after = apply(&before, &changes).unwrap();
        assert_eq!(after.keys().collect::<Vec<_>>(), ["README.md", "model.bin"]);
        let missing = Changes {
            delete_files: vec!["nope".into()],
            ..Changes::default()
        };
        assert_eq!(apply(&before, &missing), Err(CommitError::NoSuchFile("nope".into())));
        let mut clash = Changes::default();
        clash.put.insert("README.md/x".into(), entry(3));
        assert!(matches!(apply(&before, &clash), Err(CommitError::FileAndFolder(_))));
    }

    #[test]
    fn ids_name_the_content_and_its_history() {
        let t = tree(&["a", "b"]);
        let id = commit_id(None, "usr_1", 100, "first", &t);
        assert!(crate::oid::is_hex(&id, 40));
        assert_eq!(id, commit_id(None, "usr_1", 100, "first", &t), "deterministic");
        assert_ne!(id, commit_id(Some(&id), "usr_1", 100, "first", &t));
        assert_ne!(id, commit_id(None, "usr_1", 101, "first", &t));
        assert_ne!(id, commit_id(None, "usr_1", 100, "first", &tree(&["a", "c"])));
        // A message cannot pass for a file line.
        assert_ne!(
            commit_id(None, "u", 1, "x\nfile", &BTreeMap::new()),
            commit_id(None, "u", 1, "x", &BTreeMap::new())
        );
    }
}
