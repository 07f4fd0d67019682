//! Prometheus text-format metrics and the request-latency histogram behind them.

use crate::AppState;
use domain::PriorityClass;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default)]
pub struct Metrics {
    buckets: [AtomicU64; 12],
    count: AtomicU64,
    sum_micros: AtomicU64,
    by_status: [AtomicU64; 6],
}

impl Metrics {
    pub fn observe(&self, status: u16, seconds: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                self.buckets[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        self.by_status[usize::from(status / 100).min(5)].fetch_add(1, Ordering::Relaxed);
    }
}

pub async fn render(state: &AppState) -> Result<String, store::StoreError> {
    let (by_class, running, free_milli) = {
        let control = state.control.lock().await;
        (
            control.engine.queued_by_class(),
            control.engine.running(),
            control.engine.free_milli(),
        )
    };
    let total_gpus = state.cluster.total_gpus();
    let busy = (total_gpus * 1000).saturating_sub(free_milli) as f64 / 1000.0;
    let usage = state.store.usage_total().await?;
    let m = &state.metrics;
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in lines {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    metric(
        "aifactory_queue_length",
        "gauge",
        "Jobs waiting in the queue, by priority class.",
        PriorityClass::ALL
            .iter()
            .map(|c| (format!("{{class=\"{}\"}}", c.as_str()), by_class[c.index()].to_string()))
            .collect(),
    );
    metric(
        "aifactory_jobs_running",
        "gauge",
        "Jobs running now.",
        vec![(String::new(), running.to_string())],
    );
    metric(
        "aifactory_gpus",
        "gauge",
        "GPUs in the factory.",
        vec![(String::new(), total_gpus.to_string())],
    );
    metric(
        "aifactory_gpus_busy",
        "gauge",
        "GPUs held by jobs (fractions counted).",
        vec![(String::new(), busy.to_string())],
    );
    metric(
        "aifactory_gpu_utilisation",
        "gauge",
        "Share of GPUs held by jobs.",
        vec![(String::new(), (busy / total_gpus.max(1) as f64).to_string())],
    );
    for (name, help, v) in [
        (
            "aifactory_ledger_gpu_seconds_total",
            "GPU-seconds booked as used.",
            usage.gpu_seconds,
        ),
        (
            "aifactory_ledger_energy_wh_total",
            "Energy booked, Wh.",
            usage.energy_wh,
        ),
        (
            "aifactory_ledger_carbon_g_total",
            "Carbon booked, gCO2e.",
            usage.carbon_g,
        ),
        (
            "aifactory_ledger_cost_cents_total",
            "Cost booked, cents.",
            usage.cost_cents,
        ),
    ] {
        metric(name, "counter", help, vec![(String::new(), v.to_string())]);
    }
    metric(
        "aifactory_http_responses_total",
        "counter",
        "HTTP responses by status class.",
        (1..6)
            .map(|c| {
                (
                    format!("{{status=\"{c}xx\"}}"),
                    m.by_status[c].load(Ordering::Relaxed).to_string(),
                )
            })
            .collect(),
    );
    let mut lines: Vec<(String, String)> = BUCKETS
        .iter()
        .zip(&m.buckets)
        .map(|(le, n)| (format!("_bucket{{le=\"{le}\"}}"), n.load(Ordering::Relaxed).to_string()))
        .collect();
    let count = m.count.load(Ordering::Relaxed);
    lines.push(("_bucket{le=\"+Inf\"}".into(), count.to_string()));
    lines.push((
        "_sum".into(),
        (m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6).to_string(),
    ));
    lines.push(("_count".into(), count.to_string()));
    metric(
        "aifactory_http_request_duration_seconds",
        "histogram",
        "Time to answer API requests.",
        lines,
    );
    Ok(out)
}
