#!/usr/bin/env python3
"""The whole query benchmark of issue 13 in one run: RingDB beside PostgreSQL 15 on the same
documents and queries, the write cost of indexes, and the bytes a COUNT ships between nodes.

    python3 bench/querybench.py [--records 200000] [--duration 15] [--concurrency 64]
                                [--allow-filtering] [--write-records 100000] [--out FILE]

1. Queries. A 3-node `ringdb dev` (release build, free ports, a fresh data directory) and a
   private PostgreSQL 15 server (bench/queries.py) both get the same --records documents
   (`ringdb-bench queryload`; COPY). Then, kind by kind, pgbench and `ringdb-bench query`
   run the same queries (client c of C runs queries c, c + C, ...) with the same
   concurrency for --duration seconds each: the eq/range kinds at QUORUM, COUNT at ONE and
   at QUORUM. RingDB checks every answer's row count; a wrong one is an error.
2. COUNT bytes. Bytes between the nodes while COUNTs run one after the other, read from the
   kernel's per-socket counters (`ss -ti`: bytes_acked + bytes_received of every TCP
   connection a node opened to another node's port, so each byte is counted once, HTTP/2
   framing and gossip included), against the same wait with no query, and compared with
   the size of the documents. On the benchmark collection (N = 3 on 3 nodes) and on a copy
   with one replica per key (--bytes-replication), where the coordinator must ask the others.
3. Write cost. YCSB `load` (--write-records records of 10 random 100-character fields) into
   a fresh cluster whose collection has 0, 1 and 3 indexes (on field0, field1, field2: the
   records' own string fields, so every index keeps one 100-byte value per record), runs
   alternated --write-repeats times.

Markdown to stdout (and --out), progress to stderr; the last stdout line is one JSON object.
The load average and the share of the CPU other programs took are reported with each figure.
"""

import argparse
import json
import os
import random
import re
import signal
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import queries as pgq  # noqa: E402  (the PostgreSQL side, shared)

from queries import ROOT, log, run, loadavg, proc_stat  # noqa: E402


# ---------------------------------------------------------------- the RingDB cluster

def free_base_port():
    """A port p with p, p+1, p+2 free on 127.0.0.1."""
    for _ in range(200):
        base = random.randrange(20000, 40000)
        ok = True
        for p in range(base, base + 3):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise SystemExit("no three consecutive free ports")


class Cluster:
    """`ringdb dev` with 3 nodes in a fresh directory, stopped with SIGINT like Ctrl-C."""

    def __init__(self, bindir, workdir, name):
        self.bindir = bindir
        self.base = free_base_port()
        self.ports = [self.base + i for i in range(3)]
        self.hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports)
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.log = open(os.path.join(workdir, f"{name}.log"), "w")
        self.proc = subprocess.Popen(
            [os.path.join(bindir, "ringdb"), "dev", "--nodes", "3", "--base-port",
             str(self.base), "--data-dir", self.dir], stdout=self.log, stderr=self.log)
        deadline = time.time() + 120
        while not self.all_normal():
            if time.time() > deadline or self.proc.poll() is not None:
                self.stop()
                raise SystemExit(f"cluster did not come up; see {self.log.name}")
            time.sleep(0.5)
        self.pids = self.node_pids()

    def all_normal(self):
        for p in self.ports:
            try:
                out = run([os.path.join(self.bindir, "ringdb"), "status", "--json", "--host",
                           f"127.0.0.1:{p}"])
            except subprocess.CalledProcessError:
                return False
            nodes = json.loads(out)["nodes"]
            if len(nodes) != 3 or not all(n["up"] and n["status"] == "NORMAL" for n in nodes):
                return False
        return True

    def node_pids(self):
        """The serve processes: whoever listens on the node ports."""
        pids = set()
        for line in run(["ss", "-ltnpH"]).splitlines():
            m = re.search(r":(\d+)\s.*pid=(\d+)", line)
            if m and int(m.group(1)) in self.ports:
                pids.add(int(m.group(2)))
        if len(pids) != 3:
            raise SystemExit(f"expected 3 node processes on {self.ports}, found {pids}")
        return sorted(pids)

    def bench(self, *args):
        """`ringdb-bench` against this cluster; its last stdout line, parsed."""
        cmd = [os.path.join(self.bindir, "ringdb-bench"), *args]
        # The YCSB workloads take --hosts before the subcommand-less arguments; the query
        # subcommands take it after their name: both are given where they belong.
        if args and args[0] in ("query", "queryload", "index"):
            cmd = [cmd[0], args[0], "--hosts", self.hosts, *args[1:]]
        else:
            cmd = [cmd[0], "--hosts", self.hosts, *args]
        proc = subprocess.run(cmd, text=True, capture_output=True)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n"
                             f"{proc.stderr[-2000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class PidCpuMeter:
    """Share of all CPUs other programs took during a run: busy time (/proc/stat) minus the
    given processes' (the nodes) and this driver's reaped children (the benchmark client)."""

    def __init__(self, pids):
        self.pids = pids
        self.start = self.sample()

    def sample(self):
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]
        own = 0
        for p in self.pids:
            try:
                own += proc_stat(p)[1]
            except (OSError, IndexError, ValueError):
                pass
        t = os.times()
        mine = (t.user + t.system + t.children_user + t.children_system) * os.sysconf("SC_CLK_TCK")
        return time.time(), busy, own + mine

    def others_share(self):
        end = self.sample()
        wall = end[0] - self.start[0]
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, others / (wall * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)))


# ---------------------------------------------------------------- bytes between nodes

def internode_bytes(cluster):
    """{(local, remote): bytes both ways} of every connection a node opened to a node port."""
    out = run(["ss", "-tinpH", "state", "established"])
    lines = out.splitlines()
    conns = {}
    for head, info in zip(lines[::2], lines[1::2]):
        m = re.search(r"(\S+):(\d+)\s+(\S+):(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+)", head)
        if not m:
            continue
        lport, rport, pid = int(m.group(2)), int(m.group(4)), int(m.group(5))
        if pid not in cluster.pids or rport not in cluster.ports or lport in cluster.ports:
            continue
        acked = re.search(r"bytes_acked:(\d+)", info)
        received = re.search(r"bytes_received:(\d+)", info)
        conns[(lport, rport)] = (int(acked.group(1)) if acked else 0) + (
            int(received.group(1)) if received else 0)
    return conns


def bytes_during(cluster, action):
    """(bytes between nodes while action() ran, connections that vanished meanwhile, result)."""
    before = internode_bytes(cluster)
    result = action()
    after = internode_bytes(cluster)
    total = sum(v - before.get(k, 0) for k, v in after.items())
    return total, len(set(before) - set(after)), result


def count_bytes(cluster, a, collection, level, doc_bytes):
    """COUNTs one at a time at `level` on `collection`: internode bytes per COUNT, beside the
    same wait without queries (gossip and the rest)."""
    idle, _, _ = bytes_during(cluster, lambda: time.sleep(a.bytes_duration))
    args = ["query", "--kind", "count", "--records", str(a.records), "--collection", collection,
            "--concurrency", "1", "--duration", str(a.bytes_duration), "--read-consistency", level]
    if a.allow_filtering:
        args.append("--allow-filtering")
    total, vanished, r = bytes_during(cluster, lambda: cluster.bench(*args))
    n = max(1, r["ops"] + r["errors"])
    per_count = max(0, total - idle * r["duration_s"] / a.bytes_duration) / n
    res = {"collection": collection, "level": level, "counts": r["ops"], "errors": r["errors"],
           "bytes": total, "idle_bytes": idle, "idle_s": a.bytes_duration,
           "duration_s": r["duration_s"], "bytes_per_count": per_count,
           "share_of_data": per_count / doc_bytes, "vanished_connections": vanished,
           "p50_ms": r["p50_ms"]}
    log(f"  COUNT {level:<6} on {collection}: {per_count:,.0f} bytes per COUNT between nodes "
        f"({res['share_of_data']:.3%} of {doc_bytes:,} bytes of documents); idle "
        f"{idle:,} bytes in {a.bytes_duration} s; {r['ops']} counts, {r['errors']} errors")
    return res


# ---------------------------------------------------------------- the benchmark

def ring_query(cluster, a, kind, level):
    args = ["query", "--kind", kind, "--records", str(a.records), "--duration", str(a.duration),
            "--concurrency", str(a.concurrency), "--read-consistency", level]
    if a.allow_filtering:
        args.append("--allow-filtering")
    if a.timeout_ms:
        args += ["--timeout-ms", str(a.timeout_ms)]
    meter = PidCpuMeter(cluster.pids)
    la = loadavg()
    r = cluster.bench(*args)
    r["others_cpu_share"] = meter.others_share()
    r["loadavg_before"] = la
    log(f"  RingDB     {kind:<6} {level:<6} {r['ops_per_sec']:>9.0f} ops/s  p50 "
        f"{r['p50_ms']:.2f}  p99 {r['p99_ms']:.2f}  errors {r['errors']} "
        f"{r['errors_by_code'] or ''} {r.get('first_errors') or ''}  other programs took "
        f"{r['others_cpu_share']:.0%} of the CPU; load {la[0]:.1f}")
    return r


def write_cost(a, bindir, workdir):
    """YCSB load into fresh clusters with 0, 1 and 3 indexes, alternated."""
    runs = {0: [], 1: [], 3: []}
    for rep in range(a.write_repeats):
        for n in (0, 1, 3):
            c = Cluster(bindir, workdir, f"ycsb-{n}-{rep}")
            try:
                if n:
                    paths = ",".join(f"field{i}" for i in range(n))
                    c.bench("index", "--collection", "usertable", "--paths", paths)
                meter = PidCpuMeter(c.pids)
                la = loadavg()
                r = c.bench("--workload", "load", "--records", str(a.write_records))
                r["others_cpu_share"] = meter.others_share()
                r["loadavg_before"] = la
                runs[n].append(r)
                log(f"  YCSB load, {n} indexes: {r['ops_per_sec']:,.0f} writes/s  p50 "
                    f"{r['p50_ms']:.2f}  p99 {r['p99_ms']:.2f}  errors {r['errors']}  load "
                    f"{la[0]:.1f}, others {r['others_cpu_share']:.0%}")
            finally:
                c.stop()
    return runs


def mean(xs):
    return sum(xs) / len(xs) if xs else float("nan")


def benchmark(a, bindir):
    workdir = tempfile.mkdtemp(prefix="ringdb-qbench-")
    bench_bin = os.path.join(bindir, "ringdb-bench")
    qd = pgq.QueryData(bench_bin, a.records, a.seed)
    kinds = qd.kinds()
    out = {"records": a.records, "seed": a.seed, "duration_s": a.duration,
           "concurrency": a.concurrency, "allow_filtering": a.allow_filtering,
           "loadavg_start": loadavg()}
    results, plans = {}, {}
    pg = cluster = None
    try:
        log(f"RingDB: 3-node ringdb dev, loading {a.records:,} documents")
        cluster = Cluster(bindir, workdir, "query-cluster")
        load = cluster.bench("queryload", "--records", str(a.records), "--seed", str(a.seed))
        log(f"  {load['writes_per_sec']:,.0f} writes/s, loaded in {load['load_s']:.0f} s, "
            f"indexes ready {load['index_s']:.0f} s later")
        out["ringdb_load"] = load
        pg = pgq.Postgres(pgq.pg_bindir(), a.concurrency + 10)
        log(f"PostgreSQL {pg.version} on port {pg.port}: loading {a.records:,} documents")
        out["postgres_load"] = pgq.pg_load(pg, qd)
        out["postgres_version"] = pg.version
        out["loadavg_before_queries"] = loadavg()
        pgwork = os.path.join(workdir, "pgbench")
        os.makedirs(pgwork)
        for k in kinds:
            kind = k["kind"]
            plans[kind] = pgq.pg_plan(pg, qd.queries(kind, 1)[0]["sql"])
            la = loadavg()
            p = pgq.run_postgres(pg, qd, kind, pgwork, a.duration, a.concurrency)
            p["loadavg_before"] = la
            levels = ("ONE", "QUORUM") if kind == "count" else ("QUORUM",)
            ring = {lv: ring_query(cluster, a, kind, lv) for lv in levels}
            results[kind] = {"label": k["label"], "postgres": p, "ringdb": ring}
        pg.stop()
        pg = None
        doc_bytes = load["document_bytes"]
        log("COUNT: bytes between nodes")
        counts = [count_bytes(cluster, a, "docs", lv, doc_bytes) for lv in ("ONE", "QUORUM")]
        if a.bytes_replication:
            coll = f"docs_r{a.bytes_replication}"
            cluster.bench("queryload", "--records", str(a.records), "--seed", str(a.seed),
                          "--collection", coll, "--replication", str(a.bytes_replication))
            counts.append(count_bytes(cluster, a, coll, "ONE", doc_bytes))
        out["count_bytes"] = counts
    finally:
        if pg:
            pg.stop()
        if cluster:
            cluster.stop()
    writes = None
    if a.write_records:
        log(f"write cost: YCSB load of {a.write_records:,} records with 0, 1 and 3 indexes")
        writes = write_cost(a, bindir, workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    out.update(kinds=results, plans=plans, writes=writes)
    text = report(a, out, results, plans, writes)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(json.dumps(out))


def report(a, out, results, plans, writes):
    lines = []
    emit = lines.append
    load, pl = out["ringdb_load"], out["postgres_load"]
    la = out["loadavg_before_queries"]
    emit(f"Machine: {pgq.machine()}; 3 RingDB nodes, PostgreSQL {out['postgres_version']} and "
         f"both clients on it. {a.records:,} documents ({load['document_bytes'] / 2**20:,.0f} MiB "
         f"of JSON); {a.duration} s per kind and level, {a.concurrency} queries in flight on both. "
         f"RingDB loaded {load['writes_per_sec']:,.0f} documents/s (QUORUM, durable, "
         f"{load['concurrency']} in flight), its 4 indexes were ready {load['index_s']:.0f} s "
         f"after the load; PostgreSQL loaded and indexed in {pl['indexed_s']:.0f} s. Queries "
         f"{'with' if a.allow_filtering else 'without'} ALLOW FILTERING. Load average before "
         f"the queries: {la[0]:.1f} / {la[1]:.1f} / {la[2]:.1f}.")
    emit("")
    emit("| query | RingDB level | PostgreSQL ops/s | p50 ms | p99 ms | RingDB ops/s | p50 ms | "
         "p99 ms | p99.9 ms | errors | RingDB / PostgreSQL | others' CPU (PG / RingDB) | "
         "load avg (PG / RingDB) |")
    emit("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, r in results.items():
        p = r["postgres"]
        for level, g in r["ringdb"].items():
            emit(f"| {r['label']} | {level} | {p['ops_per_sec']:,.0f} | {p['p50_ms']:.2f} | "
                 f"{p['p99_ms']:.2f} | {g['ops_per_sec']:,.0f} | {g['p50_ms']:.2f} | "
                 f"{g['p99_ms']:.2f} | {g['p999_ms']:.2f} | {g['errors']} | "
                 f"{g['ops_per_sec'] / p['ops_per_sec']:.2f} | {p['others_cpu_share']:.0%} / "
                 f"{g['others_cpu_share']:.0%} | {p['loadavg_before'][0]:.1f} / "
                 f"{g['loadavg_before'][0]:.1f} |")
    emit("")
    emit("PostgreSQL plans: " + "; ".join(f"{k}: {v}" for k, v in plans.items()) + ".")
    emit("")
    emit("| COUNT (status = \"active\") | level | COUNTs | bytes between nodes per COUNT | "
         "share of the documents' bytes | idle traffic (same wait, no query) |")
    emit("| --- | --- | ---: | ---: | ---: | ---: |")
    for c in out["count_bytes"]:
        emit(f"| collection {c['collection']} | {c['level']} | {c['counts']} | "
             f"{c['bytes_per_count']:,.0f} | {c['share_of_data']:.3%} | "
             f"{c['idle_bytes']:,} B in {c['idle_s']} s |")
    if writes:
        emit("")
        emit(f"| YCSB load, {a.write_records:,} records | runs: writes/s | mean | p50 ms | "
             "p99 ms | errors | ratio to no index | load avg | others' CPU |")
        emit("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        base = mean([r["ops_per_sec"] for r in writes[0]])
        for n, rs in writes.items():
            m = mean([r["ops_per_sec"] for r in rs])
            each = " / ".join(format(r["ops_per_sec"], ",.0f") for r in rs)
            loads = " / ".join(format(r["loadavg_before"][0], ".1f") for r in rs)
            others = " / ".join(format(r["others_cpu_share"], ".0%") for r in rs)
            emit(f"| {n} indexes | {each} | {m:,.0f} | {mean([r['p50_ms'] for r in rs]):.2f} | "
                 f"{mean([r['p99_ms'] for r in rs]):.2f} | {sum(r['errors'] for r in rs)} | "
                 f"{m / base:.2f} | {loads} | {others} |")
    return "\n".join(lines)


def binaries(a):
    if a.bin_dir:
        return a.bin_dir
    log("building target/release/ringdb and ringdb-bench")
    subprocess.run(["cargo", "build", "--release", "-p", "ringdb-node", "--bin", "ringdb",
                    "-p", "ringdb-bench"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--duration", type=int, default=15, help="seconds per query kind and level")
    ap.add_argument("--concurrency", type=int, default=64, help="queries in flight on both")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--allow-filtering", action="store_true",
                    help="send ALLOW FILTERING (while queries cannot read the indexes)")
    ap.add_argument("--timeout-ms", type=int, default=0,
                    help="RingDB's per-query deadline (0: the server's 10 s); pgbench has none")
    ap.add_argument("--bytes-duration", type=int, default=5,
                    help="seconds of sequential COUNTs (and of idle traffic) per bytes figure")
    ap.add_argument("--bytes-replication", type=int, default=1,
                    help="also measure COUNT bytes on a copy with this N (0: skip)")
    ap.add_argument("--write-records", type=int, default=100_000,
                    help="records per YCSB load of the write-cost runs (0: skip them)")
    ap.add_argument("--write-repeats", type=int, default=2)
    ap.add_argument("--bin-dir", help="directory with built ringdb and ringdb-bench")
    ap.add_argument("--out", help="also write the markdown here")
    a = ap.parse_args()
    if a.records < 100 or a.concurrency < 1 or a.duration < 1:
        ap.error("--records must be at least 100, --concurrency and --duration at least 1")
    benchmark(a, binaries(a))


if __name__ == "__main__":
    main()
