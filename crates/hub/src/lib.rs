//! The data and model hub: repositories of datasets and models with content-addressed
//! revisions, as the Hugging Face Hub client expects them. The rules are pure (names,
//! paths, object ids, commit ids); `blobs` is the one place that touches files: the
//! content-addressed, deduplicated store of file contents.

pub mod blobs;
pub mod card;
pub mod catalogue;
pub mod commit;
pub mod harvest;
pub mod oid;
pub mod paths;
pub mod policy;
pub mod s3;
pub mod search;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HubError {
    #[error("{0}")]
    BadName(String),
    #[error("{0}")]
    BadPath(String),
}

/// What a repository holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum RepoKind {
    Model,
    Dataset,
}

impl RepoKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RepoKind::Model => "model",
            RepoKind::Dataset => "dataset",
        }
    }

    /// The segment of the Hub's API paths: `/api/models/...`, `/api/datasets/...`.
    pub fn plural(self) -> &'static str {
        match self {
            RepoKind::Model => "models",
            RepoKind::Dataset => "datasets",
        }
    }

    /// The prefix of file URLs: none for models, `datasets/` for datasets.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoKind::Model => "",
            RepoKind::Dataset => "datasets/",
        }
    }

    pub fn parse(s: &str) -> Option<RepoKind> {
        match s {
            "model" | "models" => Some(RepoKind::Model),
            "dataset" | "datasets" => Some(RepoKind::Dataset),
            _ => None,
        }
    }
}

/// Who may read a repository (DCAT-AP's access rights): anyone; those the owner grants
/// access to (and the owner's members); only the owner's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AccessRights {
    Public,
    Restricted,
    NonPublic,
}

impl AccessRights {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRights::Public => "public",
            AccessRights::Restricted => "restricted",
            AccessRights::NonPublic => "non-public",
        }
    }

    pub fn parse(s: &str) -> Option<AccessRights> {
        match s {
            "public" => Some(AccessRights::Public),
            "restricted" => Some(AccessRights::Restricted),
            "non-public" => Some(AccessRights::NonPublic),
            _ => None,
        }
    }
}

/// A namespace or repository name as the Hub accepts them: letters, digits, `-`, `_` and
/// `.`, 1 to 96 characters, not starting or ending with `-` or `.`, without `--` or `..`.
pub fn check_name(what: &str, name: &str) -> Result<(), HubError> {
    let ok = !name.is_empty()
        && name.len() <= 96
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with(['-', '.'])
        && !name.ends_with(['-', '.'])
        && !name.contains("--")
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(HubError::BadName(format!(
            "`{name}` is not a valid {what}: letters, digits, `-`, `_` and `.` (96 at most), not starting or ending with `-` or `.`, no `--` or `..`"
        )))
    }
}

/// `namespace/name`, both checked.
pub fn parse_repo_id(id: &str) -> Result<(String, String), HubError> {
    let Some((namespace, name)) = id.split_once('/') else {
        return Err(HubError::BadName(format!(
            "`{id}` is not a repository id: it is `namespace/name`"
        )));
    };
    check_name("namespace", namespace)?;
    check_name("repository name", name)?;
    Ok((namespace.to_string(), name.to_string()))
}

/// The namespace an organisation's repositories live under: its name in lower case, runs
/// of anything but letters and digits made one `-` ("Nebula Robotics" → `nebula-robotics`).
pub fn namespace_of(organisation: &str) -> String {
    let mut out = String::new();
    for c in organisation.chars().flat_map(|c| latin(c).chars().collect::<Vec<_>>()) {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    out.truncate(96);
    out
}

/// The plain Latin letters of the accented ones European names use ("Università" →
/// "Universita"); anything else as it is.
pub(crate) fn fold(c: char) -> String {
    latin(c)
}

fn latin(c: char) -> String {
    let plain = match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' => "a",
        'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ą' => "A",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' => "e",
        'È' | 'É' | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "E",
        'ì' | 'í' | 'î' | 'ï' | 'ī' => "i",
        'Ì' | 'Í' | 'Î' | 'Ï' | 'Ī' => "I",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ő' => "o",
        'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' | 'Ő' => "O",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => "u",
        'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' | 'Ů' | 'Ű' => "U",
        'ç' | 'č' | 'ć' => "c",
        'Ç' | 'Č' | 'Ć' => "C",
        'ñ' | 'ń' | 'ň' => "n",
        'Ñ' | 'Ń' | 'Ň' => "N",
        'š' | 'ś' => "s",
        'Š' | 'Ś' => "S",
        'ž' | 'ź' | 'ż' => "z",
        'Ž' | 'Ź' | 'Ż' => "Z",
        'ł' => "l",
        'Ł' => "L",
        'ř' => "r",
        'Ř' => "R",
        'ý' | 'ÿ' => "y",
        'đ' | 'ď' => "d",
        'ť' => "t",
        'ß' => "ss",
        'æ' => "ae",
        'Æ' => "AE",
        'œ' => "oe",
        'þ' => "th",
        _ => return c.to_string(),
    };
    plain.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_hubs_rules() {
        for good in ["gpt2", "nebula-robotics", "a.b_c-d", "X1"] {
            assert!(check_name("name", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            ".a",
            "a.",
            "a--b",
            "a..b",
            "a/b",
            "a b",
            "é",
            &"x".repeat(97),
        ] {
            assert!(check_name("name", bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_repo_id("nebula-robotics/arm-policy").unwrap(),
            ("nebula-robotics".into(), "arm-policy".into())
        );
        assert!(parse_repo_id("no-namespace").is_err());
        assert!(parse_repo_id("a/b/c").is_err());
    }

    #[test]
    fn an_organisations_namespace_is_its_name_made_safe() {
        assert_eq!(namespace_of("Nebula Robotics"), "nebula-robotics");
        assert_eq!(namespace_of("Baltic Vision Oy"), "baltic-vision-oy");
        assert_eq!(namespace_of("  Acme, S.p.A. "), "acme-s-p-a");
        assert_eq!(namespace_of("Università di Bologna"), "universita-di-bologna");
        assert_eq!(namespace_of("Łódź Straße Ærø"), "lodz-strasse-aero");
        assert!(check_name("namespace", &namespace_of("Università di Bologna")).is_ok());
    }
}
