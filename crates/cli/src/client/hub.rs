//! `aifactory data` and `aifactory model`: the catalogue and the hub from the command line.
//! Search and show entries, pull a revision into a folder and push a folder as a commit
//! (through the same protocol as the Hugging Face client: inline files up to 10 MiB, Git
//! LFS beyond), ask for access to restricted entries, decide requests, read the audit log.
//! Transfers show a progress bar on a terminal.

use super::*;
use base64::Engine as _;
use sha2::Digest as _;
use std::io::Read;
use std::path::Path;

/// Files up to this size go inline in the commit, as the server's `preupload` says.
const INLINE_MAX: u64 = 10 * 1024 * 1024;

#[derive(Debug, Subcommand)]
pub enum HubCmd {
    /// Search the catalogue: words, and facets.
    Search {
        /// Words to look for (the last one also as a prefix).
        query: Option<String>,
        #[arg(long)]
        theme: Option<String>,
        #[arg(long)]
        licence: Option<String>,
        #[arg(long)]
        format: Option<String>,
        /// Organisation type of the publisher.
        #[arg(long)]
        org_type: Option<String>,
        /// `public` or `restricted`.
        #[arg(long)]
        access: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// One entry with its metadata.
    Show { id: String },
    /// Download a revision's files into a folder (default: ./NAME).
    Pull {
        id: String,
        #[arg(long, default_value = "main")]
        revision: String,
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Upload a folder's files as one commit on `main` (the repository is created if it
    /// does not exist, with --access).
    Push {
        id: String,
        dir: PathBuf,
        #[arg(long, default_value = "Upload files")]
        message: String,
        /// `public`, `restricted` or `non-public`, for a new repository.
        #[arg(long, default_value = "public")]
        access: String,
    },
    /// Ask for access to a restricted entry.
    RequestAccess {
        id: String,
        #[arg(long)]
        purpose: String,
        #[arg(long)]
        days: u32,
        /// The organisation asking, if you belong to several.
        #[arg(long)]
        org: Option<String>,
    },
    /// An entry's access requests (all of them for its owner).
    Requests { id: String },
    /// Grant a waiting request (the entry's owner).
    Grant {
        request: String,
        #[arg(long)]
        reason: String,
        /// Days granted [default: as asked].
        #[arg(long)]
        days: Option<u32>,
    },
    /// Refuse a waiting request (the entry's owner).
    Refuse {
        request: String,
        #[arg(long)]
        reason: String,
    },
    /// End a grant before its time (the entry's owner): jobs that have not started yet
    /// lose the data.
    Revoke {
        request: String,
        #[arg(long)]
        reason: String,
    },
    /// An entry's audit log: decisions and downloads (its owner and staff).
    Audit { id: String },
}

/// Whether `data` or `model` was asked for.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Dataset,
    Model,
}

impl Kind {
    fn singular(self) -> &'static str {
        match self {
            Kind::Dataset => "dataset",
            Kind::Model => "model",
        }
    }
    fn plural(self) -> &'static str {
        match self {
            Kind::Dataset => "datasets",
            Kind::Model => "models",
        }
    }
    fn prefix(self) -> &'static str {
        match self {
            Kind::Dataset => "datasets/",
            Kind::Model => "",
        }
    }
}

fn bar(total: u64, what: &str) -> indicatif::ProgressBar {
    // On a terminal only: scripts and logs get no bar.
    let target = indicatif::ProgressDrawTarget::stderr();
    let bar = indicatif::ProgressBar::with_draw_target(Some(total), target);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:30!} {bar:30} {bytes:>10}/{total_bytes:10} {binary_bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(what.to_string());
    bar
}

pub fn hub(conn: &Conn, kind: Kind, cmd: HubCmd) -> Result<()> {
    let c = Client::new(conn);
    let cols = ["repo_id", "access_rights", "publisher", "formats", "updated_at"];
    let rcols = ["id", "org", "purpose", "days", "state", "valid_until", "reason"];
    let entry = |id: &str| format!("/api/v1/catalogue/{}/{id}", kind.singular());
    match cmd {
        HubCmd::Search {
            query,
            theme,
            licence,
            format,
            org_type,
            access,
            limit,
        } => {
            let mut params = vec![format!("kind={}", kind.singular()), format!("limit={limit}")];
            for (k, v) in [
                ("q", query),
                ("theme", theme),
                ("licence", licence),
                ("format", format),
                ("org_type", org_type),
                ("access_rights", access),
            ] {
                if let Some(v) = v {
                    params.push(format!("{k}={}", encode(&v)));
                }
            }
            let found = c.call("GET", &format!("/api/v1/catalogue?{}", params.join("&")), None)?;
            if c.output == Output::Json {
                println!("{found}");
                return Ok(());
            }
            c.print(&found, &cols);
            println!("{} found", found["total"]);
            Ok(())
        }
        HubCmd::Show { id } => {
            c.print(&c.call("GET", &entry(&id), None)?, &cols);
            Ok(())
        }
        HubCmd::Pull { id, revision, dir } => pull(&c, kind, &id, &revision, dir),
        HubCmd::Push {
            id,
            dir,
            message,
            access,
        } => push(&c, kind, &id, &dir, &message, &access),
        HubCmd::RequestAccess { id, purpose, days, org } => {
            c.print(
                &c.call(
                    "POST",
                    &format!("{}/access-requests", entry(&id)),
                    Some(&json!({"purpose": purpose, "days": days, "org": org})),
                )?,
                &rcols,
            );
            Ok(())
        }
        HubCmd::Requests { id } => {
            c.print(
                &c.call("GET", &format!("{}/access-requests", entry(&id)), None)?,
                &rcols,
            );
            Ok(())
        }
        HubCmd::Grant { request, reason, days } => {
            c.print(
                &c.call(
                    "POST",
                    &format!("/api/v1/access-requests/{request}/decision"),
                    Some(&json!({"grant": true, "reason": reason, "days": days})),
                )?,
                &rcols,
            );
            Ok(())
        }
        HubCmd::Refuse { request, reason } => {
            c.print(
                &c.call(
                    "POST",
                    &format!("/api/v1/access-requests/{request}/decision"),
                    Some(&json!({"grant": false, "reason": reason})),
                )?,
                &rcols,
            );
            Ok(())
        }
        HubCmd::Revoke { request, reason } => {
            c.print(
                &c.call(
                    "POST",
                    &format!("/api/v1/access-requests/{request}/revoke"),
                    Some(&json!({"reason": reason})),
                )?,
                &rcols,
            );
            Ok(())
        }
        HubCmd::Audit { id } => {
            c.print(
                &c.call("GET", &format!("{}/audit", entry(&id)), None)?,
                &["at", "actor", "action", "detail"],
            );
            Ok(())
        }
    }
}

/// Percent-encodes a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Percent-encodes a path in a repository, keeping its `/`.
fn encode_path(p: &str) -> String {
    p.split('/').map(encode).collect::<Vec<_>>().join("/")
}

fn pull(c: &Client, kind: Kind, id: &str, revision: &str, dir: Option<PathBuf>) -> Result<()> {
    let info = c.call(
        "GET",
        &format!("/api/{}/{id}/revision/{}", kind.plural(), encode(revision)),
        None,
    )?;
    let sha = info["sha"].as_str().context("the revision's commit")?.to_string();
    let dir = dir.unwrap_or_else(|| PathBuf::from(id.rsplit('/').next().unwrap_or(id)));
    let files = info["siblings"].as_array().cloned().unwrap_or_default();
    let total: u64 = files.iter().filter_map(|f| f["size"].as_u64()).sum();
    let progress = bar(total, &format!("{id}@{}", &sha[..8]));
    for f in &files {
        let path = f["rfilename"].as_str().context("a file name")?;
        // The server checks paths; this keeps a hostile one out of the folder anyway.
        if path.starts_with('/') || path.split('/').any(|s| s == ".." || s.is_empty()) {
            bail!("refusing the path `{path}`");
        }
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap_or(&dir))?;
        let tmp = target.with_extension("aifactory-partial");
        let url = format!("/{}{id}/resolve/{sha}/{}", kind.prefix(), encode_path(path));
        let mut resp = c
            .agent
            .get(&format!("{}{url}", c.base))
            .header(
                "Authorization",
                &c.token.as_deref().map_or_else(String::new, |t| format!("Bearer {t}")),
            )
            .config()
            .timeout_global(None)
            .build()
            .call()
            .with_context(|| format!("cannot reach {}", c.base))?;
        if resp.status().as_u16() >= 400 {
            return c.call("GET", &url, None).map(|_| ());
        }
        let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
        let mut out = std::fs::File::create(&tmp)?;
        let mut digest = sha2::Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut got = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            digest.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            got += n as u64;
            progress.inc(n as u64);
        }
        out.sync_all()?;
        let size = f["size"].as_u64().unwrap_or(got);
        if got != size {
            bail!("`{path}`: {got} bytes came, {size} expected");
        }
        if let Some(expected) = f["lfs"]["sha256"].as_str() {
            let actual: String = digest.finalize().iter().map(|b| format!("{b:02x}")).collect();
            if actual != expected {
                bail!("`{path}`: its SHA-256 is {actual}, not {expected}");
            }
        }
        std::fs::rename(&tmp, &target)?;
    }
    progress.finish_and_clear();
    println!("{} files of {id} at {sha} in {}", files.len(), dir.display());
    Ok(())
}

/// Every file under `dir` (hidden ones aside), by path relative to it.
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let e = e?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            let meta = e.metadata()?;
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() {
                let rel = e.path().strip_prefix(dir)?.to_string_lossy().replace('\\', "/");
                out.push((rel, e.path(), meta.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A large file in parts, resuming: the session says which parts it has already (from an
/// earlier push that was cut off), and only the others are sent.
fn upload_in_parts(
    c: &Client,
    href: &str,
    upload: &Value,
    chunk: &str,
    path: &Path,
    size: u64,
    progress: &indicatif::ProgressBar,
) -> Result<()> {
    use std::io::{Read as _, Seek as _};
    let chunk: u64 = chunk.parse().context("the server's chunk_size")?;
    let status: Value = serde_json::from_str(&c.agent.get(href).call()?.body_mut().read_to_string()?)?;
    let mut etags: std::collections::BTreeMap<u64, String> = status["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["partNumber"].as_u64()?, p["etag"].as_str()?.to_string())))
        .collect();
    let parts = size.div_ceil(chunk);
    let mut file = std::fs::File::open(path)?;
    for n in 1..=parts {
        let len = (size - (n - 1) * chunk).min(chunk);
        if etags.contains_key(&n) {
            progress.inc(len);
            continue;
        }
        let url = upload["header"][format!("{n:05}")]
            .as_str()
            .ok_or_else(|| anyhow!("the server gave no URL for part {n}"))?;
        file.seek(std::io::SeekFrom::Start((n - 1) * chunk))?;
        let mut reader = progress.wrap_read((&mut file).take(len));
        let resp = c
            .agent
            .put(url)
            .config()
            .timeout_global(None)
            .build()
            .send(ureq::SendBody::from_reader(&mut reader))?;
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| anyhow!("part {n}: no ETag in the answer"))?;
        etags.insert(n, etag.to_string());
    }
    let parts: Vec<Value> = etags
        .iter()
        .map(|(n, etag)| json!({"partNumber": n, "etag": etag}))
        .collect();
    let oid = status["oid"].as_str().unwrap_or_default();
    let mut done = c
        .agent
        .post(href)
        .header("Content-Type", "application/json")
        .send(json!({"oid": oid, "parts": parts}).to_string())
        .context("completing the upload")?;
    if done.status().as_u16() >= 400 {
        bail!("{}", done.body_mut().read_to_string().unwrap_or_default());
    }
    Ok(())
}

fn push(c: &Client, kind: Kind, id: &str, dir: &Path, message: &str, access: &str) -> Result<()> {
    let files = files_under(dir)?;
    if files.is_empty() {
        bail!("no files under {}", dir.display());
    }
    let (status, _) = c.request("GET", &format!("/api/{}/{id}", kind.plural()), None)?;
    if status == 404 {
        c.call(
            "POST",
            "/api/repos/create",
            Some(&json!({"name": id, "type": kind.singular(), "access_rights": access})),
        )?;
    }
    let total: u64 = files.iter().map(|(_, _, s)| *s).sum();
    let progress = bar(total, id);
    let mut lines = vec![json!({"key": "header", "value": {"summary": message, "description": ""}})];
    for (rel, path, size) in &files {
        if *size <= INLINE_MAX {
            let bytes = std::fs::read(path)?;
            lines.push(json!({"key": "file", "value": {"path": rel, "encoding": "base64",
                "content": base64::engine::general_purpose::STANDARD.encode(&bytes)}}));
            progress.inc(*size);
            continue;
        }
        // Large: its digest first, then the content to the upload URL the LFS API gives.
        let mut digest = sha2::Sha256::new();
        let mut f = std::fs::File::open(path)?;
        std::io::copy(&mut f, &mut digest)?;
        let oid: String = digest.finalize().iter().map(|b| format!("{b:02x}")).collect();
        let batch = c.call(
            "POST",
            &format!("/{}{id}.git/info/lfs/objects/batch", kind.prefix()),
            Some(
                &json!({"operation": "upload", "transfers": ["basic", "multipart"], "hash_algo": "sha256",
                         "objects": [{"oid": oid, "size": size}]}),
            ),
        )?;
        let upload = &batch["objects"][0]["actions"]["upload"];
        if let Some(chunk) = upload["header"]["chunk_size"].as_str() {
            let href = upload["href"].as_str().unwrap_or_default();
            upload_in_parts(c, href, upload, chunk, path, *size, &progress)
                .with_context(|| format!("uploading {rel}"))?;
        } else if let Some(href) = upload["href"].as_str() {
            let file = std::fs::File::open(path)?;
            let mut reader = progress.wrap_read(file);
            let mut resp = c
                .agent
                .put(href)
                .config()
                .timeout_global(None)
                .build()
                .send(ureq::SendBody::from_reader(&mut reader))
                .with_context(|| format!("uploading {rel}"))?;
            if resp.status().as_u16() >= 400 {
                let body = resp.body_mut().read_to_string().unwrap_or_default();
                bail!("uploading `{rel}`: {body}");
            }
        } else {
            progress.inc(*size);
        }
        lines.push(json!({"key": "lfsFile", "value": {"path": rel, "algo": "sha256", "oid": oid, "size": size}}));
    }
    let payload: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let token = c.token.as_deref().map_or_else(String::new, |t| format!("Bearer {t}"));
    let mut resp = c
        .agent
        .post(&format!("{}/api/{}/{id}/commit/main", c.base, kind.plural()))
        .header("Authorization", &token)
        .header("Content-Type", "application/x-ndjson")
        .config()
        .timeout_global(None)
        .build()
        .send(payload)
        .with_context(|| format!("cannot reach {}", c.base))?;
    let status = resp.status().as_u16();
    let answer: Value = serde_json::from_slice(&resp.body_mut().read_to_vec()?).unwrap_or(Value::Null);
    progress.finish_and_clear();
    if status >= 400 {
        bail!(
            "{} ({}, HTTP {status})",
            answer["detail"].as_str().unwrap_or("the commit was refused"),
            answer["code"].as_str().unwrap_or("error")
        );
    }
    if c.output == Output::Json {
        println!("{answer}");
    } else {
        println!(
            "{} files pushed to {id}: commit {}",
            files.len(),
            answer["commitOid"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}
