#!/usr/bin/env python3
"""The query benchmark of issue 13: the same documents and the same queries on PostgreSQL 15
and on RingDB, each query kind for --duration seconds with --concurrency connections.

    python3 bench/queries.py [--records 1000000] [--duration 20] [--concurrency 64]
                             [--seed 1] [--skip-ringdb] [--out FILE]
    python3 bench/queries.py --self-check      # ~2,000 documents, checks every answer

Query kinds (defined in bench/src/queryspec.rs): indexed equality returning ~10 and ~100
documents, an indexed range `score >= x` in score order with LIMIT 100, and COUNT with a
filter matching 20% of the documents.

What is defined where:
- `ringdb-bench querydata` (Rust) is the only definition of the documents, of query i of each
  kind, of the PostgreSQL indexes and of the pgbench scripts. This driver only orchestrates.
- pgbench client c of C runs queries c, c + C, c + 2C, ...: the script computes i from
  `:client_id` and a per-client counter `:n` (`-D n=0`), and the query's value from i with
  the same shuffle `querydata` uses, written as a pgbench expression. `--self-check` runs
  those scripts and compares every answer, row by row, with a brute-force evaluation of the
  queries `querydata --emit queries` names over the documents it printed.

PostgreSQL: a private server (initdb + pg_ctl, as user postgres when run as root) in a temp
directory on a free port, Debian's defaults otherwise; installed with apt-get if missing.
Table `docs(key text primary key, doc jsonb)`, loaded with COPY, expression indexes on the
queried paths, VACUUM ANALYZE. pgbench runs each kind with one connection per worker,
prepared statements, and per-transaction logs (-l) for p50 and p99.

RingDB: see run_ringdb below; its query workloads come with the query engine.

Builds target/release/ringdb-bench first unless --bench-bin is given. Markdown to stdout (and
--out), progress to stderr; the last stdout line is one JSON object.
"""

import argparse
import glob
import json
import os
import platform
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG_VERSION = "15"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def loadavg():
    with open("/proc/loadavg") as f:
        return tuple(float(x) for x in f.read().split()[:3])


def proc_stat(pid):
    """(ppid, own CPU ticks, reaped children's CPU ticks) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields after the command: state ppid ... utime(14) stime(15) cutime(16) cstime(17).
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


class CpuMeter:
    """How much of the machine's CPU other programs took while a run went on: all busy time
    (/proc/stat) minus the PostgreSQL server's processes and this driver's children. The load
    average cannot say it: 64 busy backends are a load of 64 on their own."""

    def __init__(self, server_pid):
        self.server_pid = server_pid
        self.baseline = len(self.children())
        self.start = self.sample()

    def children(self):
        kids = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if proc_stat(entry)[0] == self.server_pid:
                        kids.append(entry)
                except (OSError, IndexError, ValueError):
                    pass  # gone meanwhile
        return kids

    def sample(self):
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        busy = sum(ticks) - ticks[3] - ticks[4]  # all but idle and iowait
        _, own, reaped = proc_stat(self.server_pid)
        server = own + reaped
        for kid in self.children():
            try:
                server += proc_stat(kid)[1]
            except (OSError, IndexError, ValueError):
                pass
        t = os.times()
        mine = (t.user + t.system + t.children_user + t.children_system) * os.sysconf("SC_CLK_TCK")
        return time.time(), busy, server + mine

    def others_share(self):
        """Share of all CPUs (0..1) that other programs used since the meter started."""
        # Backends of a finished run exit on their own; count them once reaped.
        deadline = time.time() + 10
        while len(self.children()) > self.baseline and time.time() < deadline:
            time.sleep(0.05)
        end = self.sample()
        wall = end[0] - self.start[0]
        others = (end[1] - self.start[1]) - (end[2] - self.start[2])
        return max(0.0, others / (wall * os.sysconf("SC_CLK_TCK") * (os.cpu_count() or 1)))


# ---------------------------------------------------------------- the data (ringdb-bench)

class QueryData:
    """`ringdb-bench querydata` for one data set: documents, queries and scripts."""

    def __init__(self, binary, records, seed):
        self.binary, self.records, self.seed = binary, records, seed

    def cmd(self, *extra):
        return [self.binary, "querydata", "--records", str(self.records), "--seed", str(self.seed),
                *extra]

    def text(self, *extra):
        return run(self.cmd(*extra))

    def kinds(self):
        return [json.loads(line) for line in self.text("--emit", "kinds").splitlines()]

    def queries(self, kind, count, start=0):
        out = self.text("--emit", "queries", "--kind", kind, "--from", str(start),
                        "--count", str(count))
        return [json.loads(line) for line in out.splitlines()]


def bench_binary(a):
    if a.bench_bin:
        return a.bench_bin
    log("building target/release/ringdb-bench")
    subprocess.run(["cargo", "build", "--release", "-p", "ringdb-bench"], cwd=ROOT, check=True)
    return os.path.join(ROOT, "target", "release", "ringdb-bench")


# ---------------------------------------------------------------- PostgreSQL

def pg_bindir():
    """Debian's PostgreSQL 15 binaries, installed from the archive if they are missing."""
    bindir = f"/usr/lib/postgresql/{PG_VERSION}/bin"
    if not os.path.exists(os.path.join(bindir, "pgbench")):
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            raise SystemExit(f"PostgreSQL {PG_VERSION} is not in {bindir}; install Debian's "
                             "postgresql package (apt-get install postgresql) and retry")
        log("installing postgresql from Debian's archive")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], check=True, env=env)
    if not os.path.exists(os.path.join(bindir, "pgbench")):
        raise SystemExit(f"apt-get installed postgresql, but not PostgreSQL {PG_VERSION} in {bindir}")
    return bindir


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_postgres(cmd):
    """Root cannot run the server: run server commands as user postgres."""
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", "postgres", "--", *cmd]
    return ["su", "-s", "/bin/sh", "postgres", "-c", shlex.join(cmd)]


class Postgres:
    """A private PostgreSQL server in a temp directory, on a free port of 127.0.0.1."""

    def __init__(self, bindir, max_connections):
        self.bindir, self.port = bindir, free_port()
        self.dir = tempfile.mkdtemp(prefix="ringdb-pg-")
        self.data = os.path.join(self.dir, "data")
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        run(as_postgres([self.bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres",
                         "-E", "UTF8", "--no-sync"]))
        opts = (f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.dir} -c max_connections={max_connections}")
        run(as_postgres([self.bin("pg_ctl"), "-D", self.data, "-l",
                         os.path.join(self.dir, "server.log"), "-o", opts, "-w", "start"]))
        self.version = self.psql("SHOW server_version").strip()

    def bin(self, name):
        return os.path.join(self.bindir, name)

    def server_pid(self):
        with open(os.path.join(self.data, "postmaster.pid")) as f:
            return int(f.readline())

    def conn(self):
        return ["-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"]

    def psql_cmd(self, *extra):
        return [self.bin("psql"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", *self.conn(),
                "-d", "postgres", *extra]

    def psql(self, sql):
        return run(self.psql_cmd("-c", sql))

    def stop(self):
        subprocess.run(as_postgres([self.bin("pg_ctl"), "-D", self.data, "-m", "fast", "-w",
                                    "stop"]), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def copy_text(value):
    """A field of COPY's text format."""
    return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
            .replace("\r", "\\r"))


def pg_load(pg, qd):
    """COPY the documents into docs(key, doc), index the queried paths, VACUUM ANALYZE."""
    start = time.time()
    pg.psql("CREATE TABLE docs (key text NOT NULL, doc jsonb NOT NULL)")
    # Streamed from the generator to COPY, one row per JSON line, without a staging table.
    gen = subprocess.Popen(qd.cmd(), stdout=subprocess.PIPE, text=True)
    load = subprocess.Popen(pg.psql_cmd("-c", "COPY docs (key, doc) FROM STDIN"),
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        for line in gen.stdout:
            item = json.loads(line)
            doc = json.dumps(item["doc"], separators=(",", ":"))
            load.stdin.write(f"{copy_text(item['key'])}\t{copy_text(doc)}\n")
    except BrokenPipeError:
        pass  # psql stopped: its status says why
    finally:
        try:
            load.stdin.close()
        except BrokenPipeError:
            pass
    if load.wait() != 0 or gen.wait() != 0:
        raise SystemExit("loading the documents failed")
    pg.psql("ALTER TABLE docs ADD PRIMARY KEY (key)")
    loaded = time.time() - start
    for stmt in qd.text("--emit", "pg-indexes").splitlines():
        pg.psql(stmt)
    pg.psql("VACUUM (ANALYZE) docs")
    rows = int(pg.psql("SELECT count(*) FROM docs"))
    if rows != qd.records:
        raise SystemExit(f"docs holds {rows} rows, not {qd.records}")
    sizes = pg.psql("SELECT pg_table_size('docs'), pg_indexes_size('docs')").strip().split("|")
    return {"load_s": loaded, "indexed_s": time.time() - start,
            "table_bytes": int(sizes[0]), "index_bytes": int(sizes[1])}


def pg_plan(pg, sql, setup=""):
    """The plan's nodes, outermost first, each with its index: 'Limit > Index Scan docs_x'."""
    out = pg.psql(f"{setup} EXPLAIN (FORMAT JSON) {sql}")
    nodes, todo = [], [json.loads(out)[0]["Plan"]]
    while todo:
        n = todo.pop(0)
        nodes.append(n["Node Type"] + (f" {n['Index Name']}" if "Index Name" in n else ""))
        todo = n.get("Plans", []) + todo
    return " > ".join(nodes)


def percentile(sorted_values, q):
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def pgbench(pg, script, workdir, name, clients, duration=None, transactions=None):
    """Runs a pgbench script; ops/s, p50/p99 from the per-transaction log, failures."""
    path = os.path.join(workdir, f"{name}.sql")
    with open(path, "w") as f:
        f.write(script)
    prefix = os.path.join(workdir, f"{name}-log")
    cmd = [pg.bin("pgbench"), *pg.conn(), "-n", "-M", "prepared", "-c", str(clients),
           "-j", str(min(clients, os.cpu_count() or 1)), "-D", "n=0", "-D", f"clients={clients}",
           "-f", path, "-l", f"--log-prefix={prefix}"]
    cmd += ["-T", str(duration)] if duration else ["-t", str(transactions)]
    proc = subprocess.run([*cmd, "postgres"], text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"pgbench {name} failed:\n{proc.stdout}\n{proc.stderr}")
    tps = failed = None
    for line in proc.stdout.splitlines():
        if line.startswith("tps = "):
            tps = float(line.split()[2])
        elif line.startswith("number of failed transactions:"):
            failed = int(line.split(":")[1].split()[0])
    latencies = []
    for logfile in glob.glob(prefix + ".*"):
        with open(logfile) as f:
            for line in f:
                # client_id transaction_no time_us script_no epoch_s epoch_us
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    latencies.append(int(fields[2]) / 1000)
        os.remove(logfile)
    latencies.sort()
    return {"ops_per_sec": tps, "p50_ms": percentile(latencies, 0.5),
            "p99_ms": percentile(latencies, 0.99), "ops": len(latencies),
            "errors": failed or 0}


def run_postgres(pg, qd, kind, workdir, duration, concurrency):
    script = qd.text("--emit", "pgbench", "--kind", kind)
    meter = CpuMeter(pg.server_pid())
    r = pgbench(pg, script, workdir, kind, concurrency, duration=duration)
    r["others_cpu_share"] = meter.others_share()
    log(f"  PostgreSQL {kind:<6} {r['ops_per_sec']:>9.0f} ops/s  p50 {r['p50_ms']:.2f}"
        f"  p99 {r['p99_ms']:.2f}  errors {r['errors']}  "
        f"other programs took {r['others_cpu_share']:.0%} of the CPU")
    return r


# ---------------------------------------------------------------- RingDB (plugs in here)
#
# When RingDB executes FIND and COUNT, run_ringdb will: start `ringdb dev` (as bench/perf.py
# does), create the indexes on g10, g100, score and status, load the same documents
# (`ringdb-bench querydata` gives key and doc for record i), and run
# `ringdb-bench --workload <kind>` for `duration` s with `concurrency` in flight, worker c
# running queries c, c + C, ... exactly as pgbench's clients do; it returns a dict like
# run_postgres's. The write cost of indexes ("YCSB load with 0, 1 and 3 indexes") is one
# more function beside it: `ringdb-bench --workload load` into collections with 0, 1 and 3
# indexes, reported as the ratio to 0 indexes.

def run_ringdb(kind, records, duration, concurrency):
    """RingDB's side of one query kind, or None while RingDB cannot run it."""
    log(f"  RingDB     {kind:<6} skipped: RingDB query workloads are not built yet "
        "(they need the query engine)")
    return None


# ---------------------------------------------------------------- the benchmark

def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}"


def fmt(r, key, spec):
    return "—" if r is None else format(r[key], spec)


def benchmark(a, binary):
    qd = QueryData(binary, a.records, a.seed)
    kinds = qd.kinds()
    pg = Postgres(pg_bindir(), a.concurrency + 10)
    results, plans, load_before = {}, {}, None
    try:
        log(f"PostgreSQL {pg.version} on port {pg.port}: loading {a.records:,} documents")
        loaded = pg_load(pg, qd)
        log(f"  loaded in {loaded['load_s']:.0f} s, indexed in {loaded['indexed_s']:.0f} s")
        workdir = tempfile.mkdtemp(prefix="ringdb-pgbench-")
        load_before = loadavg()
        try:
            for k in kinds:
                kind = k["kind"]
                plans[kind] = pg_plan(pg, qd.queries(kind, 1)[0]["sql"])
                log(f"  plan {kind}: {plans[kind]}")
                pg_r = run_postgres(pg, qd, kind, workdir, a.duration, a.concurrency)
                ring_r = None if a.skip_ringdb else run_ringdb(kind, a.records, a.duration,
                                                               a.concurrency)
                results[kind] = {"label": k["label"], "postgres": pg_r, "ringdb": ring_r}
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    finally:
        pg.stop()

    lines = []
    emit = lines.append
    emit(f"Machine: {machine()}. PostgreSQL {pg.version}, initdb defaults, "
         f"{a.records:,} documents (table {loaded['table_bytes'] / 2**20:,.0f} MiB, indexes "
         f"{loaded['index_bytes'] / 2**20:,.0f} MiB), {a.duration} s per kind, {a.concurrency} "
         "connections (one per worker), pgbench with prepared statements. Load average before "
         f"the runs: {load_before[0]:.1f} / {load_before[1]:.1f} / {load_before[2]:.1f} (1 / 5 / "
         "15 min); the CPU column is the share of both cores other programs took during a run.")
    emit("")
    with_ring = any(r["ringdb"] for r in results.values())
    head = "| query | PostgreSQL ops/s | p50 ms | p99 ms |"
    rule = "| --- | ---: | ---: | ---: |"
    if with_ring:
        head += " RingDB ops/s | p50 ms | p99 ms | RingDB / PostgreSQL |"
        rule += " ---: | ---: | ---: | ---: |"
    emit(head + " other programs' CPU | PostgreSQL plan |")
    emit(rule + " ---: | --- |")
    for kind, r in results.items():
        p, g = r["postgres"], r["ringdb"]
        cells = f"| {r['label']} | {p['ops_per_sec']:,.0f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} |"
        if with_ring:
            ratio = "—" if g is None else f"{g['ops_per_sec'] / p['ops_per_sec']:.2f}"
            cells += (f" {fmt(g, 'ops_per_sec', ',.0f')} | {fmt(g, 'p50_ms', '.2f')} |"
                      f" {fmt(g, 'p99_ms', '.2f')} | {ratio} |")
        emit(cells + f" {p['others_cpu_share']:.0%} | {plans[kind]} |")
    if not with_ring:
        emit("")
        emit("RingDB: " + ("skipped (--skip-ringdb)." if a.skip_ringdb else
                           "query workloads are not built yet (they come with the query engine)."))
    text = "\n".join(lines)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")
    print(json.dumps({"records": a.records, "seed": a.seed, "duration_s": a.duration,
                      "concurrency": a.concurrency, "postgres_version": pg.version,
                      "postgres_load": loaded, "plans": plans, "loadavg_before": load_before,
                      "kinds": {k: {"postgres": r["postgres"], "ringdb": r["ringdb"]}
                                for k, r in results.items()}}))


# ---------------------------------------------------------------- --self-check

def brute_force(docs, q):
    """The answer to query q over the documents: keys in order, or the count."""
    path, value = q["path"], q["value"]
    if q["kind"] == "count":
        return [{"count": sum(1 for d in docs.values() if d.get(path) == value)}]
    if q["op"] == "=":
        return [{"key": k} for k in sorted(k for k, d in docs.items() if d.get(path) == value)]
    assert q["op"] == ">=", q
    hits = sorted((d[path], k) for k, d in docs.items() if d[path] >= value)
    return [{"key": k} for _, k in hits[: q["limit"]]]


def self_check(a, binary):
    records, clients, per_client = a.check_records, 4, 50
    qd = QueryData(binary, records, a.seed)
    text = qd.text()
    if qd.text() != text:
        raise SystemExit("FAIL: two runs of querydata printed different documents")
    docs = {}
    for line in text.splitlines():
        item = json.loads(line)
        docs[item["key"]] = item["doc"]
    if len(docs) != records:
        raise SystemExit(f"FAIL: {len(docs)} distinct keys, not {records}")
    failures, checked = [], 0
    pg = Postgres(pg_bindir(), 20)
    workdir = tempfile.mkdtemp(prefix="ringdb-pgcheck-")
    try:
        pg_load(pg, qd)
        pg.psql("CREATE TABLE query_check (i bigint, result jsonb)")
        for k in qd.kinds():
            kind = k["kind"]
            queries = qd.queries(kind, clients * per_client)
            # Small tables are scanned sequentially; the index only has to be usable.
            plan = pg_plan(pg, queries[0]["sql"], "SET enable_seqscan = off;")
            if f"docs_{k['path']}" not in plan:
                failures.append(f"{kind}: the plan does not use docs_{k['path']}: {plan}")
            pg.psql("TRUNCATE query_check")
            script = qd.text("--emit", "pgbench-check", "--kind", kind)
            pgbench(pg, script, workdir, f"check-{kind}", clients, transactions=per_client)
            got = {}
            for line in pg.psql("SELECT i, result FROM query_check").splitlines():
                i, result = line.split("|", 1)
                got[int(i)] = json.loads(result)
            if sorted(got) != list(range(clients * per_client)):
                failures.append(f"{kind}: pgbench ran queries {sorted(got)[:10]}..., "
                                f"not 0..{clients * per_client - 1}")
            for q in queries:
                want = brute_force(docs, q)
                rows = got.get(q["i"], [])
                if q["op"] == "=" and kind != "count":
                    rows = sorted(rows, key=lambda r: r["key"])
                n = want[0]["count"] if kind == "count" else len(want)
                expected = q["expected_count"] if kind == "count" else q["expected_rows"]
                if rows != want or n != expected:
                    failures.append(f"{kind} query {q['i']} ({q['ringsh']}): PostgreSQL gave "
                                    f"{len(rows)} rows {rows[:2]}..., brute force {n} "
                                    f"{want[:2]}..., querydata expects {expected}")
                checked += 1
            log(f"  {kind:<6} {len(queries)} queries checked; plan with seqscan off: {plan}")
            r = pgbench(pg, qd.text("--emit", "pgbench", "--kind", kind), workdir, kind,
                        clients, duration=1)
            if r["errors"] or not r["ops"]:
                failures.append(f"{kind}: the benchmark script ran {r['ops']} queries, "
                                f"{r['errors']} failed")
    finally:
        pg.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        for f in failures[:20]:
            log("FAIL: " + f)
        raise SystemExit(f"self-check failed: {len(failures)} problems")
    print(f"self-check passed: {records:,} documents, {checked} queries answered by PostgreSQL "
          f"{pg.version} through pgbench exactly as brute force and querydata expect")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--duration", type=int, default=20, help="seconds per query kind")
    ap.add_argument("--concurrency", type=int, default=64, help="connections / queries in flight")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--skip-ringdb", action="store_true")
    ap.add_argument("--out", help="also write the markdown here")
    ap.add_argument("--bench-bin", help="a built ringdb-bench to use instead of building one")
    ap.add_argument("--self-check", action="store_true",
                    help="check every answer on a small data set instead of measuring")
    ap.add_argument("--check-records", type=int, default=2000)
    a = ap.parse_args()
    if a.records < 100 or a.concurrency < 1 or a.duration < 1:
        ap.error("--records must be at least 100, --concurrency and --duration at least 1")
    binary = bench_binary(a)
    if a.self_check:
        self_check(a, binary)
    else:
        benchmark(a, binary)


if __name__ == "__main__":
    main()
