//! The platform's metrics for Prometheus, encoded by the `prometheus-client` crate as
//! OpenMetrics text. Responses and their latencies are counted as they happen; the queue,
//! the GPUs and the ledger's totals are read when Prometheus scrapes.

use crate::AppState;
use domain::PriorityClass;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;

/// What `/metrics` answers with: OpenMetrics, which Prometheus asks for and reads.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Upper bounds of the latency buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClassLabel {
    class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    site: String,
    partition: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabels {
    site: String,
    partition: String,
    status: &'static str,
}

/// What the nodes look like at scrape time, per site and partition.
#[derive(Debug, Default)]
struct Partitions {
    gpus: Family<PartitionLabels, Gauge>,
    busy: Family<PartitionLabels, Gauge<f64, AtomicU64>>,
    nodes: Family<NodeLabels, Gauge>,
}

#[derive(Debug)]
pub struct Metrics {
    responses: Family<StatusLabel, Counter>,
    latency: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            responses: Family::default(),
            latency: Histogram::new(BUCKETS),
        }
    }
}

impl Metrics {
    pub fn observe(&self, status: u16, seconds: f64) {
        let status = STATUS_CLASSES[usize::from(status / 100).clamp(1, 5) - 1];
        self.responses.get_or_create(&StatusLabel { status }).inc();
        self.latency.observe(seconds);
    }
}

pub async fn render(state: &AppState) -> Result<String, store::StoreError> {
    let partitions = Partitions::default();
    let (by_class, running, free_milli) = {
        let control = state.control.lock().await;
        for (i, node) in state.cluster.nodes.iter().enumerate() {
            let labels = PartitionLabels {
                site: state.cluster.sites[usize::from(node.site)].name.clone(),
                partition: state.cluster.partitions[usize::from(node.partition)].name.clone(),
            };
            let used_milli: u64 = control
                .engine
                .node_usage(i as u32)
                .unwrap_or_default()
                .iter()
                .map(|&m| u64::from(m))
                .sum();
            partitions.gpus.get_or_create(&labels).inc_by(i64::from(node.gpus));
            partitions
                .busy
                .get_or_create(&labels)
                .inc_by(used_milli as f64 / 1000.0);
            let status = match control.engine.node_status(i as u32) {
                Some(sched::NodeStatus::Up) => "up",
                Some(sched::NodeStatus::Drained) => "drained",
                Some(sched::NodeStatus::Down) | None => "down",
            };
            let PartitionLabels { site, partition } = labels;
            partitions
                .nodes
                .get_or_create(&NodeLabels {
                    site,
                    partition,
                    status,
                })
                .inc();
        }
        (
            control.engine.queued_by_class(),
            control.engine.running(),
            control.engine.free_milli(),
        )
    };
    let total_gpus = state.cluster.total_gpus();
    let busy = (total_gpus * 1000).saturating_sub(free_milli) as f64 / 1000.0;
    let usage = state.store.usage_total().await?;

    let mut registry = Registry::with_prefix("aifactory");
    let queue = Family::<ClassLabel, Gauge>::default();
    for class in PriorityClass::ALL {
        let waiting = i64::try_from(by_class[class.index()]).unwrap_or(i64::MAX);
        queue.get_or_create(&ClassLabel { class: class.as_str() }).set(waiting);
    }
    registry.register("queue_length", "Jobs waiting in the queue, by priority class", queue);
    registry.register(
        "jobs_running",
        "Jobs running now",
        ConstGauge::new(i64::try_from(running).unwrap_or(i64::MAX)),
    );
    registry.register(
        "gpus",
        "GPUs in the factory",
        ConstGauge::new(i64::try_from(total_gpus).unwrap_or(i64::MAX)),
    );
    registry.register(
        "gpus_busy",
        "GPUs held by jobs (fractions counted)",
        ConstGauge::new(busy),
    );
    registry.register(
        "gpu_utilisation",
        "Share of GPUs held by jobs",
        ConstGauge::new(busy / total_gpus.max(1) as f64),
    );
    registry.register("partition_gpus", "GPUs per site and partition", partitions.gpus);
    registry.register(
        "partition_gpus_busy",
        "GPUs held by jobs per site and partition (fractions counted)",
        partitions.busy,
    );
    registry.register(
        "nodes",
        "Nodes per site, partition and status (up, drained, down)",
        partitions.nodes,
    );
    // The ledger's sums only grow (usage is booked, never taken back), so they are counters.
    for (name, help, booked) in [
        ("ledger_gpu_seconds", "GPU-seconds booked as used", usage.gpu_seconds),
        ("ledger_energy_wh", "Energy booked, Wh", usage.energy_wh),
        ("ledger_carbon_g", "Carbon booked, gCO2e", usage.carbon_g),
        ("ledger_cost_cents", "Cost booked, cents", usage.cost_cents),
    ] {
        registry.register(name, help, ConstCounter::new(booked.max(0).unsigned_abs()));
    }
    registry.register(
        "http_responses",
        "HTTP responses by status class",
        state.metrics.responses.clone(),
    );
    registry.register_with_unit(
        "http_request_duration",
        "Time to answer API requests",
        Unit::Seconds,
        state.metrics.latency.clone(),
    );
    let mut out = String::new();
    encode(&mut out, &registry).expect("writing to a String cannot fail");
    Ok(out)
}
