//! Paths of files in a repository: relative, `/`-separated, nothing that could leave the
//! repository or mean two things.

use crate::HubError;

/// The longest path accepted, in bytes (as git and most file systems allow).
pub const MAX_PATH: usize = 1024;

/// Checks a file's path in a repository: relative, no empty, `.` or `..` segments, no
/// backslash or control characters, at most [`MAX_PATH`] bytes.
pub fn check_path(path: &str) -> Result<(), HubError> {
    let bad = |why: &str| {
        Err(HubError::BadPath(format!(
            "`{path}` is not a file path in a repository: {why}"
        )))
    };
    if path.is_empty() {
        return bad("it is empty");
    }
    if path.len() > MAX_PATH {
        return bad("it is longer than 1024 bytes");
    }
    if path.starts_with('/') {
        return bad("it is absolute");
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return bad("it contains a backslash or a control character");
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("it has an empty segment"),
            "." | ".." => return bad("it has a `.` or `..` segment"),
            ".git" => return bad("`.git` is reserved"),
            _ => {}
        }
    }
    Ok(())
}

/// A folder prefix (`a/b`, or empty for the top), checked like a path.
pub fn check_folder(folder: &str) -> Result<(), HubError> {
    let trimmed = folder.trim_end_matches('/');
    if trimmed.is_empty() {
        Ok(())
    } else {
        check_path(trimmed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_pass() {
        for good in [
            "README.md",
            "data/train-00000.parquet",
            "a/b/c.txt",
            ".gitattributes",
            "x..y",
        ] {
            assert!(check_path(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../b",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "a\nb",
            ".git/config",
            "a/..",
            "..",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert!(check_path(&"a".repeat(1025)).is_err());
        assert!(check_folder("").is_ok());
        assert!(check_folder("data/").is_ok());
        assert!(check_folder("../data").is_err());
    }
}
