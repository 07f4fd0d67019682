//! `/metrics` as Prometheus reads it: a live `aifactory serve` scraped and parsed by the
//! Prometheus project's Python client from PyPI (its strict OpenMetrics parser and its
//! parser of the older text format), from the virtualenv `scripts/test` makes.

mod common;

use common::*;
use std::process::Command;

#[test]
fn prometheus_own_parsers_read_the_metrics() {
    let Some(python) = pypi_python("Prometheus client") else {
        return;
    };
    let dir = temp_dir("metrics");
    let server = serve(&dir, free_port());
    // One finished job, so that the ledger's counters have something booked.
    let t = token(&dir, "startup");
    let o = cli(
        &server,
        &t,
        &["job", "submit", "--gpus", "1", "--time", "1", "--wait", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let out = Command::new(python)
        .arg(script("metrics_scrape.py"))
        .env("AIFACTORY_URL", &server.url)
        .env("OPERATOR_TOKEN", token(&dir, "operator"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "every check ran: {stdout}");
}
