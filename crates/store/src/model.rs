//! What the store keeps, as plain data.

use domain::{JobSpec, OrgType, PriorityClass};
use serde::{Deserialize, Serialize};
use std::str::FromStr;

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
        pub enum $name { $(#[serde(rename = $text)] $variant),* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),* } }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s { $($text => Ok($name::$variant),)* _ => Err(format!(
                    "unknown {} `{s}` (expected one of: {})", stringify!($name), [$($text),*].join(", "))) }
            }
        }
    };
}

named_enum!(
    /// Roles that span organisations.
    PlatformRole {
        Admin = "platform-admin",
        Operator = "site-operator",
        Reviewer = "reviewer",
        ProgrammeManager = "programme-manager",
    }
);
named_enum!(
    /// Roles inside one organisation.
    OrgRole { Admin = "org-admin", Member = "member" }
);
named_enum!(InvitationState { Pending = "pending", Accepted = "accepted", Declined = "declined", Revoked = "revoked" });
named_enum!(AllocationState { Active = "active", Suspended = "suspended" });
named_enum!(CallState { Open = "open", Closed = "closed" });
named_enum!(EnrolmentState { Enrolled = "enrolled", Waitlisted = "waitlisted", Completed = "completed", Cancelled = "cancelled" });
named_enum!(ReviewState { Assigned = "assigned", Submitted = "submitted", Withdrawn = "withdrawn" });
named_enum!(
    JobState {
        Pending = "pending",
        Running = "running",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
        Timeout = "timeout",
        Rejected = "rejected",
        Lost = "lost",
    }
);
named_enum!(LedgerKind { Grant = "grant", TopUp = "top-up", Reserve = "reserve", Release = "release", Usage = "usage" });

impl JobState {
    pub fn is_final(self) -> bool {
        !matches!(self, JobState::Pending | JobState::Running)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrg {
    pub name: String,
    pub org_type: OrgType,
    pub country: String,
    pub sectors: Vec<String>,
    pub employees: Option<i64>,
    pub turnover_eur: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub org_type: OrgType,
    pub country: String,
    pub sectors: Vec<String>,
    pub employees: Option<i64>,
    pub turnover_eur: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub platform_role: Option<PlatformRole>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub platform_role: Option<PlatformRole>,
    pub created_at: i64,
    /// When the user proved the address is theirs (accounts staff create count as proven).
    pub email_verified_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Membership {
    pub org_id: String,
    pub role: OrgRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewProject {
    pub org_id: String,
    pub name: String,
    pub sector: String,
    pub pi_user_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub sector: String,
    pub pi_user_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAllocation {
    pub project_id: String,
    pub site: String,
    pub class: PriorityClass,
    pub gpu_seconds: i64,
    pub valid_from: i64,
    pub valid_until: i64,
    #[serde(default)]
    pub slurm: SlurmCharge,
    /// Charged at this price per GPU-hour instead of the site's (0: free of charge).
    #[serde(default)]
    pub price_cents_per_gpu_hour: Option<i64>,
}

/// The Slurm account (association) and QoS a site charges an allocation's jobs to; unset,
/// the Slurm executor's defaults apply.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmCharge {
    pub account: Option<String>,
    pub qos: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub id: String,
    pub project_id: String,
    pub site: String,
    pub class: PriorityClass,
    pub valid_from: i64,
    pub valid_until: i64,
    pub state: AllocationState,
    pub created_at: i64,
    pub slurm: SlurmCharge,
    pub price_cents_per_gpu_hour: Option<i64>,
}

/// GPU-seconds of an allocation; `available = granted - reserved - used`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub granted: i64,
    pub reserved: i64,
    pub used: i64,
    pub available: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewJob {
    pub allocation_id: String,
    pub user_id: String,
    pub name: String,
    pub spec: JobSpec,
    pub command: Vec<String>,
    /// GPUs × requested walltime: what admission reserves.
    pub reserved_gpu_seconds: i64,
    pub submitted_at: i64,
    pub idempotency_key: Option<String>,
    /// Hub datasets staged into the job's directory when it starts.
    pub datasets: Vec<JobDataset>,
}

/// A dataset a job reads, pinned at submission to the commit its revision named then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobDataset {
    /// The repository's id in the store.
    pub repo_id: String,
    /// `namespace/name`, as the user named it.
    pub repo: String,
    /// The revision asked for (`main`, a branch or a commit id).
    pub revision: String,
    pub commit_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub org_id: String,
    pub project_id: String,
    pub allocation_id: String,
    pub user_id: String,
    pub name: String,
    pub spec: JobSpec,
    pub command: Vec<String>,
    pub state: JobState,
    pub reserved_gpu_seconds: i64,
    pub submitted_at: i64,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub placement: Option<serde_json::Value>,
    pub idempotency_key: Option<String>,
    /// How many times it started (more than once after preemptions).
    pub runs: i64,
}

/// What was used, in integer units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub gpu_seconds: i64,
    pub energy_wh: i64,
    pub carbon_g: i64,
    pub cost_cents: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobEnd {
    pub state: JobState,
    pub ended_at: i64,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub usage: Usage,
}

#[derive(Debug, Clone, Copy)]
pub enum UsageScope<'a> {
    Job(&'a str),
    Allocation(&'a str),
    Project(&'a str),
    Org(&'a str),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    pub org_id: Option<String>,
    pub project_id: Option<String>,
    pub user_id: Option<String>,
    pub state: Option<JobState>,
}

/// One usage entry with its reporting dimensions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub org_type: OrgType,
    pub country: String,
    pub sector: String,
    pub site: String,
    pub at: i64,
    pub usage: Usage,
}

/// What admission needs to know about a project, read in one go.
#[derive(Debug, Clone)]
pub struct SubmissionContext {
    pub project: Project,
    pub org_type: domain::OrgType,
    /// Oldest first.
    pub allocations: Vec<Allocation>,
    /// Users who may submit besides the organisation's admins.
    pub members: Vec<String>,
}

/// An organisation's invitation of an e-mail address; it becomes a membership only when the
/// account holding that address accepts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    pub email: String,
    pub role: OrgRole,
    pub invited_by: String,
    pub state: InvitationState,
    pub created_at: i64,
    pub expires_at: i64,
    pub decided_at: Option<i64>,
}
