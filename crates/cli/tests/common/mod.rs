//! Helpers shared by the end-to-end tests: a real `aifactory serve` process and the CLI.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_aifactory");

pub struct Server {
    pub child: Child,
    pub url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn serve(dir: &Path, port: u16) -> Server {
    serve_with(dir, port, &[])
}

/// `aifactory serve --demo` on `port` with data in `dir`, plus `extra` flags.
pub fn serve_with(dir: &Path, port: u16, extra: &[&str]) -> Server {
    serve_with_env(dir, port, extra, &[])
}

/// As [`serve_with`], with environment variables for the server.
pub fn serve_with_env(dir: &Path, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let child = Command::new(BIN)
        .args([
            "serve",
            "--demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            dir.to_str().unwrap(),
        ])
        .args(extra)
        .envs(env.iter().copied())
        .env_remove("AIFACTORY_DATABASE")
        .stdout(Stdio::null())
        // Kept for post-mortems of failing tests.
        .stderr(std::fs::File::create(dir.with_extension("server.log")).map_or(Stdio::null(), Stdio::from))
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server { child, url }
}

pub fn token(dir: &Path, who: &str) -> String {
    let tokens: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("demo-tokens.json")).unwrap()).unwrap();
    tokens[who].as_str().unwrap().to_string()
}

pub fn cli(server: &Server, token: &str, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("AIFACTORY_URL", &server.url)
        .env("AIFACTORY_TOKEN", token)
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .output()
        .unwrap()
}

pub fn json(o: &Output) -> Value {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// The Python of the virtualenv `scripts/test` makes with the clients from PyPI (the
/// Hugging Face client, pyshacl, moto, Prometheus's client), named in
/// `AIFACTORY_TEST_HF_PYTHON`; in CI its absence is an error, elsewhere `suite` is skipped.
pub fn pypi_python(suite: &str) -> Option<PathBuf> {
    match std::env::var("AIFACTORY_TEST_HF_PYTHON") {
        Ok(p) => Some(PathBuf::from(p)),
        Err(_) if std::env::var("CI").is_ok() => {
            panic!("CI must run the {suite} suite: AIFACTORY_TEST_HF_PYTHON is not set")
        }
        Err(_) => {
            eprintln!("AIFACTORY_TEST_HF_PYTHON not set: {suite} suite skipped (./scripts/test sets it)");
            None
        }
    }
}

/// A script of `crates/cli/tests/`.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name)
}

pub fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aifactory-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Every reservation of the caller's first project is settled and its allocation's used
/// GPU-seconds are exactly the jobs' usage (each booked once); returns that usage.
pub fn assert_booked_once(server: &Server, t: &str, jobs: &[&String]) -> i64 {
    let project = json(&cli(server, t, &["project", "list", "--output", "json"]))["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let alloc = json(&cli(
        server,
        t,
        &["alloc", "list", "--project", &project, "--output", "json"],
    ));
    let gs = &alloc["items"][0]["gpu_seconds"];
    assert_eq!(gs["reserved"], 0, "every reservation settled: {gs}");
    let per_job: i64 = jobs
        .iter()
        .map(|j| {
            json(&cli(server, t, &["usage", "--job", j, "--output", "json"]))["gpu_seconds"]
                .as_i64()
                .unwrap()
        })
        .sum();
    assert_eq!(
        gs["used"].as_i64().unwrap(),
        per_job,
        "the allocation's usage is exactly the jobs' usage, each booked once"
    );
    per_job
}

/// `job submit --gpus G --time T --parsable -- sh -c SCRIPT`: the new job's id.
pub fn submit_sh(server: &Server, token: &str, gpus: &str, time: &str, script: &str) -> String {
    let o = cli(
        server,
        token,
        &[
            "job",
            "submit",
            "--gpus",
            gpus,
            "--time",
            time,
            "--parsable",
            "--",
            "sh",
            "-c",
            script,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A real SMTP server on loopback (aiosmtpd, Debian's python3-aiosmtpd, which the test
/// script installs) that delivers into a Maildir.
pub struct Smtpd {
    pub child: Child,
    pub port: u16,
    pub maildir: PathBuf,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn smtpd(maildir: &Path, port: u16) -> Smtpd {
    std::fs::create_dir_all(maildir.parent().unwrap()).unwrap();
    let python = std::env::var("AIFACTORY_TEST_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".into());
    let child = Command::new(&python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start an SMTP server with {python} -m aiosmtpd ({e}): scripts/test installs python3-aiosmtpd"
            )
        });
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "aiosmtpd did not listen: is python3-aiosmtpd installed? (scripts/test installs it)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Smtpd {
        child,
        port,
        maildir: maildir.to_path_buf(),
    }
}

impl Smtpd {
    /// Every message delivered so far, as text.
    pub fn messages(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return vec![];
        };
        let mut out: Vec<(std::time::SystemTime, String)> = entries
            .flatten()
            .filter_map(|e| {
                let time = e.metadata().ok()?.modified().ok()?;
                Some((time, std::fs::read_to_string(e.path()).ok()?))
            })
            .collect();
        out.sort();
        out.into_iter().map(|(_, m)| m).collect()
    }

    /// Waits for a message to `to` whose text contains `needle`.
    pub fn wait_for(&self, to: &str, needle: &str) -> String {
        let started = Instant::now();
        loop {
            if let Some(m) = self
                .messages()
                .into_iter()
                .find(|m| m.contains(&format!("To: {to}")) && m.contains(needle))
            {
                return m;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "no mail to {to} containing `{needle}`"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
