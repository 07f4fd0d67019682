//! The access programme from the command line: `register` and `verify` (self-service
//! sign-up), `call` (browse and, for programme managers, open calls), `apply`,
//! `application` (follow, accept, withdraw, reply; assess and decide for programme
//! managers) and `notifications`.

use super::*;

#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    #[arg(long)]
    pub email: String,
    /// Your name.
    #[arg(long)]
    pub name: String,
    /// Your organisation's name.
    #[arg(long)]
    pub org_name: String,
    /// startup, sme, industry, research or public.
    #[arg(long)]
    pub org_type: String,
    /// ISO 3166-1 alpha-2 code (IT, FI, DE...).
    #[arg(long)]
    pub country: String,
    #[arg(long = "sector")]
    pub sectors: Vec<String>,
}

/// Registers, saves the new token like `login`, and says how to confirm the address.
pub fn register(conn: &Conn, a: RegisterArgs) -> Result<()> {
    let c = Client::new(conn);
    let body = json!({
        "email": a.email, "name": a.name,
        "organisation": {"name": a.org_name, "type": a.org_type, "country": a.country, "sectors": a.sectors},
    });
    let out = c.call("POST", "/api/v1/signup", Some(&body))?;
    let token = out["token"].as_str().unwrap_or_default().to_string();
    let path = save_login(c.base.clone(), token)?;
    if c.output == Output::Json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "registered {} for {} ({}); token saved in {}",
        out["user"]["email"].as_str().unwrap_or("?"),
        out["organisation"]["name"].as_str().unwrap_or("?"),
        out["organisation"]["id"].as_str().unwrap_or("?"),
        path.display()
    );
    println!(
        "a confirmation code was sent to {}: run `aifactory verify CODE`",
        a.email
    );
    Ok(())
}

pub fn verify(conn: &Conn, code: String) -> Result<()> {
    let c = Client::new(conn);
    let out = c.call("POST", "/api/v1/signup/verify", Some(&json!({"code": code})))?;
    if c.output == Output::Json {
        println!("{out}");
    } else {
        println!(
            "{} is confirmed: you can apply to calls (`aifactory call list`)",
            out["email"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum CallCmd {
    /// Calls, open ones first, with their budgets left.
    List,
    /// A call's rules, form and promises.
    Show { call: String },
    /// Open a call with a mode's defaults (programme managers).
    Create {
        #[arg(long)]
        name: String,
        #[arg(long)]
        title: String,
        /// playground, fast-lane, large-scale or custom.
        #[arg(long)]
        mode: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        gpu_hours: i64,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Close a call to new applications (programme managers).
    Close { call: String },
}

pub fn call_cmd(conn: &Conn, cmd: CallCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["name", "mode", "accepting", "title", "decision_working_days", "id"];
    match cmd {
        CallCmd::List => c.print(&c.call("GET", "/api/v1/calls", None)?, &cols),
        CallCmd::Show { call } => {
            let v = c.call("GET", &format!("/api/v1/calls/{call}"), None)?;
            if c.output == Output::Json {
                println!("{v}");
                return Ok(());
            }
            c.print(&v, &cols);
            println!();
            c.print(&json!({"items": v["budgets"]}), &["site", "gpu_hours", "awarded_gpu_hours", "left_gpu_hours"]);
            println!();
            c.print(&json!({"items": v["spec"]["form"]}), &["name", "kind", "required", "label"]);
        }
        CallCmd::Create {
            name,
            title,
            mode,
            site,
            gpu_hours,
            description,
        } => c.print(
            &c.call(
                "POST",
                "/api/v1/calls",
                Some(&json!({"name": name, "title": title, "mode": mode, "site": site, "gpu_hours": gpu_hours, "description": description})),
            )?,
            &cols,
        ),
        CallCmd::Close { call } => c.print(&c.call("POST", &format!("/api/v1/calls/{call}/close"), None)?, &cols),
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// The call's name or id.
    pub call: String,
    #[arg(long)]
    pub title: String,
    #[arg(long)]
    pub gpu_hours: i64,
    /// How long the allocation should last.
    #[arg(long)]
    pub days: i64,
    /// Where; the call's first site by default.
    #[arg(long)]
    pub site: Option<String>,
    /// The applying organisation; yours when you have one.
    #[arg(long)]
    pub org: Option<String>,
    /// An answer to the call's form, `name=value` (repeatable; `name=@file` reads a file).
    #[arg(long = "answer", value_name = "NAME=VALUE")]
    pub answers: Vec<String>,
    /// The sector of the work; the organisation's first by default.
    #[arg(long)]
    pub sector: Option<String>,
    /// The date your enterprise was registered (start-ups), YYYY-MM-DD.
    #[arg(long)]
    pub founded: Option<String>,
    /// Last closed year's staff in annual work units (SMEs and start-ups).
    #[arg(long)]
    pub staff: Option<f64>,
    #[arg(long)]
    pub turnover_eur: Option<i64>,
    #[arg(long)]
    pub balance_sheet_eur: Option<i64>,
    /// The year of those figures; last year by default.
    #[arg(long)]
    pub year: Option<i16>,
    /// The full declaration as a JSON file instead (partner and linked enterprises, several years).
    #[arg(long)]
    pub declaration: Option<PathBuf>,
    /// Declare on your honour that the information is true.
    #[arg(long)]
    pub declare: bool,
    /// A team member's e-mail address (repeatable).
    #[arg(long = "team")]
    pub team: Vec<String>,
    /// Keep it a draft instead of submitting.
    #[arg(long)]
    pub draft: bool,
}

pub fn apply(conn: &Conn, a: ApplyArgs) -> Result<()> {
    let c = Client::new(conn);
    let org_id = c.org_id(a.org.clone())?;
    let org = c.call("GET", &format!("/api/v1/orgs/{org_id}"), None)?;
    let mut answers = serde_json::Map::new();
    for pair in &a.answers {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--answer takes name=value, got `{pair}`"))?;
        let v = match v.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?,
            None => v.to_string(),
        };
        // Numbers and booleans as such; everything else as text.
        let value = match serde_json::from_str::<Value>(&v) {
            Ok(n @ (Value::Number(_) | Value::Bool(_))) => n,
            _ => Value::String(v),
        };
        answers.insert(k.to_string(), value);
    }
    let declaration = match &a.declaration {
        Some(path) => serde_json::from_str::<Value>(
            &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        )
        .with_context(|| format!("{} is not JSON", path.display()))?,
        None => {
            let this_year = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(2026, |d| 1970 + d.as_secs() / 31_556_952) as i16;
            let enterprise = a.staff.map(|staff| {
                json!({"years": [{
                    "year": a.year.unwrap_or(this_year - 1),
                    "staff_awu_milli": (staff * 1000.0).round() as i64,
                    "turnover_eur": a.turnover_eur.unwrap_or(0),
                    "balance_sheet_eur": a.balance_sheet_eur.unwrap_or(0),
                }]})
            });
            json!({
                "org_type": org["type"],
                "country": org["country"],
                "sector": a.sector.clone().or_else(|| org["sectors"][0].as_str().map(str::to_string)).unwrap_or_else(|| "unspecified".into()),
                "founded_on": a.founded,
                "enterprise": enterprise,
                "declared_true": a.declare,
            })
        }
    };
    let body = json!({
        "call": a.call, "org": org_id, "title": a.title, "site": a.site, "gpu_hours": a.gpu_hours,
        "duration_days": a.days, "answers": answers, "declaration": declaration, "team": a.team, "submit": !a.draft,
    });
    let out = c.call("POST", "/api/v1/applications", Some(&body))?;
    print_application(&c, &out);
    Ok(())
}

fn print_application(c: &Client, v: &Value) {
    if c.output == Output::Json {
        println!("{v}");
        return;
    }
    c.print(v, &["id", "state", "title", "gpu_hours", "site"]);
    if let Some(rules) = v["eligibility"]["rules"].as_array() {
        println!();
        for r in rules {
            let mark = if r["passed"] == true { "pass" } else { "FAIL" };
            println!(
                "  {mark}  {:<15} {}",
                r["rule"].as_str().unwrap_or("?"),
                r["reason"].as_str().unwrap_or("")
            );
        }
    }
    if let Some(clock) = v["clocks"]["decision"].as_object() {
        println!(
            "\n  decision clock: {} of {} working days, due {}{}",
            clock["elapsed_working_days"],
            clock["target_working_days"],
            clock["due_at"].as_str().unwrap_or("?"),
            if clock["breached"] == true { " (BREACHED)" } else { "" }
        );
    }
    if let Some(d) = v["decision"].as_object() {
        println!("  decision: {}", d["reasons"].as_str().unwrap_or(""));
    }
    if let (Some(p), Some(a)) = (v["project"].as_str(), v["allocation"].as_str()) {
        println!("  project {p}, allocation {a}: aifactory job submit --project {p} ...");
    }
}

#[derive(Debug, Subcommand)]
pub enum ApplicationCmd {
    /// Your organisations' applications (programme managers: all).
    List {
        #[arg(long)]
        call: Option<String>,
        #[arg(long)]
        state: Option<String>,
    },
    Show {
        id: String,
    },
    /// What happened to it.
    Events {
        id: String,
    },
    Submit {
        id: String,
    },
    Withdraw {
        id: String,
    },
    /// Back to a draft after an ineligible decision.
    Reopen {
        id: String,
    },
    /// Accept the award: the project and allocation are created at once.
    Accept {
        id: String,
    },
    Decline {
        id: String,
    },
    /// Answer the reviews (the right to reply).
    Reply {
        id: String,
        #[arg(long)]
        text: String,
    },
    /// Attach an evidence document to a draft.
    Attach {
        id: String,
        file: PathBuf,
    },
    /// Record the technical assessment (programme managers).
    Assess {
        id: String,
        #[arg(long)]
        failed: bool,
        #[arg(long)]
        notes: String,
    },
    /// Award or reject (programme managers).
    Decide {
        id: String,
        #[arg(long)]
        reject: bool,
        #[arg(long)]
        gpu_hours: Option<i64>,
        #[arg(long)]
        reasons: String,
    },
}

pub fn application(conn: &Conn, cmd: ApplicationCmd) -> Result<()> {
    let c = Client::new(conn);
    let path = |id: &str, action: &str| format!("/api/v1/applications/{id}/{action}");
    let out = match cmd {
        ApplicationCmd::List { call, state } => {
            let mut q = Vec::new();
            if let Some(call) = call {
                q.push(format!("call={call}"));
            }
            if let Some(state) = state {
                q.push(format!("state={state}"));
            }
            let v = c.call("GET", &format!("/api/v1/applications?{}", q.join("&")), None)?;
            c.print(&v, &["id", "state", "call", "title", "gpu_hours", "submitted_at"]);
            return Ok(());
        }
        ApplicationCmd::Events { id } => {
            c.print(
                &c.call("GET", &path(&id, "events"), None)?,
                &["at", "from", "to", "note"],
            );
            return Ok(());
        }
        ApplicationCmd::Attach { id, file } => {
            let name = file
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("{} has no file name", file.display()))?;
            let bytes = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let v = c.upload(&format!("{}?name={}", path(&id, "documents"), name), bytes)?;
            c.print(&v, &["id", "name", "size_bytes", "sha256"]);
            return Ok(());
        }
        ApplicationCmd::Show { id } => c.call("GET", &format!("/api/v1/applications/{id}"), None)?,
        ApplicationCmd::Submit { id } => c.call("POST", &path(&id, "submit"), None)?,
        ApplicationCmd::Withdraw { id } => c.call("POST", &path(&id, "withdraw"), None)?,
        ApplicationCmd::Reopen { id } => c.call("POST", &path(&id, "reopen"), None)?,
        ApplicationCmd::Accept { id } => c.call("POST", &path(&id, "accept"), None)?,
        ApplicationCmd::Decline { id } => c.call("POST", &path(&id, "decline"), None)?,
        ApplicationCmd::Reply { id, text } => c.call("POST", &path(&id, "reply"), Some(&json!({"text": text})))?,
        ApplicationCmd::Assess { id, failed, notes } => c.call(
            "POST",
            &path(&id, "assessment"),
            Some(&json!({"passed": !failed, "notes": notes})),
        )?,
        ApplicationCmd::Decide {
            id,
            reject,
            gpu_hours,
            reasons,
        } => c.call(
            "POST",
            &path(&id, "decision"),
            Some(&json!({"award": !reject, "gpu_hours": gpu_hours, "reasons": reasons})),
        )?,
    };
    print_application(&c, &out);
    Ok(())
}

pub fn notifications(conn: &Conn) -> Result<()> {
    let c = Client::new(conn);
    c.print(
        &c.call("GET", "/api/v1/notifications", None)?,
        &["created_at", "kind", "subject", "emailed_at"],
    );
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReviewCmd {
    /// Your review inbox (programme managers: every review).
    List,
    /// A review with the application it is about.
    Show { id: String },
    /// Submit your scores, `criterion=score` for each of the call's criteria.
    Submit {
        id: String,
        #[arg(long = "score", value_name = "CRITERION=SCORE")]
        scores: Vec<String>,
        #[arg(long)]
        comments: String,
    },
    /// Declare a conflict of interest with an application you were asked to review.
    Conflict {
        application: String,
        #[arg(long)]
        reason: String,
    },
    /// Assign a reviewer to an application in peer review (programme managers).
    Assign {
        application: String,
        #[arg(long)]
        reviewer: String,
    },
    /// An application's reviews (the applicant sees them, without authors, once all are in).
    Of { application: String },
    /// A cut-off's applications ranked by score (programme managers).
    Ranking {
        call: String,
        #[arg(long)]
        cutoff: Option<i64>,
    },
}

pub fn review(conn: &Conn, cmd: ReviewCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["id", "application", "state", "score_milli", "due_at"];
    match cmd {
        ReviewCmd::List => {
            let v = c.call("GET", "/api/v1/reviews", None)?;
            let rows: Vec<Value> = v["items"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|i| {
                    let mut r = i["review"].clone();
                    r["title"] = i["application"]["title"].clone();
                    r
                })
                .collect();
            c.print(
                &json!({ "items": rows }),
                &["id", "application", "title", "state", "due_at"],
            );
        }
        ReviewCmd::Show { id } => {
            let v = c.call("GET", &format!("/api/v1/reviews/{id}"), None)?;
            if c.output == Output::Json {
                println!("{v}");
            } else {
                c.print(&v["review"], &cols);
                println!();
                c.print(&v["application"], &["id", "title", "org", "gpu_hours", "state"]);
                if let Some(answers) = v["application"]["answers"].as_object() {
                    for (k, a) in answers {
                        println!("\n{k}:\n  {}", a.as_str().map_or_else(|| a.to_string(), str::to_string));
                    }
                }
            }
        }
        ReviewCmd::Submit { id, scores, comments } => {
            let mut map = serde_json::Map::new();
            for s in &scores {
                let (k, v) = s
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--score takes criterion=score, got `{s}`"))?;
                let n: u32 = v.parse().map_err(|_| anyhow!("`{v}` is not a whole score"))?;
                map.insert(k.to_string(), json!(n));
            }
            let v = c.call(
                "POST",
                &format!("/api/v1/reviews/{id}/submit"),
                Some(&json!({"scores": map, "comments": comments})),
            )?;
            c.print(&v, &cols);
        }
        ReviewCmd::Conflict { application, reason } => {
            c.call(
                "POST",
                &format!("/api/v1/applications/{application}/conflict"),
                Some(&json!({ "reason": reason })),
            )?;
            println!("conflict declared: {application} is no longer shown to you");
        }
        ReviewCmd::Assign { application, reviewer } => {
            let v = c.call(
                "POST",
                &format!("/api/v1/applications/{application}/reviewers"),
                Some(&json!({ "reviewer": reviewer })),
            )?;
            c.print(&v, &["id", "application", "reviewer", "due_at"]);
        }
        ReviewCmd::Of { application } => c.print(
            &c.call("GET", &format!("/api/v1/applications/{application}/reviews"), None)?,
            &["id", "state", "score_milli", "comments"],
        ),
        ReviewCmd::Ranking { call, cutoff } => {
            let q = cutoff.map(|c| format!("?cutoff={c}")).unwrap_or_default();
            c.print(
                &c.call("GET", &format!("/api/v1/calls/{call}/ranking{q}"), None)?,
                &["rank", "application", "title", "mean_score_milli", "reviews", "state"],
            );
        }
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ReportCmd {
    /// The access programme's indicators by mode, organisation type, country and sector.
    Programme {
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Usage by org_type, country, sector, site or month.
    Usage {
        #[arg(long, default_value = "org_type")]
        group_by: String,
        #[arg(long)]
        csv: bool,
    },
}

pub fn report(conn: &Conn, cmd: ReportCmd) -> Result<()> {
    let c = Client::new(conn);
    match cmd {
        ReportCmd::Programme { csv: true } => c.copy_to("/api/v1/reports/programme?format=csv", &mut std::io::stdout()),
        ReportCmd::Programme { csv: false } => {
            let v = c.call("GET", "/api/v1/reports/programme", None)?;
            c.print(
                &json!({"items": v["rows"]}),
                &[
                    "dimension",
                    "key",
                    "applications",
                    "awards",
                    "awarded_gpu_hours",
                    "used_gpu_hours",
                    "median_decision_working_days",
                    "decisions_within_target",
                    "median_seconds_to_first_job",
                ],
            );
            if c.output == Output::Table {
                println!(
                    "\nSMEs and start-ups: {} ‰ of awarded GPU-hours, {} ‰ of GPU-time used on awards",
                    v["sme_startup_awarded_permille"], v["sme_startup_used_permille"]
                );
            }
            Ok(())
        }
        ReportCmd::Usage { group_by, csv: true } => c.copy_to(
            &format!("/api/v1/reports/usage?group_by={group_by}&format=csv"),
            &mut std::io::stdout(),
        ),
        ReportCmd::Usage { group_by, csv: false } => {
            c.print(
                &c.call("GET", &format!("/api/v1/reports/usage?group_by={group_by}"), None)?,
                &["key", "entries", "gpu_seconds", "energy_wh", "carbon_g", "cost_cents"],
            );
            Ok(())
        }
    }
}

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
