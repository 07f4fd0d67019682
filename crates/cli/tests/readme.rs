//! The README's tour, line for line, against a demo server: what a newcomer pastes works.

mod common;

use common::*;
use std::process::Command;

/// The shell lines of the README's tour: the code block after `<!-- tour -->`.
fn tour() -> String {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let after = readme.split("<!-- tour -->").nth(1).expect("the README marks its tour");
    let block = after.split("```sh\n").nth(1).unwrap();
    block.split("```").next().unwrap().to_string()
}

#[test]
fn the_readme_tour_runs_as_written() {
    let work = temp_dir("readme");
    std::fs::create_dir_all(&work).unwrap();
    // The first command's defaults: data in ./aifactory-data of the repository's root.
    let server = serve(&work.join("aifactory-data"), free_port());
    let lines = tour();
    assert!(lines.contains("aifactory job submit"), "{lines}");
    // Only what differs here: the binary's path and the server's port.
    let script = format!(
        "set -euo pipefail\nshopt -s expand_aliases\n{}",
        lines
            .replace("$PWD/target/release/aifactory", BIN)
            .replace("http://127.0.0.1:8080", &server.url)
    );
    std::fs::write(work.join("tour.sh"), script).unwrap();
    let out = Command::new("bash")
        .arg("tour.sh")
        .current_dir(&work)
        .env("HOME", &work)
        .env("XDG_CONFIG_HOME", work.join("config"))
        .env_remove("AIFACTORY_URL")
        .env_remove("AIFACTORY_TOKEN")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "the tour failed:\n{stdout}\n{stderr}");
    for expected in [
        "it-bologna",
        "startup-pilot",
        "hello from GPUs 0,1",
        "step 3 on GPU ",
        "cancelled",
        "colleague@nebula.example",
        "logged in as",
    ] {
        assert!(
            stdout.contains(expected),
            "`{expected}` missing from the tour's output:\n{stdout}\n{stderr}"
        );
    }
    assert!(!stderr.contains("error"), "{stderr}");
    if std::env::var("SHOW_TOUR").is_ok() {
        eprintln!("{stdout}\n---\n{stderr}");
    }
    assert!(work.join("config/aifactory/login.toml").exists(), "login saved");
}
