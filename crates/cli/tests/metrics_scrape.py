"""Scrapes a live aifactory's /metrics as Prometheus does and parses it with the
Prometheus project's own Python client (from PyPI): its strict OpenMetrics parser, and its
parser of the older Prometheus text format. Run by crates/cli/tests/metrics.rs with
AIFACTORY_URL and OPERATOR_TOKEN set; expects the demo cluster (4 nodes of 4 GPUs) and at
least one finished job. Exits non-zero at the first failed check."""

import os
import sys
import urllib.request

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus

checks = 0


def check(ok, what):
    global checks
    if not ok:
        print(f"FAILED: {what}")
        sys.exit(1)
    checks += 1


# Prometheus's own Accept header: OpenMetrics first, the older text format as a fallback.
request = urllib.request.Request(
    f"{os.environ['AIFACTORY_URL']}/metrics",
    headers={
        "Authorization": f"Bearer {os.environ['OPERATOR_TOKEN']}",
        "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    },
)
with urllib.request.urlopen(request) as response:
    content_type = response.headers["Content-Type"]
    text = response.read().decode()
check(content_type.startswith("application/openmetrics-text; version=1.0.0"), f"content type: {content_type}")

families = {f.name: f for f in parse_openmetrics(text)}
check(families["aifactory_gpus"].type == "gauge", "aifactory_gpus is a gauge")
check(families["aifactory_gpus"].samples[0].value == 16, "the demo cluster's 16 GPUs")

queue = {s.labels["class"]: s.value for s in families["aifactory_queue_length"].samples}
check(set(queue) == {"fast-lane", "large-scale", "standard", "playground", "preemptible"}, f"classes: {queue}")

nodes = families["aifactory_nodes"].samples
check(sum(s.value for s in nodes) == 4, f"four nodes: {nodes}")
check({s.labels["site"] for s in nodes} == {"it-bologna", "fi-kajaani"}, f"sites: {nodes}")
per_partition = {s.labels["site"]: s.value for s in families["aifactory_partition_gpus"].samples}
check(per_partition == {"it-bologna": 8, "fi-kajaani": 8}, f"GPUs per partition: {per_partition}")

# Counters: the family is named without _total, its sample with it, as OpenMetrics says.
ledger = families["aifactory_ledger_gpu_seconds"]
check(ledger.type == "counter", "the ledger's GPU-seconds are a counter")
check(ledger.samples[0].name == "aifactory_ledger_gpu_seconds_total", ledger.samples[0].name)
check(ledger.samples[0].value > 0, "the finished job's GPU-seconds are booked")

latency = families["aifactory_http_request_duration_seconds"]
check(latency.type == "histogram" and latency.unit == "seconds", f"{latency.type} in {latency.unit}")
buckets = [s for s in latency.samples if s.name.endswith("_bucket")]
counts = [s.value for s in buckets]
check(counts == sorted(counts), f"buckets are cumulative: {counts}")
count = next(s.value for s in latency.samples if s.name.endswith("_count"))
check(buckets[-1].labels["le"] == "+Inf" and counts[-1] == count > 0, f"+Inf bucket is the count: {count}")
responses = {s.labels["status"]: s.value for s in families["aifactory_http_responses"].samples}
check(responses.get("2xx", 0) > 0, f"responses: {responses}")

# A consumer of the older text format reads the same figures.
old = {f.name: f for f in parse_prometheus(text)}
check(old["aifactory_gpus"].samples[0].value == 16, "the text-format parser reads the GPUs")
check(sum(s.value for s in old["aifactory_nodes"].samples) == 4, "the text-format parser reads the nodes")

print(f"{checks} passed, 0 failed")
