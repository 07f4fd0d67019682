//! The data and model hub through the real `huggingface_hub` client from PyPI, against a
//! live `aifactory serve`: `scripts/test` makes a virtualenv with it and names its Python in
//! `AIFACTORY_TEST_HF_PYTHON` (in CI its absence is an error).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn hf_python() -> Option<PathBuf> {
    pypi_python("Hugging Face client")
}

/// Runs a script of this folder with the client, against `server`, as the demo start-up
/// (whose namespace is `nebula-robotics`), the demo SME being the other organisation.
fn run_client(python: &Path, server: &Server, dir: &Path, name: &str, disable_xet: bool) -> std::process::Output {
    let mut cmd = Command::new(python);
    cmd.arg(script(name))
        .env("HF_ENDPOINT", &server.url)
        .env("HUB_TOKEN", token(dir, "startup"))
        .env("HUB_OTHER_TOKEN", token(dir, "sme"))
        .env("HUB_NAMESPACE", "nebula-robotics")
        .env("HF_HOME", dir.join("hf-home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_DISABLE_XET");
    if disable_xet {
        cmd.env("HF_HUB_DISABLE_XET", "1");
    }
    cmd.output().unwrap()
}

#[test]
fn the_hugging_face_client_creates_uploads_lists_downloads_and_is_refused_as_it_expects() {
    let Some(python) = hf_python() else { return };
    let dir = temp_dir("hub-hf");
    let server = serve(&dir, free_port());
    let out = run_client(&python, &server, &dir, "hub_client.py", true);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let passed: usize = stdout
        .lines()
        .find_map(|l| l.strip_suffix(" passed, 0 failed"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    assert!(passed >= 40, "every check ran: {stdout}");
}

#[test]
fn a_client_that_tries_xet_is_told_what_to_set() {
    let Some(python) = hf_python() else { return };
    let dir = temp_dir("hub-xet");
    let server = serve(&dir, free_port());
    let out = run_client(&python, &server, &dir, "hub_xet.py", false);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("HF_HUB_DISABLE_XET=1"),
        "the error says what to set: {stdout}"
    );
}

/// The official DCAT-AP 3.0.0 shapes, in `shared/` beside the repository.
fn dcat_ap_shapes() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/dcat-ap")
}

fn http_get(url: &str) -> String {
    let out = Command::new("curl").args(["-sf", url]).output().unwrap();
    assert!(out.status.success(), "GET {url}");
    String::from_utf8(out.stdout).unwrap()
}

/// The demo's catalogue in Turtle and JSON-LD conforms to DCAT-AP 3.0.0: the normative
/// shapes and the range shapes, with pyshacl (the mandatory properties, every class of
/// every resource referred to). The controlled-vocabulary shapes are informative: they are
/// not part of this check.
#[test]
fn the_catalogue_export_conforms_to_dcat_ap() {
    let Some(python) = hf_python() else { return };
    let shapes = dcat_ap_shapes();
    assert!(
        shapes.join("dcat-ap-3.0.0-SHACL.ttl").exists(),
        "the shapes at {}",
        shapes.display()
    );
    let dir = temp_dir("hub-dcat");
    let server = serve(&dir, free_port());
    // A model a job made, whose provenance the export states.
    let startup = token(&dir, "startup");
    let job = submit_sh(
        &server,
        &startup,
        "1",
        "1",
        &format!("mkdir -p out && printf w > out/w.bin && {BIN} model push nebula-robotics/made-by-job out"),
    );
    assert_eq!(wait_for_end(&server, &startup, &job)["state"], "completed");
    let turtle = http_get(&format!("{}/api/v1/catalogue/dcat", server.url));
    let jsonld = http_get(&format!("{}/api/v1/catalogue/dcat?format=jsonld", server.url));
    for needle in [
        "steel-surface-defects",
        "italian-court-rulings",
        "arm-policy-tiny",
        "data-theme/TECH",
        "access-right/RESTRICTED",
        "Teräspinnan viat",
        "prov:wasGeneratedBy",
        "ns/prov#Activity",
    ] {
        assert!(turtle.contains(needle), "{needle} in the export");
    }
    assert!(!turtle.contains("furnace-telemetry"), "a non-public entry stays out");
    std::fs::write(dir.join("export.ttl"), &turtle).unwrap();
    std::fs::write(dir.join("export.jsonld"), &jsonld).unwrap();
    for shape in ["dcat-ap-3.0.0-SHACL.ttl", "dcat-ap-3.0.0-range.ttl"] {
        for (file, format) in [("export.ttl", "turtle"), ("export.jsonld", "json-ld")] {
            let out = Command::new(&python)
                .args(["-m", "pyshacl", "-s"])
                .arg(shapes.join(shape))
                .args(["-i", "rdfs", "-df", format, "-f", "human"])
                .arg(dir.join(file))
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(
                report.contains("Conforms: True") && out.status.success(),
                "{file} against {shape}:\n{report}{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The CLI's own hub commands: push (inline and LFS files), pull, search, and the access
/// request of a restricted dataset from request to grant to download to audit.
#[test]
fn data_and_model_commands_push_pull_search_and_ask_for_access() {
    let dir = temp_dir("hub-cli");
    let server = serve(&dir, free_port());
    let startup = token(&dir, "startup");
    let folder = dir.join("to-push");
    std::fs::create_dir_all(folder.join("a")).unwrap();
    std::fs::write(folder.join("config.json"), br#"{"layers": 2}"#).unwrap();
    std::fs::write(folder.join("a/b.txt"), b"nested\n").unwrap();
    let big: Vec<u8> = (0..11 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(folder.join("weights.bin"), &big).unwrap();
    let out = cli(
        &server,
        &startup,
        &["model", "push", "nebula-robotics/cli-model", folder.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 files pushed"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let pulled = dir.join("pulled");
    let out = cli(
        &server,
        &startup,
        &[
            "model",
            "pull",
            "nebula-robotics/cli-model",
            "--dir",
            pulled.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(pulled.join("weights.bin")).unwrap(), big);
    assert_eq!(std::fs::read(pulled.join("a/b.txt")).unwrap(), b"nested\n");
    let found = json(&cli(&server, &startup, &["model", "search", "cli", "--output", "json"]));
    assert!(
        found["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["repo_id"] == "nebula-robotics/cli-model"),
        "{found}"
    );
    let found = json(&cli(
        &server,
        &startup,
        &["data", "search", "steel", "--format", "csv", "--output", "json"],
    ));
    assert_eq!(found["total"], 1, "{found}");
    // A restricted dataset: asked for, granted by its owner, pulled, audited.
    let rulings = "universita-di-bologna/italian-court-rulings";
    let sme = token(&dir, "sme");
    let out = cli(
        &server,
        &sme,
        &["data", "pull", rulings, "--dir", dir.join("early").to_str().unwrap()],
    );
    assert!(!out.status.success(), "not before a grant");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("restricted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let asked = json(&cli(
        &server,
        &sme,
        &[
            "data",
            "request-access",
            rulings,
            "--purpose",
            "research",
            "--days",
            "10",
            "--output",
            "json",
        ],
    ));
    assert_eq!(asked["state"], "pending", "{asked}");
    let owner = token(&dir, "research");
    let granted = json(&cli(
        &server,
        &owner,
        &[
            "data",
            "grant",
            asked["id"].as_str().unwrap(),
            "--reason",
            "a research project",
            "--output",
            "json",
        ],
    ));
    assert_eq!(granted["state"], "granted", "{granted}");
    let out = cli(
        &server,
        &sme,
        &["data", "pull", rulings, "--dir", dir.join("rulings").to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        std::fs::read_to_string(dir.join("rulings/rulings.jsonl"))
            .unwrap()
            .contains("Tribunale")
    );
    let log = json(&cli(&server, &owner, &["data", "audit", rulings, "--output", "json"]));
    let actions: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"grant") && actions.contains(&"download"),
        "{actions:?}"
    );
}

/// A catalogue named with --harvest is harvested at start and again on schedule: a change
/// in its document shows in the external entries, and staff see each source's last harvest.
#[test]
fn a_catalogue_named_at_start_is_harvested_again_on_schedule() {
    let dir = temp_dir("hub-harvest");
    let site = dir.join("site");
    std::fs::create_dir_all(&site).unwrap();
    let example = dcat_ap_shapes().join("examples/example-bee-population-2022-2023.ttl");
    let original = std::fs::read_to_string(&example).unwrap();
    std::fs::write(site.join("catalogue.ttl"), &original).unwrap();
    let web_port = free_port();
    let mut web = Command::new("/usr/bin/python3")
        .args([
            "-m",
            "http.server",
            &web_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&site)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Stop<'a>(&'a mut std::process::Child);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _web = Stop(&mut web);
    let source = format!("gr=http://127.0.0.1:{web_port}/catalogue.ttl");
    let server = serve_with(&dir, free_port(), &["--harvest", &source, "--harvest-every-s", "1"]);
    let titles = || -> Vec<String> {
        let out = Command::new("curl")
            .args(["-sf", &format!("{}/api/v1/catalogue/external", server.url)])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut t: Vec<String> = v["items"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e["titles"]["en"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        t.sort();
        t
    };
    let wait_for = |want: &[&str]| {
        let started = std::time::Instant::now();
        loop {
            let t = titles();
            if t == want {
                return;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "still {t:?}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    wait_for(&["Bee population 2022", "Bee population 2023"]);
    std::fs::write(
        site.join("catalogue.ttl"),
        original.replace("Bee population 2023\"", "Bee population, 2023 (revised)\""),
    )
    .unwrap();
    wait_for(&["Bee population 2022", "Bee population, 2023 (revised)"]);
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            &format!("Authorization: Bearer {}", token(&dir, "operator")),
            &format!("{}/api/v1/catalogue/sources", server.url),
        ])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"][0]["name"], "gr", "{v}");
    assert!(
        v["items"][0]["last_harvest_at"].is_string() && v["items"][0]["last_error"].is_null(),
        "{v}"
    );
}

/// Polls a job until it ends; its final view.
fn wait_for_end(server: &Server, t: &str, id: &str) -> serde_json::Value {
    let started = std::time::Instant::now();
    loop {
        let job = json(&cli(server, t, &["job", "show", id, "--output", "json"]));
        if ["completed", "failed", "cancelled", "timeout", "rejected", "lost"].contains(&job["state"].as_str().unwrap())
        {
            return job;
        }
        assert!(started.elapsed().as_secs() < 60, "job {id} did not end: {job}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Data for jobs: a restricted dataset is refused at submission until granted; granted,
/// it is staged into the job's directory by hard link; the job pushes the model it made
/// with its own token (which reaches nothing else and dies with the job); the model's
/// card then carries the job's compute, energy and carbon from the ledger, and the commit
/// names the job. A grant revoked while a job waits stops it at start.
#[test]
fn a_job_reads_granted_data_and_pushes_its_model_with_its_own_token() {
    let dir = temp_dir("hub-job");
    let server = serve(&dir, free_port());
    let startup = token(&dir, "startup");
    let owner = token(&dir, "research");
    let rulings = "universita-di-bologna/italian-court-rulings";
    let submit = |dataset: &str, gpus: &str, script: &str| {
        cli(
            &server,
            &startup,
            &[
                "job",
                "submit",
                "--gpus",
                gpus,
                "--time",
                "2",
                "--parsable",
                "--dataset",
                dataset,
                "--",
                "sh",
                "-c",
                script,
            ],
        )
    };
    let refused = submit(rulings, "1", "true");
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("request-access"), "{stderr}");
    let unknown = submit("nobody/nothing", "1", "true");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no dataset"));
    let asked = json(&cli(
        &server,
        &startup,
        &[
            "data",
            "request-access",
            rulings,
            "--purpose",
            "research",
            "--days",
            "10",
            "--output",
            "json",
        ],
    ));
    let request = asked["id"].as_str().unwrap().to_string();
    let granted = json(&cli(
        &server,
        &owner,
        &[
            "data",
            "grant",
            &request,
            "--reason",
            "training a court model",
            "--output",
            "json",
        ],
    ));
    assert_eq!(granted["state"], "granted", "{granted}");

    let script = format!(
        r#"set -e
d="$AIFACTORY_DATASETS/{rulings}"
wc -l < "$d/rulings.jsonl" > lines
stat -c %h "$d/rulings.jsonl" > links
echo "$AIFACTORY_TOKEN" > token
mkdir -p out
printf 'trained' > out/model.bin
printf -- '---\nlicense: apache-2.0\ndatasets:\n- {rulings}\n---\n# Court model\n' > out/README.md
{bin} model push nebula-robotics/court-model out
if {bin} job list > /dev/null 2> refused; then echo "the job token reached the jobs API"; exit 3; fi
"#,
        bin = BIN
    );
    let out = submit(rulings, "1", &script);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let job = wait_for_end(&server, &startup, &id);
    let job_dir = dir.join("jobs").join(&id);
    let log = |name: &str| std::fs::read_to_string(job_dir.join(name)).unwrap_or_default();
    assert_eq!(job["state"], "completed", "{job}\n{}{}", log("stdout"), log("stderr"));
    assert_eq!(job["datasets"][0]["repo"], rulings, "{job}");
    assert_eq!(job["datasets"][0]["commit"].as_str().unwrap().len(), 40, "{job}");
    assert_eq!(log("lines").trim(), "50");
    // A hard link: the store's blob and the staged file are one inode.
    assert!(log("links").trim().parse::<u32>().unwrap() >= 2, "{}", log("links"));
    assert!(log("refused").contains("hub only"), "{}", log("refused"));

    // The card gets the job's figures once the job has ended (written just after).
    let usage = json(&cli(&server, &startup, &["usage", "--job", &id, "--output", "json"]));
    let started = std::time::Instant::now();
    let card = loop {
        let info: serde_json::Value = serde_json::from_str(&http_get(&format!(
            "{}/api/models/nebula-robotics/court-model",
            server.url
        )))
        .unwrap();
        if !info["cardData"]["aifactory"].is_null() {
            break info["cardData"].clone();
        }
        assert!(started.elapsed().as_secs() < 20, "no figures in the card: {info}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert_eq!(card["license"], "apache-2.0", "the card the job wrote is kept: {card}");
    assert_eq!(card["aifactory"]["job"], id.as_str(), "{card}");
    assert_eq!(
        card["co2_eq_emissions"]["emissions"], usage["carbon_g"],
        "{card} {usage}"
    );
    let gpu_hours = card["aifactory"]["gpu_hours"].as_f64().unwrap();
    let expected = usage["gpu_seconds"].as_f64().unwrap() / 3600.0;
    assert!((gpu_hours - expected).abs() < 0.001, "{card} {usage}");
    assert!(
        card["co2_eq_emissions"]["hardware_used"]
            .as_str()
            .unwrap()
            .contains("H100"),
        "{card}"
    );
    // The catalogue names the job as what produced the model.
    let entry = json(&cli(
        &server,
        &startup,
        &["model", "show", "nebula-robotics/court-model", "--output", "json"],
    ));
    assert_eq!(entry["produced_by_job"], id.as_str(), "{entry}");
    // Its card filled the catalogue entry where that was silent.
    assert_eq!(entry["metadata"]["licence"], "apache-2.0", "{entry}");
    assert_eq!(entry["metadata"]["titles"]["en"], "Court model", "{entry}");
    // The job's token ended with the job.
    let dead = cli(&server, log("token").trim(), &["data", "requests", rulings]);
    assert!(!dead.status.success());
    let stderr = String::from_utf8_lossy(&dead.stderr);
    assert!(stderr.contains("ends with its job"), "{stderr}");

    // Checked again at start: a job waits behind one that holds every GPU of the site,
    // the grant is revoked meanwhile, and the job fails to start, saying why.
    let blocker = submit_sh(&server, &startup, "8", "2", "sleep 30");
    let waiting = submit(rulings, "1", "true");
    let waiting = String::from_utf8_lossy(&waiting.stdout).trim().to_string();
    let revoked = json(&cli(
        &server,
        &owner,
        &[
            "data",
            "revoke",
            &request,
            "--reason",
            "the project ended",
            "--output",
            "json",
        ],
    ));
    // The grant ends now, not in ten days.
    assert!(
        revoked["valid_until"].as_str().unwrap() < granted["valid_until"].as_str().unwrap(),
        "{revoked}"
    );
    assert!(cli(&server, &startup, &["job", "cancel", &blocker]).status.success());
    let job = wait_for_end(&server, &startup, &waiting);
    assert_eq!(job["state"], "failed", "{job}");
    assert!(
        job["reason"].as_str().unwrap().contains("access to the dataset"),
        "{job}"
    );
    assert!(!dir.join("jobs").join(&waiting).join("datasets").exists());
}

/// An S3-compatible server on loopback: moto's, from the test virtualenv.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s3_server(python: &Path, port: u16) -> S3Server {
    let moto = python.with_file_name("moto_server");
    let child = Command::new(&moto)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (scripts/test installs moto[server] into the venv)",
                moto.display()
            )
        });
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed().as_secs() < 30, "moto did not start");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    S3Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// Runs Python with boto3 against the S3 server; its stdout.
fn boto(python: &Path, s3: &S3Server, code: &str) -> String {
    let out = Command::new(python)
        .arg("-c")
        .arg(format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n{code}",
            s3.endpoint
        ))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// With --s3-endpoint the hub keeps every content in the bucket (the demo's too), under its
/// digest, and nothing on local disk: pushed (a large file in parts), pulled back whole,
/// read by range, staged into a job.
#[test]
fn contents_live_on_s3_compatible_storage_when_configured() {
    let Some(python) = hf_python() else { return };
    let s3 = s3_server(&python, free_port());
    boto(&python, &s3, "s3.create_bucket(Bucket='factory')");
    let dir = temp_dir("hub-s3");
    let server = serve_with_env(
        &dir,
        free_port(),
        &["--s3-endpoint", &s3.endpoint, "--s3-bucket", "factory"],
        &[("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")],
    );
    let startup = token(&dir, "startup");
    let folder = dir.join("to-push");
    std::fs::create_dir_all(&folder).unwrap();
    let big: Vec<u8> = (0..23 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    std::fs::write(folder.join("weights.bin"), &big).unwrap();
    std::fs::write(folder.join("config.json"), b"{}").unwrap();
    let out = cli(
        &server,
        &startup,
        &["model", "push", "nebula-robotics/on-s3", folder.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let pulled = dir.join("pulled");
    let out = cli(
        &server,
        &startup,
        &[
            "model",
            "pull",
            "nebula-robotics/on-s3",
            "--dir",
            pulled.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(std::fs::read(pulled.join("weights.bin")).unwrap(), big);
    // Every content is an object named by its digest; none is on local disk.
    let keys = boto(
        &python,
        &s3,
        "for page in s3.get_paginator('list_objects_v2').paginate(Bucket='factory'):\n    for o in page.get('Contents', []): print(o['Key'], o['Size'])",
    );
    let digest = {
        use sha2::Digest as _;
        sha2::Sha256::digest(&big)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert!(
        keys.lines().any(|l| l
            == format!(
                "aifactory/sha256/{}/{}/{digest} {}",
                &digest[..2],
                &digest[2..4],
                big.len()
            )),
        "{keys}"
    );
    assert!(keys.lines().count() >= 8, "the demo's contents are there too: {keys}");
    let local: Vec<_> = walk(&dir.join("blobs"));
    assert!(local.is_empty(), "nothing kept on local disk: {local:?}");
    // A range, as a resumed download asks.
    let url = format!("{}/nebula-robotics/on-s3/resolve/main/weights.bin", server.url);
    let ranged = Command::new(&python)
        .arg("-c")
        .arg(format!(
            "import urllib.request, sys\nr = urllib.request.urlopen(urllib.request.Request('{url}', headers={{'Range': 'bytes=1000-1999'}}))\nsys.stdout.buffer.write(r.read())"
        ))
        .output()
        .unwrap();
    assert!(ranged.status.success(), "{}", String::from_utf8_lossy(&ranged.stderr));
    assert_eq!(ranged.stdout, &big[1000..2000]);
    // A job's dataset comes from the bucket too.
    let out = cli(
        &server,
        &startup,
        &[
            "job",
            "submit",
            "--gpus",
            "1",
            "--time",
            "1",
            "--parsable",
            "--dataset",
            "baltic-vision-oy/steel-surface-defects",
            "--",
            "sh",
            "-c",
            "wc -l < \"$AIFACTORY_DATASETS/baltic-vision-oy/steel-surface-defects/data/labels.csv\" > lines",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let job = wait_for_end(&server, &startup, &id);
    assert_eq!(job["state"], "completed", "{job}");
    assert_eq!(
        std::fs::read_to_string(dir.join("jobs").join(&id).join("lines"))
            .unwrap()
            .trim(),
        "201"
    );
}

/// Files under `dir` (none when it is missing).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
