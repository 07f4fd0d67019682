//! `aifactory apply` and `application`: apply, follow, accept, withdraw, reply; assess
//! and decide (programme managers).

use super::*;

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
