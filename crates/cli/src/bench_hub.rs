//! `aifactory bench --suite hub`: moving large files through the data and model hub. A
//! factory runs as a child process (so that its peak memory is its own); a file of random
//! bytes is uploaded through the Git LFS API and downloaded through `resolve/`, and the
//! same file is downloaded from nginx on loopback in the same run: the baseline the hub's
//! download throughput is compared with. The client is the same for both (ureq, read into
//! a sink).

use crate::bench_api::{agent, post};
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use sha2::Digest;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16) -> Result<()> {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("nothing listens on port {port} after 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Peak and current resident memory of a process, in MiB (`VmHWM`, `VmRSS`).
fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// A file of `size` random bytes and its SHA-256.
fn random_file(path: &Path, size: u64) -> Result<String> {
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let mut digest = sha2::Sha256::new();
    let mut block = vec![0u8; 1 << 20];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut left = size;
    while left > 0 {
        for chunk in block.chunks_mut(8) {
            // SplitMix64: incompressible and fast.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            let bytes = (z ^ (z >> 31)).to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        let n = left.min(block.len() as u64) as usize;
        digest.update(&block[..n]);
        f.write_all(&block[..n])?;
        left -= n as u64;
    }
    f.flush()?;
    Ok(hex(&digest.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Seconds to read `url` to the end, and the bytes read.
fn download(url: &str) -> Result<(f64, u64)> {
    let a = agent();
    let started = Instant::now();
    let mut resp = a.get(url).call()?;
    anyhow::ensure!(resp.status().is_success(), "GET {url}: HTTP {}", resp.status());
    let mut reader = resp.body_mut().with_config().limit(u64::MAX).reader();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let got = reader.read(&mut buf)?;
        if got == 0 {
            break;
        }
        n += got as u64;
    }
    Ok((started.elapsed().as_secs_f64(), n))
}

/// nginx serving `dir` on a loopback port with sendfile, as a static file server would.
fn nginx(dir: &Path, work: &Path) -> Result<(Killed, u16)> {
    let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("nginx is not installed (the baseline of this benchmark): apt-get install nginx-light")?;
    let port = free_port()?;
    let prefix = work.join("nginx");
    std::fs::create_dir_all(prefix.join("logs"))?;
    let conf = prefix.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            "daemon off;\nworker_processes 2;\nerror_log {logs}/error.log;\npid {logs}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; sendfile on; tcp_nopush on;\n\
               server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n",
            logs = prefix.join("logs").display(),
            root = dir.display(),
        ),
    )?;
    let child = Command::new(binary)
        .args(["-c"])
        .arg(&conf)
        .args(["-p"])
        .arg(&prefix)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nginx")?;
    let child = Killed(child);
    wait_for_port(port)?;
    Ok((child, port))
}

pub fn run(quick: bool, as_json: bool) -> Result<()> {
    let size: u64 = if quick { 256 << 20 } else { 2 << 30 };
    let rounds = 3;
    let work = std::env::temp_dir().join(format!("aifactory-bench-hub-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let cleanup = scopeguard(work.clone());
    let port = free_port()?;
    let exe = std::env::current_exe().context("finding the aifactory binary")?;
    let data = work.join("factory");
    let server = Killed(
        Command::new(exe)
            .args([
                "serve",
                "--demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the factory")?,
    );
    wait_for_port(port)?;
    let pid = server.0.id();
    let (_, idle_rss) = memory_mib(pid);
    let base = format!("http://127.0.0.1:{port}");
    let tokens: Value = serde_json::from_str(&std::fs::read_to_string(data.join("demo-tokens.json"))?)?;
    let token = tokens["startup"]
        .as_str()
        .context("the demo's start-up token")?
        .to_string();
    let file = work.join("big.bin");
    eprintln!("bench hub: writing {} MiB of random bytes", size >> 20);
    let sha256 = random_file(&file, size)?;
    let a = agent();
    post(
        &a,
        &format!("{base}/api/repos/create"),
        &token,
        &json!({"name": "nebula-robotics/bench"}),
    )?;
    let batch = post(
        &a,
        &format!("{base}/nebula-robotics/bench.git/info/lfs/objects/batch"),
        &token,
        &json!({"operation": "upload", "transfers": ["basic"], "objects": [{"oid": sha256, "size": size}], "hash_algo": "sha256"}),
    )?;
    let href = batch["objects"][0]["actions"]["upload"]["href"]
        .as_str()
        .context("an upload URL")?
        .to_string();
    eprintln!("bench hub: uploading");
    let started = Instant::now();
    let resp = a.put(&href).send(&std::fs::File::open(&file)?)?;
    anyhow::ensure!(resp.status().is_success(), "upload: HTTP {}", resp.status());
    let upload_s = started.elapsed().as_secs_f64();
    let (upload_peak, _) = memory_mib(pid);
    let commit = format!(
        "{}\n{}\n",
        json!({"key": "header", "value": {"summary": "bench"}}),
        json!({"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": sha256, "size": size}})
    );
    let mut resp = a
        .post(&format!("{base}/api/models/nebula-robotics/bench/commit/main"))
        .header("Authorization", &format!("Bearer {token}"))
        .header("Content-Type", "application/x-ndjson")
        .send(commit)?;
    anyhow::ensure!(
        resp.status().is_success(),
        "commit: {}",
        resp.body_mut().read_to_string().unwrap_or_default()
    );
    // The blob the hub stores is the file nginx serves: the same bytes on the same disk.
    let blob_dir = data.join("blobs").join("sha256").join(&sha256[..2]).join(&sha256[2..4]);
    let (nginx_child, nginx_port) = nginx(&blob_dir, &work)?;
    let mut hub = Vec::new();
    let mut baseline = Vec::new();
    for round in 0..rounds {
        eprintln!("bench hub: download round {}/{rounds}", round + 1);
        let (s, n) = download(&format!("{base}/nebula-robotics/bench/resolve/main/big.bin"))?;
        anyhow::ensure!(n == size, "the hub sent {n} bytes, not {size}");
        hub.push(size as f64 / s / 1e6);
        let (s, n) = download(&format!("http://127.0.0.1:{nginx_port}/{sha256}"))?;
        anyhow::ensure!(n == size, "nginx sent {n} bytes, not {size}");
        baseline.push(size as f64 / s / 1e6);
    }
    drop(nginx_child);
    let (download_peak, _) = memory_mib(pid);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let hub_mb_s = median(&mut hub);
    let nginx_mb_s = median(&mut baseline);
    let figures = json!({
        "file_mib": size >> 20,
        "upload_mb_s": size as f64 / upload_s / 1e6,
        "download_mb_s": hub_mb_s,
        "nginx_download_mb_s": nginx_mb_s,
        "download_vs_nginx": hub_mb_s / nginx_mb_s,
        "server_idle_rss_mib": idle_rss,
        "server_peak_rss_after_upload_mib": upload_peak,
        "server_peak_rss_after_downloads_mib": download_peak,
    });
    drop(server);
    drop(cleanup);
    eprintln!("bench hub: search over 100,000 entries");
    let search = search_figures(100_000, if quick { 500 } else { 5_000 });
    if as_json {
        println!("{:#}", json!({"transfer": figures, "search": search}));
        return Ok(());
    }
    println!(
        "The hub, one {} MiB file on loopback (median of {rounds} downloads each; baseline: nginx, sendfile, same file):",
        size >> 20
    );
    println!(
        "  upload through the LFS API     {:>8.0} MB/s",
        figures["upload_mb_s"].as_f64().unwrap_or(0.0)
    );
    println!("  download through resolve/      {hub_mb_s:>8.0} MB/s");
    println!("  download from nginx            {nginx_mb_s:>8.0} MB/s");
    println!("  hub / nginx                    {:>8.2}x", hub_mb_s / nginx_mb_s);
    println!(
        "  server memory: {idle_rss:.0} MiB idle, peak {upload_peak:.0} MiB after the upload, {download_peak:.0} MiB after the downloads"
    );
    let f = |k: &str| search[k].as_f64().unwrap_or(0.0);
    println!(
        "Catalogue search, {} entries, {} queries (words, two words, a prefix, a word and a theme, a facet alone; 20 a page, facets counted):",
        search["entries"], search["queries"]
    );
    println!(
        "  index                 p50 {:>7.3} ms   p99 {:>7.3} ms   max {:>7.3} ms   (built in {:.2} s)",
        f("p50_ms"),
        f("p99_ms"),
        f("max_ms"),
        f("index_build_s")
    );
    println!(
        "  scan of every entry   p50 {:>7.3} ms   p99 {:>7.3} ms   (baseline)",
        f("scan_p50_ms"),
        f("scan_p99_ms")
    );
    println!("  p99, scan / index     {:>7.1}x", f("p99_vs_scan"));
    Ok(())
}

/// Removes the benchmark's folder however the run ends.
fn scopeguard(dir: PathBuf) -> impl Drop {
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    Remove(dir)
}

/// A deterministic stream of numbers (SplitMix64) for the synthetic catalogue.
struct Mix(u64);

impl Mix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, from: &'a [String]) -> &'a String {
        // Zipf-like: low indices far more often, as words in real text.
        let r = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        &from[((r * r * r) * from.len() as f64) as usize]
    }
}

/// `n` synthetic entries: titles, descriptions and keywords drawn from a vocabulary of
/// 5,000 words, and facet values spread as in a real catalogue.
fn synthetic_catalogue(n: usize) -> (Vec<hub::search::Doc>, Vec<String>) {
    let mut mix = Mix(42);
    let syllables = [
        "ka", "lo", "mi", "ter", "sun", "vel", "dra", "no", "pi", "ste", "ra", "gen", "tor", "bi", "ol",
    ];
    let vocabulary: Vec<String> = (0..5_000)
        .map(|_| {
            (0..3)
                .map(|_| syllables[(mix.next() % syllables.len() as u64) as usize])
                .collect()
        })
        .collect();
    let themes = hub::catalogue::DATA_THEMES;
    let licences: Vec<&str> = hub::catalogue::LICENCES.iter().map(|(id, _)| *id).collect();
    let formats = ["csv", "parquet", "jsonl", "bin", "safetensors", "zip"];
    let org_types = ["startup", "sme", "industry", "research", "public"];
    let docs = (0..n)
        .map(|i| {
            let words = |mix: &mut Mix, k: usize| {
                (0..k)
                    .map(|_| mix.pick(&vocabulary).clone())
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            let mut facets = vec![
                ("kind", if i % 4 == 0 { "model" } else { "dataset" }.to_string()),
                ("theme", themes[(mix.next() % themes.len() as u64) as usize].to_string()),
                (
                    "licence",
                    licences[(mix.next() % licences.len() as u64) as usize].to_string(),
                ),
                ("org_type", org_types[(mix.next() % 5) as usize].to_string()),
                (
                    "access_rights",
                    if i % 7 == 0 { "restricted" } else { "public" }.to_string(),
                ),
                ("format", formats[(mix.next() % 6) as usize].to_string()),
            ];
            if i % 3 == 0 {
                facets.push(("theme", themes[(mix.next() % themes.len() as u64) as usize].to_string()));
            }
            hub::search::Doc {
                key: format!("dataset:org{}/entry-{i}", i % 997),
                titles: vec![words(&mut mix, 4)],
                descriptions: vec![words(&mut mix, 25)],
                keywords: (0..3).map(|_| mix.pick(&vocabulary).clone()).collect(),
                facets,
            }
        })
        .collect();
    (docs, vocabulary)
}

/// The same search done the simple way: every entry's text scanned for every word.
fn scan(docs: &[hub::search::Doc], q: &hub::search::Query) -> usize {
    let terms = hub::search::words(&q.text);
    let mut counts: std::collections::HashMap<(&str, &str), usize> = std::collections::HashMap::new();
    let mut matched = 0;
    for d in docs {
        let text = format!(
            "{} {} {} {}",
            d.titles.join(" "),
            d.descriptions.join(" "),
            d.keywords.join(" "),
            d.key
        )
        .to_lowercase();
        if !terms.iter().all(|t| text.contains(t.as_str())) {
            continue;
        }
        if !q
            .filters
            .iter()
            .all(|(f, vs)| d.facets.iter().any(|(g, v)| g == f && vs.contains(v)))
        {
            continue;
        }
        matched += 1;
        for (f, v) in &d.facets {
            *counts.entry((f, v)).or_insert(0) += 1;
        }
    }
    matched + usize::from(counts.is_empty())
}

/// Search over 100,000 entries: latency of a mix of queries against the index, and against
/// a scan of the same entries (the baseline, measured in the same run).
pub fn search_figures(n: usize, queries: usize) -> Value {
    let (docs, vocabulary) = synthetic_catalogue(n);
    let started = Instant::now();
    let mut index = hub::search::Index::default();
    for d in docs.iter().cloned() {
        index.upsert(d);
    }
    let build_s = started.elapsed().as_secs_f64();
    let mut mix = Mix(7);
    let themes = hub::catalogue::DATA_THEMES;
    let mut make = |k: usize| {
        let word = |mix: &mut Mix| mix.pick(&vocabulary).clone();
        let (text, filters) = match k % 5 {
            0 => (word(&mut mix), vec![]),
            1 => (format!("{} {}", word(&mut mix), word(&mut mix)), vec![]),
            // Search as you type: a prefix of a word.
            2 => (word(&mut mix)[..4].to_string(), vec![]),
            3 => (
                word(&mut mix),
                vec![("theme".to_string(), vec![themes[k % themes.len()].to_string()])],
            ),
            // Facets alone: everything counted.
            _ => (
                String::new(),
                vec![("licence".to_string(), vec!["cc-by-4.0".to_string()])],
            ),
        };
        hub::search::Query {
            text,
            filters,
            offset: 0,
            limit: 20,
        }
    };
    let mut times = Vec::with_capacity(queries);
    let mut scan_times = Vec::new();
    let mut matched = 0usize;
    for k in 0..queries {
        let q = make(k);
        let t = Instant::now();
        let hits = index.search(&q);
        times.push(t.elapsed().as_secs_f64() * 1e3);
        matched += hits.total;
        // The scan is slow: a sample of the same queries.
        if k % 20 == 0 {
            let t = Instant::now();
            std::hint::black_box(scan(&docs, &q));
            scan_times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    scan_times.sort_by(f64::total_cmp);
    let p = |v: &[f64], q: f64| crate::bench_api::percentile(v, q);
    json!({
        "entries": n,
        "queries": queries,
        "index_build_s": build_s,
        "mean_matches": matched as f64 / queries as f64,
        "p50_ms": p(&times, 0.5),
        "p99_ms": p(&times, 0.99),
        "max_ms": times.last().copied().unwrap_or(0.0),
        "scan_p50_ms": p(&scan_times, 0.5),
        "scan_p99_ms": p(&scan_times, 0.99),
        "p99_vs_scan": p(&scan_times, 0.99) / p(&times, 0.99),
    })
}
