//! Client commands talking to a factory's API: `login`, `org`, `project`, `alloc`, `job`,
//! `usage`. Tables for people, `--output json` for scripts; errors show the server's
//! message and the field at fault.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct Conn {
    /// The factory's address [else env AIFACTORY_URL, else the login file, else http://127.0.0.1:8080].
    // The variables are read by `Client::new`, not by clap, which would list them in every
    // usage line as if they had been typed.
    #[arg(long, global = true)]
    url: Option<String>,
    /// API token [else env AIFACTORY_TOKEN, else the login file].
    #[arg(long, global = true)]
    token: Option<String>,
    #[arg(long, value_enum, default_value = "table", global = true)]
    output: Output,
}

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

#[derive(Debug, Subcommand)]
pub enum AllocCmd {
    List {
        #[arg(long)]
        project: String,
    },
    Show {
        id: String,
    },
    Create {
        #[arg(long)]
        project: String,
        #[arg(long)]
        site: String,
        #[arg(long)]
        gpu_hours: i64,
        /// playground, fast-lane, standard, large-scale or preemptible.
        #[arg(long)]
        class: Option<String>,
        /// End of validity, in days from now.
        #[arg(long, default_value_t = 365)]
        days: i64,
        /// The Slurm account the site opened for it (sbatch --account).
        #[arg(long)]
        slurm_account: Option<String>,
        /// The Slurm QoS its jobs run under (sbatch --qos).
        #[arg(long)]
        slurm_qos: Option<String>,
    },
    TopUp {
        id: String,
        #[arg(long)]
        gpu_hours: i64,
    },
    Suspend {
        id: String,
    },
    Resume {
        id: String,
    },
    /// Move the end of validity.
    Extend {
        id: String,
        /// New end, in days from now.
        #[arg(long)]
        days: i64,
    },
    /// Set the Slurm account and QoS its jobs are charged to (omitted: none).
    Slurm {
        id: String,
        #[arg(long)]
        account: Option<String>,
        #[arg(long)]
        qos: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum JobCmd {
    /// Submit a job, like sbatch: a script file, or a command after `--`.
    Submit {
        /// Project to charge (default: your only project).
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        allocation: Option<String>,
        #[arg(long, default_value_t = 1)]
        gpus: u32,
        #[arg(long)]
        nodes: Option<u32>,
        /// A share of one GPU in thousandths (with --gpus 1).
        #[arg(long)]
        gpu_milli: Option<u32>,
        /// Walltime as Slurm writes it: minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]], or 30s/90m/2h/1d.
        #[arg(long, default_value = "60")]
        time: String,
        /// Accepted for sbatch habits; the class comes from the allocation.
        #[arg(long)]
        class: Option<String>,
        #[arg(long)]
        name: Option<String>,
        /// Wait for the end and exit with the job's exit code.
        #[arg(long)]
        wait: bool,
        /// Print only the job's id (like sbatch --parsable), for scripts.
        #[arg(long)]
        parsable: bool,
        /// The script to run (with bash), unless a command follows `--`.
        script: Option<PathBuf>,
        #[arg(last = true)]
        command: Vec<String>,
    },
    List {
        #[arg(long)]
        project: Option<String>,
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    Show {
        id: String,
    },
    Cancel {
        id: String,
    },
    Logs {
        id: String,
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        stderr: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SiteCmd {
    List,
}

pub fn site(conn: &Conn, cmd: SiteCmd) -> Result<()> {
    let c = Client::new(conn);
    match cmd {
        SiteCmd::List => c.print(
            &gpus_in_words(c.call("GET", "/api/v1/sites", None)?),
            &[
                "name",
                "country",
                "nodes",
                "gpus",
                "gpu_hour_price_cents",
                "carbon_g_per_kwh",
                "pue",
            ],
        ),
    }
    Ok(())
}

/// `{"H100-SXM": 8}` as `8 H100-SXM` for a table.
fn gpus_in_words(mut sites: Value) -> Value {
    for site in sites["items"].as_array_mut().into_iter().flatten() {
        if let Some(models) = site["gpus"].as_object() {
            let words: Vec<String> = models.iter().map(|(model, n)| format!("{n} {model}")).collect();
            site["gpus"] = json!(words.join(", "));
        }
    }
    sites
}

#[derive(Debug, Subcommand)]
pub enum NodeCmd {
    List,
    /// Take no new work on the node; running jobs go on.
    Drain {
        name: String,
    },
    Resume {
        name: String,
    },
}

pub fn node(conn: &Conn, cmd: NodeCmd) -> Result<()> {
    let c = Client::new(conn);
    let v = match cmd {
        NodeCmd::List => c.call("GET", "/api/v1/nodes", None)?,
        NodeCmd::Drain { name } => c.call("POST", &format!("/api/v1/nodes/{name}/drain"), None)?,
        NodeCmd::Resume { name } => c.call("POST", &format!("/api/v1/nodes/{name}/resume"), None)?,
    };
    c.print(
        &v,
        &[
            "name",
            "site",
            "partition",
            "gpu_model",
            "gpus",
            "status",
            "gpus_used_milli",
            "group",
        ],
    );
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    #[arg(long)]
    job: Option<String>,
    #[arg(long)]
    allocation: Option<String>,
    #[arg(long)]
    project: Option<String>,
    #[arg(long)]
    org: Option<String>,
}

#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct LoginFile {
    url: String,
    token: String,
}

fn login_path() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("aifactory").join("login.toml")
}

#[derive(Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
    pub output: Output,
}

impl Client {
    pub fn new(conn: &Conn) -> Client {
        let saved: Option<LoginFile> = std::fs::read_to_string(login_path())
            .ok()
            .and_then(|t| toml::from_str(&t).ok());
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let base = conn
            .url
            .clone()
            .or_else(|| env("AIFACTORY_URL"))
            .or_else(|| saved.as_ref().map(|s| s.url.clone()))
            .unwrap_or_else(|| "http://127.0.0.1:8080".into());
        let token = conn
            .token
            .clone()
            .or_else(|| env("AIFACTORY_TOKEN"))
            .or_else(|| saved.map(|s| s.token));
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_string(),
            token,
            agent,
            output: conn.output,
        }
    }

    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<(u16, Vec<u8>)> {
        let url = format!("{}{path}", self.base);
        let token = self
            .token
            .as_deref()
            .ok_or_else(|| anyhow!("no token: set AIFACTORY_TOKEN or run `aifactory login`"))?;
        let auth = format!("Bearer {token}");
        let result = match (method, body) {
            ("GET", _) => self.agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => self.agent.delete(&url).header("Authorization", &auth).call(),
            ("PUT", b) => self
                .agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.map_or_else(|| "{}".to_string(), Value::to_string)),
            (_, b) => self
                .agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.map_or_else(|| "{}".to_string(), Value::to_string)),
        };
        let mut resp = result.with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        let bytes = resp.body_mut().read_to_vec().context("reading the answer")?;
        Ok((status, bytes))
    }

    /// Copies a (possibly endless, chunked) text answer to `out` as it arrives.
    fn copy_to(&self, path: &str, out: &mut impl Write) -> Result<()> {
        let token = self
            .token
            .as_deref()
            .ok_or_else(|| anyhow!("no token: set AIFACTORY_TOKEN or run `aifactory login`"))?;
        let mut resp = self
            .agent
            .get(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {token}"))
            // A followed log lasts as long as the job.
            .config()
            .timeout_global(None)
            .build()
            .call()
            .with_context(|| format!("cannot reach {}", self.base))?;
        if resp.status().as_u16() >= 400 {
            // The problem document, with the server's words.
            return self.call("GET", path, None).map(|_| ());
        }
        use std::io::Read;
        let mut body = resp.body_mut().as_reader();
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = body.read(&mut buf).context("reading the log")?;
            if n == 0 {
                return Ok(());
            }
            out.write_all(&buf[..n])?;
            out.flush()?;
        }
    }

    /// The organisation given, else the caller's only one.
    pub fn org_id(&self, given: Option<String>) -> Result<String> {
        if let Some(id) = given {
            return Ok(id);
        }
        let me = self.call("GET", "/api/v1/me", None)?;
        match me["memberships"].as_array().map(Vec::as_slice) {
            Some([only]) => Ok(only["org_id"].as_str().unwrap_or_default().to_string()),
            _ => bail!("you belong to several organisations (or none): say which (`aifactory org list`)"),
        }
    }

    /// A project's id from its id or its name (as `project list` shows it).
    pub fn project_id(&self, project: &str) -> Result<String> {
        if project.starts_with("prj_") {
            return Ok(project.to_string());
        }
        let projects = self.call("GET", "/api/v1/projects", None)?;
        let items = projects["items"].as_array().cloned().unwrap_or_default();
        match items.iter().find(|p| p["name"] == project) {
            Some(p) => Ok(p["id"].as_str().unwrap_or_default().to_string()),
            None => {
                let names: Vec<&str> = items.iter().filter_map(|p| p["name"].as_str()).collect();
                bail!("no project `{project}`: yours are {}", names.join(", "))
            }
        }
    }

    /// A JSON call; a problem document becomes an error with the server's words.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, bytes) = self.request(method, path, body)?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status >= 400 {
            let detail = value["detail"].as_str().unwrap_or("the server refused the request");
            let code = value["code"].as_str().unwrap_or("error");
            return Err(match value["field"].as_str() {
                Some(field) => anyhow!("{field}: {detail} ({code}, HTTP {status})"),
                None => anyhow!("{detail} ({code}, HTTP {status})"),
            });
        }
        Ok(value)
    }

    fn print(&self, value: &Value, columns: &[&str]) {
        if self.output == Output::Json {
            println!("{value}");
            return;
        }
        let rows: Vec<&Value> = match value.get("items").and_then(Value::as_array) {
            Some(items) => items.iter().collect(),
            None => vec![value],
        };
        let cell = |v: &Value| match v {
            Value::Null => "-".to_string(),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect::<Vec<_>>()
                .join(" "),
            other => other.to_string(),
        };
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| columns.iter().map(|c| cell(&r[*c])).collect())
            .collect();
        let widths: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| table.iter().map(|r| r[i].len()).chain([c.len()]).max().unwrap_or(0))
            .collect();
        let line = |cells: Vec<String>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_string()
        };
        println!("{}", line(columns.iter().map(|c| c.to_uppercase()).collect()));
        for r in table {
            println!("{}", line(r));
        }
    }
}

pub fn login(url: String, token: String) -> Result<()> {
    let client = Client::new(&Conn {
        url: Some(url.clone()),
        token: Some(token.clone()),
        output: Output::Table,
    });
    let me = client.call("GET", "/api/v1/me", None)?;
    let path = login_path();
    std::fs::create_dir_all(path.parent().unwrap_or(&path)).with_context(|| format!("creating {}", path.display()))?;
    std::fs::write(&path, toml::to_string(&LoginFile { url, token })?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!(
        "logged in as {} ({}); saved in {}",
        me["user"]["name"].as_str().unwrap_or("?"),
        me["user"]["email"].as_str().unwrap_or("?"),
        path.display()
    );
    Ok(())
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

/// GPU-seconds as GPU-hours for a table: two decimals, and never 0.00 for some use.
fn gpu_hours(gpu_seconds: i64) -> String {
    match gpu_seconds {
        0 => "0".into(),
        1..36 => "<0.01".into(),
        gs => format!("{:.2}", gs as f64 / 3600.0),
    }
}

fn with_hours(mut v: Value) -> Value {
    let fix = |a: &mut Value| {
        if let Some(g) = a.get("gpu_seconds").cloned() {
            for k in ["granted", "reserved", "used", "available"] {
                a[format!("{k}_gpu_h")] = json!(gpu_hours(g[k].as_i64().unwrap_or(0)));
            }
        }
    };
    match v.get_mut("items").and_then(Value::as_array_mut) {
        Some(items) => items.iter_mut().for_each(fix),
        None => fix(&mut v),
    }
    v
}

pub fn alloc(conn: &Conn, cmd: AllocCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = [
        "id",
        "project",
        "site",
        "class",
        "state",
        "granted_gpu_h",
        "reserved_gpu_h",
        "used_gpu_h",
        "available_gpu_h",
        "valid_until",
        "slurm_account",
    ];
    let v = match cmd {
        AllocCmd::List { project } => c.call(
            "GET",
            &format!("/api/v1/allocations?project={}", c.project_id(&project)?),
            None,
        )?,
        AllocCmd::Show { id } => c.call("GET", &format!("/api/v1/allocations/{id}"), None)?,
        AllocCmd::Create {
            project,
            site,
            gpu_hours,
            class,
            days,
            slurm_account,
            slurm_qos,
        } => {
            let until = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64
                + days * 86_400;
            c.call(
                "POST",
                "/api/v1/allocations",
                Some(&json!({
                    "project": c.project_id(&project)?, "site": site, "gpu_hours": gpu_hours, "class": class, "valid_until": until,
                    "slurm_account": slurm_account, "slurm_qos": slurm_qos,
                })),
            )?
        }
        AllocCmd::TopUp { id, gpu_hours } => c.call(
            "POST",
            &format!("/api/v1/allocations/{id}/top-up"),
            Some(&json!({"gpu_hours": gpu_hours})),
        )?,
        AllocCmd::Suspend { id } => c.call("POST", &format!("/api/v1/allocations/{id}/suspend"), None)?,
        AllocCmd::Resume { id } => c.call("POST", &format!("/api/v1/allocations/{id}/resume"), None)?,
        AllocCmd::Extend { id, days } => {
            let until = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs() as i64
                + days * 86_400;
            c.call(
                "POST",
                &format!("/api/v1/allocations/{id}/extend"),
                Some(&json!({"valid_until": until})),
            )?
        }
        AllocCmd::Slurm { id, account, qos } => c.call(
            "PUT",
            &format!("/api/v1/allocations/{id}/slurm"),
            Some(&json!({"account": account, "qos": qos})),
        )?,
    };
    c.print(&with_hours(v), &cols);
    Ok(())
}

/// Slurm's time formats (a bare number is minutes), plus 30s / 90m / 2h / 1d.
pub fn parse_walltime(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let bad = || format!("`{s}` is not a walltime (minutes, MM:SS, HH:MM:SS, D-HH[:MM[:SS]], or 30s/90m/2h/1d)");
    let num = |x: &str| x.parse::<u64>().map_err(|_| bad());
    if let Some(unit) = s.chars().last().filter(char::is_ascii_alphabetic) {
        let n = num(&s[..s.len() - 1])?;
        return match unit {
            's' => Ok(n),
            'm' => Ok(n * 60),
            'h' => Ok(n * 3600),
            'd' => Ok(n * 86_400),
            _ => Err(bad()),
        };
    }
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (Some(num(d)?), r),
        None => (None, s),
    };
    let parts: Vec<u64> = rest.split(':').map(num).collect::<Result<_, _>>()?;
    let secs = match (days, parts.as_slice()) {
        (None, [m]) => m * 60,
        (None, [m, s]) => m * 60 + s,
        (None, [h, m, s]) => h * 3600 + m * 60 + s,
        (Some(d), [h]) => d * 86_400 + h * 3600,
        (Some(d), [h, m]) => d * 86_400 + h * 3600 + m * 60,
        (Some(d), [h, m, s]) => d * 86_400 + h * 3600 + m * 60 + s,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err("the walltime must be positive".into());
    }
    Ok(secs)
}

const JOB_COLUMNS: [&str; 8] = [
    "id",
    "name",
    "state",
    "gpus",
    "walltime_s",
    "submitted_at",
    "exit_code",
    "reason",
];

pub fn job(conn: &Conn, cmd: JobCmd) -> Result<i32> {
    let c = Client::new(conn);
    match cmd {
        JobCmd::Submit {
            project,
            allocation,
            gpus,
            nodes,
            gpu_milli,
            time,
            class: _,
            name,
            wait,
            parsable,
            script,
            command,
        } => {
            let walltime = parse_walltime(&time).map_err(|e| anyhow!("--time: {e}"))?;
            // Named like sbatch names jobs: after the script, else after the program.
            let default_name = match (&script, command.first()) {
                (Some(path), _) => path.file_name().map(|n| n.to_string_lossy().into_owned()),
                (None, Some(program)) => program.rsplit('/').next().map(str::to_string),
                (None, None) => None,
            };
            let command = match (script, command.is_empty()) {
                (Some(path), true) => {
                    let text =
                        std::fs::read_to_string(&path).with_context(|| format!("reading script {}", path.display()))?;
                    vec!["bash".into(), "-c".into(), text]
                }
                (None, false) => command,
                (Some(_), false) => bail!("give a script or a command after --, not both"),
                (None, true) => bail!("nothing to run: give a script file or a command after --"),
            };
            let project = match project {
                Some(p) => c.project_id(&p)?,
                None => {
                    let projects = c.call("GET", "/api/v1/projects", None)?;
                    match projects["items"].as_array().map(Vec::as_slice) {
                        Some([only]) => only["id"].as_str().unwrap_or_default().to_string(),
                        _ => bail!(
                            "--project: you have several projects (or none); say which (`aifactory project list`)"
                        ),
                    }
                }
            };
            let name = name.or(default_name);
            let body = json!({"project": project, "allocation": allocation, "gpus": gpus, "nodes": nodes, "gpu_milli": gpu_milli,
                              "walltime_s": walltime, "name": name, "command": command});
            let job = c.call("POST", "/api/v1/jobs", Some(&body))?;
            let id = job["id"].as_str().unwrap_or_default().to_string();
            if !wait {
                match (parsable, c.output) {
                    (true, _) => println!("{id}"),
                    (false, Output::Json) => println!("{job}"),
                    (false, Output::Table) => println!("Submitted job {id}"),
                }
                return Ok(0);
            }
            if c.output == Output::Table {
                // Like srun: the job's output as it comes (stdout here, stderr on stderr),
                // the id at once on stderr so that stdout holds only the job's words.
                eprintln!("Submitted job {id}");
                let (errors, path) = (c.clone(), format!("/api/v1/jobs/{id}/logs?stream=stderr&follow=true"));
                let err_stream = std::thread::spawn(move || errors.copy_to(&path, &mut std::io::stderr()));
                c.copy_to(
                    &format!("/api/v1/jobs/{id}/logs?stream=stdout&follow=true"),
                    &mut std::io::stdout(),
                )?;
                let _ = err_stream.join();
            }
            loop {
                let j = c.call("GET", &format!("/api/v1/jobs/{id}"), None)?;
                let state = j["state"].as_str().unwrap_or("");
                if !["pending", "running"].contains(&state) {
                    if c.output == Output::Json {
                        println!("{j}");
                    } else if state != "completed" {
                        let reason = j["reason"].as_str().unwrap_or("");
                        eprintln!("job {id} {state}: {reason}");
                    }
                    return Ok(match (state, j["exit_code"].as_i64()) {
                        (_, Some(code)) => code.clamp(0, 255) as i32,
                        ("completed", None) => 0,
                        _ => 1,
                    });
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        JobCmd::List { project, state, limit } => {
            let mut q = format!("/api/v1/jobs?limit={limit}");
            if let Some(p) = project {
                q.push_str(&format!("&project={}", c.project_id(&p)?));
            }
            if let Some(s) = state {
                q.push_str(&format!("&state={s}"));
            }
            c.print(&c.call("GET", &q, None)?, &JOB_COLUMNS);
        }
        JobCmd::Show { id } => c.print(&c.call("GET", &format!("/api/v1/jobs/{id}"), None)?, &JOB_COLUMNS),
        JobCmd::Cancel { id } => c.print(
            &c.call("POST", &format!("/api/v1/jobs/{id}/cancel"), None)?,
            &JOB_COLUMNS,
        ),
        JobCmd::Logs { id, follow, stderr } => {
            let stream = if stderr { "stderr" } else { "stdout" };
            let path = format!("/api/v1/jobs/{id}/logs?stream={stream}&follow={follow}");
            c.copy_to(&path, &mut std::io::stdout())?;
        }
    }
    Ok(0)
}

pub fn usage(conn: &Conn, a: UsageArgs) -> Result<()> {
    let c = Client::new(conn);
    let q = match (a.job, a.allocation, a.project, a.org) {
        (Some(j), ..) => format!("job={j}"),
        (_, Some(x), ..) => format!("allocation={x}"),
        (_, _, Some(p), _) => format!("project={}", c.project_id(&p)?),
        (_, _, _, Some(o)) => format!("org={o}"),
        // Like `job submit` picks your only project: your organisation, if you have one.
        _ => format!("org={}", c.org_id(None)?),
    };
    c.print(
        &c.call("GET", &format!("/api/v1/usage?{q}"), None)?,
        &["scope", "id", "gpu_seconds", "energy_wh", "carbon_g", "cost_cents"],
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_walltime;

    #[test]
    fn walltimes_read_like_slurm() {
        assert_eq!(parse_walltime("60"), Ok(3600));
        assert_eq!(parse_walltime("5:30"), Ok(330));
        assert_eq!(parse_walltime("01:00:00"), Ok(3600));
        assert_eq!(parse_walltime("1-12"), Ok(129_600));
        assert_eq!(parse_walltime("2-00:30:00"), Ok(174_600));
        assert_eq!(parse_walltime("90m"), Ok(5400));
        assert_eq!(parse_walltime("30s"), Ok(30));
        assert!(parse_walltime("soon").is_err());
        assert!(parse_walltime("0").is_err());
        assert!(parse_walltime("1:2:3:4").is_err());
    }
}
