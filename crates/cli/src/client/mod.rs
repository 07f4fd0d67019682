//! Client commands talking to a factory's API, one module per resource (`org` and
//! `invitation`, `project`, `alloc`, `job`, `site` and `node`, `usage`; the access
//! programme's `register`/`verify`, `call`, `apply`/`application`, `review`, `course`,
//! `report`/`notifications`; the hub's `data` and `model`); here the
//! connection, `login`, and the table printer. Tables for people, `--output json` for
//! scripts; errors show the server's message and the field at fault.

use anyhow::{Context, Result, anyhow, bail};
use clap::{Subcommand, ValueEnum};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

mod allocs;
mod applications;
mod calls;
mod courses;
mod hub;
mod jobs;
mod orgs;
mod projects;
mod reports;
mod reviews;
mod signup;
mod sites;
mod usage;

pub use allocs::*;
pub use applications::*;
pub use calls::*;
pub use courses::*;
pub use hub::*;
pub use jobs::*;
pub use orgs::*;
pub use projects::*;
pub use reports::*;
pub use reviews::*;
pub use signup::*;
pub use sites::*;
pub use usage::*;

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
        // Public endpoints (calls, sign-up) need none; elsewhere the server says so.
        let auth = self
            .token
            .as_deref()
            .map_or_else(String::new, |t| format!("Bearer {t}"));
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

    /// Sends a file as the request body; the answer as JSON.
    pub fn upload(&self, path: &str, bytes: Vec<u8>) -> Result<Value> {
        let token = self.token.as_deref().unwrap_or_default();
        let mut resp = self
            .agent
            .post(&format!("{}{path}", self.base))
            .header("Authorization", &format!("Bearer {token}"))
            .header("Content-Type", "application/octet-stream")
            .send(&bytes[..])
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = resp.status().as_u16();
        let bytes = resp.body_mut().read_to_vec().context("reading the answer")?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status >= 400 {
            bail!(
                "{} ({}, HTTP {status})",
                value["detail"].as_str().unwrap_or("the server refused the file"),
                value["code"].as_str().unwrap_or("error")
            );
        }
        Ok(value)
    }

    /// Copies a (possibly endless, chunked) text answer to `out` as it arrives.
    pub fn copy_to(&self, path: &str, out: &mut impl Write) -> Result<()> {
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
        if status == 401 && self.token.is_none() {
            bail!("no token: set AIFACTORY_TOKEN, run `aifactory login`, or register with `aifactory register`");
        }
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

/// Saves the address and token for the other commands.
fn save_login(url: String, token: String) -> Result<PathBuf> {
    let path = login_path();
    std::fs::create_dir_all(path.parent().unwrap_or(&path)).with_context(|| format!("creating {}", path.display()))?;
    std::fs::write(&path, toml::to_string(&LoginFile { url, token })?)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

pub fn login(url: String, token: String) -> Result<()> {
    let client = Client::new(&Conn {
        url: Some(url.clone()),
        token: Some(token.clone()),
        output: Output::Table,
    });
    let me = client.call("GET", "/api/v1/me", None)?;
    let path = save_login(url, token)?;
    println!(
        "logged in as {} ({}); saved in {}",
        me["user"]["name"].as_str().unwrap_or("?"),
        me["user"]["email"].as_str().unwrap_or("?"),
        path.display()
    );
    Ok(())
}
