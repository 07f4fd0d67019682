#!/usr/bin/env python3
"""Records slurmrestd's answers, for every v0.0.4x API version it offers, into
crates/slurm/tests/fixtures/<slurm release>/<version>/, where the mapping tests read them.

Run against a test cluster of scripts/slurm-test-cluster.sh (it restarts it with an empty
state, drains and resumes the node, and stops and starts slurmctld once), for example with
a Slurm built from source under /opt/slurm24:

    export AIFACTORY_SLURM_PREFIX=/opt/slurm24 AIFACTORY_SLURM_DIR=/tmp/aifactory-slurm24
    scripts/slurm-test-cluster.sh start
    PATH=/opt/slurm24/bin:$PATH scripts/record-slurm-fixtures.py

Jobs (comment `aifactory:job_<kind>`): failed (exit 3), completed (one per version: the
recorded submit answers), running (4 GPUs), cancelled while running, timeout (one minute),
waiting (8 GPUs: pending on Resources). Also: a two-node request on the one node (refused),
nodes normal and drained, GET jobs with slurmctld stopped, and with a token slurmctld
does not accept. Only the standard library: this is a developer's tool, not part of CI.
"""

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time

DIR = os.environ.get("AIFACTORY_SLURM_DIR", "/tmp/aifactory-slurm")
SOCKET = f"{DIR}/rest/slurmrestd.sock"
HTTP_URL = open(f"{DIR}/rest/http-url").read().strip()
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join(ROOT, "scripts", "slurm-test-cluster.sh")
BAD_TOKEN = "eyJhbGciOiJIUzI1NiJ9.eyJzdW4iOiJzbHVybSJ9.bm90IGEgc2lnbmF0dXJl"
JOBS_DIR = "/tmp/aifactory-fixtures"


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=60)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def call(method, path, body=None, token=None):
    """(status, parsed body) of one request; over HTTP when a token is given."""
    if token is None:
        conn = UnixConnection(SOCKET)
    else:
        host, port = HTTP_URL.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
    headers = {"Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["X-SLURM-USER-TOKEN"] = token
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw.decode(errors="replace")


def save(folder, name, status, body):
    """`.json` for a 200 answer; `.http` (status line, blank line, body) otherwise."""
    os.makedirs(folder, exist_ok=True)
    text = json.dumps(body, indent=2, sort_keys=True) + "\n"
    if len(text) > 16_000:
        # Job lists: every core of the node, on a line each, pretty-printed.
        text = json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n"
    if status == 200 and name.endswith(".json"):
        path = os.path.join(folder, name)
    else:
        path = os.path.join(folder, name.rsplit(".", 1)[0] + ".http")
        text = f"HTTP/1.1 {status}\n\n{text}"
    with open(path, "w") as f:
        f.write(text)
    print(f"recorded {os.path.relpath(path, ROOT)} (HTTP {status})", file=sys.stderr)


def job(name, gpus, minutes, script, nodes=1):
    """A submit body in the v0.0.40+ shape, as crates/slurm/src/mapping.rs makes it."""
    return {
        "job": {
            "name": name,
            "partition": "gpu",
            "nodes": str(nodes),
            "tres_per_node": f"gres/gpu:{gpus}",
            "time_limit": {"set": True, "infinite": False, "number": minutes},
            "current_working_directory": JOBS_DIR,
            "environment": ["PATH=/usr/bin:/bin"],
            "script": f"#!/bin/sh\n{script}\n",
            "standard_output": f"{JOBS_DIR}/{name}.out",
            "standard_error": f"{JOBS_DIR}/{name}.err",
            "comment": f"aifactory:{name}",
        }
    }


def submit(version, name, gpus, minutes, script):
    status, answer = call("POST", f"/slurm/{version}/job/submit", job(name, gpus, minutes, script))
    assert status == 200 and answer.get("job_id"), (status, answer)
    return status, answer


def wait(version, done, what, limit=180):
    started = time.time()
    while time.time() - started < limit:
        status, answer = call("GET", f"/slurm/{version}/jobs")
        if status == 200 and done({j["comment"]: j for j in answer["jobs"]}):
            return
        time.sleep(1)
    raise SystemExit(f"timed out waiting for {what}")


def state(j):
    s = j["job_state"]
    return s[0] if isinstance(s, list) else s


def main():
    # From a clean slate: Slurm keeps ended jobs for MinJobAge, and the lists should hold
    # only this recording's jobs.
    subprocess.run([CLUSTER, "stop"], check=True)
    subprocess.run(["rm", "-rf", f"{DIR}/state"], check=True)
    subprocess.run([CLUSTER, "start"], check=True, stdout=subprocess.DEVNULL)
    status, openapi = call("GET", "/openapi/v3")
    assert status == 200, openapi
    paths = sorted(p for p in openapi["paths"] if p.startswith("/slurm/"))
    versions = sorted({p.split("/")[2] for p in paths if re.match(r"v0\.0\.4\d$", p.split("/")[2])})
    status, ping = call("GET", f"/slurm/{versions[-1]}/ping")
    release = "{major}.{minor}".format(**ping["meta"]["slurm"]["version"])
    out = os.path.join(ROOT, "crates", "slurm", "tests", "fixtures", release)
    save(out, "openapi-paths.json", 200, {"paths": {p: {} for p in paths}})
    os.makedirs(JOBS_DIR, exist_ok=True)
    os.chmod(JOBS_DIR, 0o777)
    first = versions[0]
    submit(first, "job_failed", 1, 5, "echo oops >&2; exit 3")
    submit(first, "job_running", 4, 10, "sleep 600")
    submit(first, "job_cancelled", 1, 10, "sleep 600")
    submit(first, "job_timeout", 1, 1, "sleep 600")
    for v in versions:
        save(os.path.join(out, v), "ping.json", *call("GET", f"/slurm/{v}/ping"))
        save(os.path.join(out, v), "submit.json", *submit(v, f"job_completed_{v}", 1, 5, "echo done"))
        gang = job("job_gang", 4, 5, "true", nodes=2)
        save(os.path.join(out, v), "submit-refused.json", *call("POST", f"/slurm/{v}/job/submit", gang))
    wait(first, lambda js: state(js["aifactory:job_cancelled"]) == "RUNNING", "job_cancelled to run")
    _, cancelled = call("GET", f"/slurm/{first}/jobs")
    cancelled_id = next(j["job_id"] for j in cancelled["jobs"] if j["comment"] == "aifactory:job_cancelled")
    status, answer = call("DELETE", f"/slurm/{first}/job/{cancelled_id}")
    assert status == 200, answer
    submit(first, "job_waiting", 8, 5, "true")
    wait(first, lambda js: state(js["aifactory:job_timeout"]) == "TIMEOUT", "job_timeout to time out")
    for v in versions:
        save(os.path.join(out, v), "jobs.json", *call("GET", f"/slurm/{v}/jobs"))
        save(os.path.join(out, v), "nodes.json", *call("GET", f"/slurm/{v}/nodes"))
    host = ping["pings"][0]["hostname"]
    subprocess.run(["scontrol", "update", f"nodename={host}", "state=drain", "reason=maintenance by test"], check=True)
    for v in versions:
        save(os.path.join(out, v), "nodes-drained.json", *call("GET", f"/slurm/{v}/nodes"))
    subprocess.run(["scontrol", "update", f"nodename={host}", "state=resume"], check=True)
    for v in versions:
        save(os.path.join(out, v), "jobs-bad-token.json", *call("GET", f"/slurm/{v}/jobs", token=BAD_TOKEN))
        save(os.path.join(out, v), "ping-bad-token.json", *call("GET", f"/slurm/{v}/ping", token=BAD_TOKEN))
    subprocess.run([CLUSTER, "ctld-stop"], check=True)
    try:
        for v in versions:
            save(os.path.join(out, v), "jobs-slurmctld-down.json", *call("GET", f"/slurm/{v}/jobs"))
    finally:
        subprocess.run([CLUSTER, "ctld-start"], check=True)
    subprocess.run(["scancel", "--user", "slurm"], check=False)


if __name__ == "__main__":
    main()
