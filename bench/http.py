#!/usr/bin/env python3
"""HTTP/JSON against gRPC on one 3-node dev cluster, in the same run: reads and writes of
about 1 KiB documents at QUORUM, durable, 64 requests in flight.

    python3 bench/http.py [--records 20000] [--duration 10] [--rounds 3] [--out FILE]

gRPC load comes from `ringdb-bench` (the Rust client, token-aware and pipelined, and again
with a call per request and coordinators in rotation, which is what an HTTP client does);
HTTP load from `wrk` (Debian's package, installed if missing), one process per node with
a third of the connections each. Reads pick loaded keys uniformly; writes insert new keys
(gRPC: `ringdb-bench --workload load`), so no write makes siblings. Rounds alternate so a noisy moment
hurts every system alike; the table gives medians. Builds the release binaries first.
Ports 7921-7923 (gRPC) and 8921-8923 (HTTP) must be free.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess

from perf import BIN, ROOT, Cluster, log, run

GRPC = ["127.0.0.1:7921", "127.0.0.1:7922", "127.0.0.1:7923"]
HTTP = ["127.0.0.1:8921", "127.0.0.1:8922", "127.0.0.1:8923"]
CONCURRENCY = 64


def ensure_wrk():
    if shutil.which("wrk"):
        return
    if shutil.which("apt-get") is None:
        raise SystemExit("wrk is missing and apt-get is not there to install it")
    log("installing wrk from Debian's archive")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env)


def grpc(workload, records, duration, collection, extra=()):
    cmd = [os.path.join(BIN, "ringdb-bench"), "--hosts", ",".join(GRPC), "--workload",
           workload, "--records", str(records), "--duration", str(duration), "--collection",
           collection, "--concurrency", str(CONCURRENCY), "--distribution", "uniform", *extra]
    r = json.loads(run(cmd).strip().splitlines()[-1])
    if r["errors"]:
        raise SystemExit(f"gRPC {workload} had {r['errors']} errors")
    return r["ops_per_sec"], r["p50_ms"], r["p99_ms"]


# GETs read the loaded records at random; PUTs insert new keys (a prefix per wrk process and
# round, then a counter), so no write lands on an existing key without its context, which
# would make siblings.
LUA = """
local records = %d
local method = "%s"
local body = %s
local prefix = "%s"
local n = 0
init = function(args) math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16)) end
request = function()
  if method == "GET" then
    local k = math.random(0, records - 1)
    return wrk.format("GET", string.format("/v1/%s/user%%010d?consistency=QUORUM", k))
  end
  n = n + 1
  local path = string.format("/v1/%s/%%s-%%d?consistency=QUORUM", prefix, n)
  return wrk.format("PUT", path, {["Content-Type"] = "application/json"}, body)
end
"""


def record_json():
    fields = {f"field{i}": ("x" * 90 + f"{i:010d}") for i in range(10)}
    return json.dumps(fields)


def lua_string(s):
    return "[==[" + s + "]==]"


def wrk(method, records, duration, collection, workdir, round_no):
    per_node = CONCURRENCY // len(HTTP)
    procs = []
    for i, h in enumerate(HTTP):
        script = os.path.join(workdir, f"{method.lower()}-{i}.lua")
        with open(script, "w") as f:
            f.write(LUA % (records, method, lua_string(record_json()), f"r{round_no}n{i}",
                           collection, collection))
        procs.append(subprocess.Popen(["wrk", "-t1", f"-c{per_node}", f"-d{duration}s",
                                       "--latency", "-s", script, f"http://{h}"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    total, p50s, p99s = 0.0, [], []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"wrk failed: {err}")
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: (.*)", out)
        if (bad and method == "PUT") or errors:
            raise SystemExit(f"wrk {method} had errors:\n{out}")
        total += float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        p50s.append(ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)))
        p99s.append(ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)))
    return total, statistics.median(p50s), max(p99s)


def ms(text):
    m = re.match(r"([\d.]+)(\w+)", text)
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--put-records", type=int, default=60000,
                    help="documents each gRPC insert run writes (it stops when all are in)")
    ap.add_argument("--out")
    a = ap.parse_args()
    ensure_wrk()
    log("building release binaries")
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "ringdb-node", "-p",
                    "ringdb-bench"], check=True, cwd=ROOT)
    cluster = Cluster(base_port=7921, http_base_port=8921)
    results = {}
    try:
        log(f"loading {a.records} records over gRPC")
        grpc("load", a.records, a.duration, "usertable")
        unpipelined = ["--pipelining", "off", "--routing", "fixed"]
        # Each insert run writes new keys: its own collection (gRPC) or key prefix (wrk).
        systems = [
            ("GET", "gRPC, pipelined, token-aware", lambda r: grpc(
                "c", a.records, a.duration, "usertable")),
            ("GET", "gRPC, a call per request, rotation", lambda r: grpc(
                "c", a.records, a.duration, "usertable", unpipelined)),
            ("GET", "HTTP/1.1 (wrk, keep-alive)", lambda r: wrk(
                "GET", a.records, a.duration, "usertable", cluster.dir, r)),
            ("PUT", "gRPC, pipelined, token-aware", lambda r: grpc(
                "load", a.put_records, a.duration, f"puts{r}a")),
            ("PUT", "gRPC, a call per request, rotation", lambda r: grpc(
                "load", a.put_records, a.duration, f"puts{r}b", unpipelined)),
            ("PUT", "HTTP/1.1 (wrk, keep-alive)", lambda r: wrk(
                "PUT", a.records, a.duration, "puts", cluster.dir, r)),
        ]
        for r in range(a.rounds):
            for op, name, f in systems:
                ops, p50, p99 = f(r)
                log(f"  round {r + 1} {op} {name:<36} {ops:>9.0f} ops/s  p50 {p50:.2f} ms"
                    f"  p99 {p99:.2f} ms")
                results.setdefault((op, name), []).append((ops, p50, p99))
    finally:
        cluster.stop()
    lines = [f"HTTP vs gRPC, 3-node `ringdb dev` (release), QUORUM, durable, {CONCURRENCY} in "
             f"flight, {a.records} records of ~1 KiB, uniform keys; medians of {a.rounds} "
             f"rounds of {a.duration} s (`python3 bench/http.py --records {a.records} "
             f"--duration {a.duration} --rounds {a.rounds}`)", "",
             "| op | client | ops/s | p50 ms | p99 ms | vs gRPC pipelined |",
             "|---|---|---:|---:|---:|---:|"]
    for op in ["GET", "PUT"]:
        base = None
        for (o, name), rs in results.items():
            if o != op:
                continue
            ops = statistics.median(x[0] for x in rs)
            base = base or ops
            lines.append(f"| {op} | {name} | {ops:.0f} | "
                         f"{statistics.median(x[1] for x in rs):.2f} | "
                         f"{statistics.median(x[2] for x in rs):.2f} | {ops / base:.2f} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
