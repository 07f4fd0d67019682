//! Conflicts of interest between a reviewer and an application: declared by the reviewer,
//! or detected: the reviewer belongs to the applicant organisation, or worked with it (a
//! shared project or organisation in the past, or a collaboration the reviewer declared).

use serde::Serialize;

/// What is known about the reviewer.
#[derive(Debug, Clone, Default)]
pub struct Reviewer<'a> {
    /// Organisations the reviewer belongs to now.
    pub orgs: &'a [String],
    /// Organisations the reviewer worked with before (past memberships, shared projects,
    /// declared collaborations).
    pub collaborations: &'a [String],
    /// Applications the reviewer declared a conflict with.
    pub declared: &'a [String],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Conflict {
    Declared,
    SameOrganisation,
    PreviousCollaboration,
}

impl Conflict {
    pub fn reason(self) -> &'static str {
        match self {
            Conflict::Declared => "the reviewer declared a conflict of interest",
            Conflict::SameOrganisation => "the reviewer belongs to the applicant organisation",
            Conflict::PreviousCollaboration => "the reviewer worked with the applicant organisation",
        }
    }
}

/// The first conflict found, if any.
pub fn conflict(reviewer: &Reviewer<'_>, application_id: &str, applicant_org: &str) -> Option<Conflict> {
    if reviewer.declared.iter().any(|a| a == application_id) {
        Some(Conflict::Declared)
    } else if reviewer.orgs.iter().any(|o| o == applicant_org) {
        Some(Conflict::SameOrganisation)
    } else if reviewer.collaborations.iter().any(|o| o == applicant_org) {
        Some(Conflict::PreviousCollaboration)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicts_are_found_in_order() {
        let orgs = vec!["org_a".to_string()];
        let past = vec!["org_b".to_string()];
        let declared = vec!["app_1".to_string()];
        let r = Reviewer {
            orgs: &orgs,
            collaborations: &past,
            declared: &declared,
        };
        assert_eq!(conflict(&r, "app_1", "org_c"), Some(Conflict::Declared));
        assert_eq!(conflict(&r, "app_2", "org_a"), Some(Conflict::SameOrganisation));
        assert_eq!(conflict(&r, "app_2", "org_b"), Some(Conflict::PreviousCollaboration));
        assert_eq!(conflict(&r, "app_2", "org_c"), None);
        assert_eq!(conflict(&Reviewer::default(), "app_1", "org_a"), None);
    }
}
