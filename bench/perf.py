#!/usr/bin/env python3
"""The performance run behind docs/performance.md: one 3-node dev cluster, every YCSB
workload at ONE, QUORUM and ALL, memory-only durability, latency at half of peak, node
memory under sustained and overload, and Redis (redis-benchmark) on the same machine.

    python3 bench/perf.py [--duration 20] [--records 50000] [--skip-redis] [--out FILE]

Builds the release binaries first. Prints progress to stderr and the markdown tables to
stdout (and to --out). Installs redis-server from Debian's archive if it is missing and
apt-get is there. Ports 7901-7903 (RingDB) and 7999 (Redis) must be free.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
HOSTS = "127.0.0.1:7901,127.0.0.1:7902,127.0.0.1:7903"
REDIS_PORT = 7999


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


class Cluster:
    """`ringdb dev` in a scratch directory, stopped with Ctrl-C (SIGINT) like a user would.
    bench/http.py starts its cluster through this too, on other ports and with HTTP."""

    def __init__(self, serve_args=(), base_port=7901, http_base_port=None):
        self.hosts = [f"127.0.0.1:{base_port + i}" for i in range(3)]
        self.dir = tempfile.mkdtemp(prefix="ringdb-perf-")
        cmd = [os.path.join(BIN, "ringdb"), "dev", "--nodes", "3", "--base-port",
               str(base_port), "--data-dir", self.dir]
        if http_base_port is not None:
            cmd += ["--http-base-port", str(http_base_port)]
        if serve_args:
            cmd += ["--", *serve_args]
        self.log = open(os.path.join(self.dir, "dev.log"), "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.all_normal():
                return
            time.sleep(0.5)
        raise SystemExit("cluster did not come up; see " + self.dir)

    def all_normal(self):
        for host in self.hosts:
            try:
                out = run([os.path.join(BIN, "ringdb"), "status", "--json", "--host", host])
            except subprocess.CalledProcessError:
                return False
            status = json.loads(out)
            nodes = status["nodes"]
            if (not status.get("serving") or len(nodes) != 3
                    or not all(n["up"] and n["status"] == "NORMAL" for n in nodes)):
                return False
        return True

    def node_pids(self):
        out = run(["pgrep", "-f", f"serve .*--data-dir {self.dir}/"])
        return [int(p) for p in out.split()]

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def rss_mib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total = max(total, int(line.split()[1]))
        except FileNotFoundError:
            pass
    return total / 1024


class RssSampler:
    """Largest resident set of any one node, sampled every 200 ms while a run goes on."""

    def __init__(self, pids):
        self.pids, self.peak, self.stop_flag = pids, 0.0, False
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self):
        while not self.stop_flag:
            self.peak = max(self.peak, rss_mib(self.pids))
            time.sleep(0.2)

    def stop(self):
        self.stop_flag = True
        self.thread.join()
        return self.peak


def bench(workload, collection, level, records, duration, extra=()):
    cmd = [os.path.join(BIN, "ringdb-bench"), "--hosts", HOSTS, "--workload", workload,
           "--records", str(records), "--duration", str(duration), "--collection", collection,
           "--read-consistency", level, "--write-consistency", level, *extra]
    out = run(cmd)
    result = json.loads(out.strip().splitlines()[-1])
    log(f"  {workload:<5} {level:<6} {collection:<12} {' '.join(extra):<28} "
        f"{result['ops_per_sec']:>9.0f} ops/s  p50 {result['p50_ms']:.2f}  p99 {result['p99_ms']:.2f}"
        f"  errors {result['errors']}")
    return result


def redis_benchmark():
    server = shutil.which("redis-server")
    if server is None or shutil.which("redis-benchmark") is None:
        if shutil.which("apt-get") is None:
            return None
        log("installing redis-server from Debian's archive")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server", "redis-tools"],
                       check=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        server = shutil.which("redis-server")
    proc = subprocess.Popen([server, "--port", str(REDIS_PORT), "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        out = run(["redis-benchmark", "-p", str(REDIS_PORT), "-t", "set,get", "-d", "1024",
                   "-c", "64", "-n", "1000000", "--csv"])
    finally:
        proc.terminate()
        proc.wait()
    rates = {}
    for line in out.splitlines():
        cells = [c.strip('"') for c in line.split(",")]
        if cells[0] in ("SET", "GET"):
            # test, rps, avg, min, p50, p95, p99, max
            rates[cells[0]] = {"ops_per_sec": float(cells[1]), "p50_ms": float(cells[4]),
                               "p99_ms": float(cells[6])}
    log(f"  redis {rates}")
    return rates


def row(label, level, r):
    return (f"| {label} | {level} | {r['ops_per_sec']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f}"
            f" | {r['p999_ms']:.2f} | {r['errors']} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--records", type=int, default=50000)
    ap.add_argument("--skip-redis", action="store_true")
    ap.add_argument("--out")
    a = ap.parse_args()

    log("building release binaries")
    subprocess.run(["cargo", "build", "--release", "--workspace", "--bins"], cwd=ROOT, check=True)

    lines = []
    emit = lines.append
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    emit(f"Machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}; "
         f"3 nodes and the client on the same machine. {a.records:,} records, "
         f"{a.duration} s per run, 64 requests in flight.")
    emit("")

    results = {}
    cluster = Cluster()
    pids = cluster.node_pids()
    sampler = RssSampler(pids)
    try:
        emit("| workload | level (read / write) | ops/s | p50 ms | p99 ms | p99.9 ms | errors |")
        emit("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
        for level in ("ONE", "QUORUM", "ALL"):
            coll = f"ycsb_{level.lower()}"
            log(f"level {level}")
            r = bench("load", coll, level, a.records, a.duration)
            results[("load", level)] = r
            emit(row("load (insert)", level, r))
            for w, label in (("a", "a (50/50 read/update)"), ("b", "b (95/5)"),
                             ("c", "c (read only)"), ("f", "f (read-modify-write)")):
                r = bench(w, coll, level, a.records, a.duration)
                results[(w, level)] = r
                emit(row(label, level, r))
        log("memory-only durability")
        r = bench("load", "ycsb_memory", "QUORUM", a.records, a.duration, ("--durability", "memory"))
        results[("load", "memory")] = r
        emit(row("load, MEMORY durability", "QUORUM", r))
        r = bench("a", "ycsb_memory", "QUORUM", a.records, a.duration, ("--durability", "memory"))
        results[("a", "memory")] = r
        emit(row("a, MEMORY durability", "QUORUM", r))

        peak = results[("a", "QUORUM")]["ops_per_sec"]
        half = round(peak / 2)
        log(f"half of peak: {half} ops/s")
        r = bench("a", "ycsb_quorum", "QUORUM", a.records, a.duration, ("--rate", str(half)))
        results[("a", "half")] = r
        emit(row(f"a at half of peak ({half:,} ops/s offered)", "QUORUM", r))
        sustained_rss = sampler.stop()

        log("overload: 4,096 requests in flight")
        sampler = RssSampler(pids)
        r = bench("a", "ycsb_quorum", "QUORUM", a.records, a.duration, ("--concurrency", "4096"))
        results[("a", "overload")] = r
        overload_rss = sampler.stop()
        emit(row("a with 4,096 in flight (overload)", "QUORUM", r))
        emit("")
        emit(f"Largest node resident set: {sustained_rss:.0f} MiB over all the runs above with 64 in "
             f"flight; {overload_rss:.0f} MiB with 4,096 in flight "
             f"(errors: {json.dumps(r['errors_by_code'])}).")
    finally:
        cluster.stop()

    redis = None if a.skip_redis else redis_benchmark()
    emit("")
    q = lambda w: results[(w, "QUORUM")]["ops_per_sec"]
    emit("| target | RingDB | reference | ratio | bar |")
    emit("| --- | ---: | ---: | ---: | --- |")
    if redis:
        emit(f"| QUORUM writes (load) vs Redis SET | {q('load'):,.0f} | {redis['SET']['ops_per_sec']:,.0f} "
             f"| {q('load') / redis['SET']['ops_per_sec']:.2f} | ≥ 0.30 |")
        emit(f"| QUORUM reads (c) vs Redis GET | {q('c'):,.0f} | {redis['GET']['ops_per_sec']:,.0f} "
             f"| {q('c') / redis['GET']['ops_per_sec']:.2f} | ≥ 0.40 |")
    emit(f"| YCSB-A QUORUM vs etcd (4,500 on this machine kind) | {q('a'):,.0f} | 4,500 "
         f"| {q('a') / 4500:.1f}× | ≥ 4× |")
    half_r = results[("a", "half")]
    emit(f"| p99 at half of peak | {half_r['p99_ms']:.2f} ms | | | ≤ 2 ms |")
    emit(f"| p99.9 / p50 at half of peak | {half_r['p999_ms'] / half_r['p50_ms']:.1f} | | | ≤ 15 |")
    mem = results[("a", "memory")]["ops_per_sec"]
    emit(f"| YCSB-A MEMORY / DURABLE | {mem:,.0f} / {q('a'):,.0f} | | {mem / q('a'):.2f}× | ≤ 2× |")
    if redis:
        emit("")
        emit(f"Redis {run(['redis-server', '--version']).split()[2]} "
             f"(`redis-benchmark -t set,get -d 1024 -c 64 -n 1000000`): SET "
             f"{redis['SET']['ops_per_sec']:,.0f}/s (p50 {redis['SET']['p50_ms']} ms, p99 "
             f"{redis['SET']['p99_ms']} ms), GET {redis['GET']['ops_per_sec']:,.0f}/s (p50 "
             f"{redis['GET']['p50_ms']} ms, p99 {redis['GET']['p99_ms']} ms).")
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
