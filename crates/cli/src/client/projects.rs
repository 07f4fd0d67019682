//! `aifactory project`: projects and who may submit to them.

use super::*;

#[derive(Debug, Subcommand)]
pub enum ProjectCmd {
    List,
    Show {
        id: String,
    },
    Create {
        #[arg(long)]
        org: String,
        #[arg(long)]
        name: String,
        #[arg(long)]
        sector: String,
        /// The principal investigator (a user id of the organisation).
        #[arg(long)]
        pi: Option<String>,
    },
    /// Who may submit besides the organisation's admins.
    Members {
        id: String,
    },
    AddMember {
        id: String,
        #[arg(long)]
        user: String,
    },
    RemoveMember {
        id: String,
        #[arg(long)]
        user: String,
    },
}

pub fn project(conn: &Conn, cmd: ProjectCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["id", "org", "name", "sector"];
    // Projects are named by id or by the name `project list` shows.
    let cmd = match cmd {
        ProjectCmd::Show { id } => ProjectCmd::Show { id: c.project_id(&id)? },
        ProjectCmd::Members { id } => ProjectCmd::Members { id: c.project_id(&id)? },
        ProjectCmd::AddMember { id, user } => ProjectCmd::AddMember {
            id: c.project_id(&id)?,
            user,
        },
        ProjectCmd::RemoveMember { id, user } => ProjectCmd::RemoveMember {
            id: c.project_id(&id)?,
            user,
        },
        other => other,
    };
    match cmd {
        ProjectCmd::List => c.print(&c.call("GET", "/api/v1/projects", None)?, &cols),
        ProjectCmd::Show { id } => c.print(&c.call("GET", &format!("/api/v1/projects/{id}"), None)?, &cols),
        ProjectCmd::Create { org, name, sector, pi } => c.print(
            &c.call(
                "POST",
                "/api/v1/projects",
                Some(&json!({"org": org, "name": name, "sector": sector, "pi": pi})),
            )?,
            &cols,
        ),
        ProjectCmd::Members { id } => c.print(
            &c.call("GET", &format!("/api/v1/projects/{id}/members"), None)?,
            &["id", "name", "email"],
        ),
        ProjectCmd::AddMember { id, user } => c.print(
            &c.call(
                "POST",
                &format!("/api/v1/projects/{id}/members"),
                Some(&json!({"user": user})),
            )?,
            &["id", "name", "email"],
        ),
        ProjectCmd::RemoveMember { id, user } => {
            c.call("DELETE", &format!("/api/v1/projects/{id}/members/{user}"), None)?;
        }
    }
    Ok(())
}
