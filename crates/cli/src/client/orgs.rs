//! `aifactory org` and `aifactory invitation`: organisations, their members, invitations.

use super::*;

#[derive(Debug, Subcommand)]
pub enum OrgCmd {
    List,
    Show {
        id: String,
    },
    Create {
        #[arg(long)]
        name: String,
        /// startup, sme, industry, research or public.
        #[arg(long = "type")]
        org_type: String,
        #[arg(long)]
        country: String,
        #[arg(long, value_delimiter = ',')]
        sectors: Vec<String>,
    },
    /// The organisation's members and their roles (default: your organisation).
    Members {
        id: Option<String>,
    },
    /// Invite someone by e-mail address; they become a member when they accept
    /// (`aifactory invitation accept`). Organisation admins.
    Invite {
        /// The organisation (default: yours).
        id: Option<String>,
        #[arg(long)]
        email: String,
        /// member or org-admin.
        #[arg(long, default_value = "member")]
        role: String,
    },
    /// The organisation's invitations and what became of them (default: your organisation).
    Invitations {
        id: Option<String>,
    },
    /// Add an existing user without an invitation (platform admins, for onboarding).
    AddMember {
        id: String,
        #[arg(long)]
        user: String,
        /// member or org-admin.
        #[arg(long, default_value = "member")]
        role: String,
    },
    RemoveMember {
        id: String,
        #[arg(long)]
        user: String,
    },
}

pub fn org(conn: &Conn, cmd: OrgCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["id", "name", "type", "country", "sectors"];
    match cmd {
        OrgCmd::List => c.print(&c.call("GET", "/api/v1/orgs", None)?, &cols),
        OrgCmd::Show { id } => c.print(&c.call("GET", &format!("/api/v1/orgs/{id}"), None)?, &cols),
        OrgCmd::Create {
            name,
            org_type,
            country,
            sectors,
        } => c.print(
            &c.call(
                "POST",
                "/api/v1/orgs",
                Some(&json!({"name": name, "type": org_type, "country": country, "sectors": sectors})),
            )?,
            &cols,
        ),
        OrgCmd::Members { id } => c.print(
            &c.call("GET", &format!("/api/v1/orgs/{}/members", c.org_id(id)?), None)?,
            &["id", "name", "email", "role"],
        ),
        OrgCmd::Invite { id, email, role } => c.print(
            &c.call(
                "POST",
                &format!("/api/v1/orgs/{}/invitations", c.org_id(id)?),
                Some(&json!({"email": email, "role": role})),
            )?,
            &INVITATION_COLUMNS,
        ),
        OrgCmd::Invitations { id } => c.print(
            &c.call("GET", &format!("/api/v1/orgs/{}/invitations", c.org_id(id)?), None)?,
            &INVITATION_COLUMNS,
        ),
        OrgCmd::AddMember { id, user, role } => c.print(
            &c.call(
                "POST",
                &format!("/api/v1/orgs/{id}/members"),
                Some(&json!({"user": user, "role": role})),
            )?,
            &["id", "name", "email", "role"],
        ),
        OrgCmd::RemoveMember { id, user } => {
            c.call("DELETE", &format!("/api/v1/orgs/{id}/members/{user}"), None)?;
        }
    }
    Ok(())
}

const INVITATION_COLUMNS: [&str; 5] = ["id", "email", "role", "state", "expires_at"];

#[derive(Debug, Subcommand)]
pub enum InvitationCmd {
    /// Invitations waiting for your e-mail address.
    List,
    /// Join the organisation that invited you.
    Accept {
        id: String,
    },
    Decline {
        id: String,
    },
}

pub fn invitation(conn: &Conn, cmd: InvitationCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["id", "org_name", "role", "state", "expires_at"];
    let v = match cmd {
        InvitationCmd::List => c.call("GET", "/api/v1/me/invitations", None)?,
        InvitationCmd::Accept { id } => c.call("POST", &format!("/api/v1/invitations/{id}/accept"), None)?,
        InvitationCmd::Decline { id } => c.call("POST", &format!("/api/v1/invitations/{id}/decline"), None)?,
    };
    c.print(&v, &cols);
    Ok(())
}
