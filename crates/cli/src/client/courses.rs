//! `aifactory course`: list and enrol; create, enrol a class from CSV, completion
//! (programme managers).

use super::*;

#[derive(Debug, Subcommand)]
pub enum CourseCmd {
    /// Courses with their seats left.
    List,
    Show {
        course: String,
    },
    /// Take a seat (or a place on the waitlist): a playground allocation until the course ends.
    Enrol {
        course: String,
    },
    /// Create a course (programme managers).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        title: String,
        #[arg(long)]
        site: String,
        /// RFC 3339, e.g. 2027-02-01T09:00:00Z.
        #[arg(long)]
        starts: String,
        #[arg(long)]
        ends: String,
        #[arg(long)]
        seats: i64,
        #[arg(long)]
        gpu_hours: i64,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Enrol a class from a CSV file of `email,name` lines (programme managers).
    EnrolCsv {
        course: String,
        file: PathBuf,
    },
    /// Who is enrolled, waitlisted, completed (programme managers).
    Enrolments {
        course: String,
    },
    /// Give up a seat (yours, or anyone's for programme managers).
    Cancel {
        course: String,
        #[arg(long)]
        user: String,
    },
    /// Record completion (programme managers).
    Complete {
        course: String,
        #[arg(long)]
        user: String,
    },
}

pub fn course(conn: &Conn, cmd: CourseCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["name", "title", "site", "starts_at", "ends_at", "seats", "seats_left"];
    let ecols = ["user", "email", "state", "project", "allocation"];
    match cmd {
        CourseCmd::List => c.print(&c.call("GET", "/api/v1/courses", None)?, &cols),
        CourseCmd::Show { course } => c.print(&c.call("GET", &format!("/api/v1/courses/{course}"), None)?, &cols),
        CourseCmd::Enrol { course } => c.print(
            &c.call("POST", &format!("/api/v1/courses/{course}/enrol"), None)?,
            &ecols,
        ),
        CourseCmd::Create {
            name,
            title,
            site,
            starts,
            ends,
            seats,
            gpu_hours,
            description,
        } => c.print(
            &c.call(
                "POST",
                "/api/v1/courses",
                Some(
                    &json!({"name": name, "title": title, "site": site, "starts_at": starts, "ends_at": ends,
                    "seats": seats, "gpu_hours_per_trainee": gpu_hours, "description": description}),
                ),
            )?,
            &cols,
        ),
        CourseCmd::EnrolCsv { course, file } => {
            let text = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            c.print(
                &c.upload(&format!("/api/v1/courses/{course}/enrolments"), text)?,
                &ecols,
            );
        }
        CourseCmd::Enrolments { course } => c.print(
            &c.call("GET", &format!("/api/v1/courses/{course}/enrolments"), None)?,
            &ecols,
        ),
        CourseCmd::Cancel { course, user } => c.print(
            &c.call(
                "POST",
                &format!("/api/v1/courses/{course}/enrolments/{user}/cancel"),
                None,
            )?,
            &ecols,
        ),
        CourseCmd::Complete { course, user } => c.print(
            &c.call(
                "POST",
                &format!("/api/v1/courses/{course}/enrolments/{user}/complete"),
                None,
            )?,
            &ecols,
        ),
    }
    Ok(())
}
