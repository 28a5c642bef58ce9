#!/usr/bin/env python3
"""What TLS and tokens cost: YCSB-A at QUORUM on a 3-node cluster with security off, then
with TLS (mutual between nodes) and --auth on, alternating, each configuration on a fresh
cluster loaded the same way.

    python3 bench/security.py [--rounds 2] [--duration 20] [--records 20000]

Needs the release binaries (`cargo build --release -p ringdb-node --bin ringdb -p
ringdb-bench`) and the openssl command (for a throwaway CA and node certificate). Ports
7911-7913 must be free. Prints each run to stderr and a summary line (JSON) to stdout.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release")
PORTS = (7911, 7912, 7913)
HOSTS = ",".join(f"127.0.0.1:{p}" for p in PORTS)
TOKEN = "bench-bootstrap-token-0123456789"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, **kw).stdout


def make_certs(d):
    """A CA and one node certificate for 127.0.0.1, as docs/security.md makes them."""
    def ssl(*args):
        run(["openssl", *args], cwd=d)
    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
        "-out", "ca.pem", "-subj", "/CN=bench CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr",
        "-subj", "/CN=node")
    with open(os.path.join(d, "node.ext"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1, DNS:localhost\n"
                "extendedKeyUsage = serverAuth, clientAuth\n")
    ssl("x509", "-req", "-in", "node.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "node.pem", "-extfile", "node.ext")
    with open(os.path.join(d, "bootstrap.token"), "w") as f:
        f.write(TOKEN + "\n")


class Cluster:
    def __init__(self, secure, certs):
        self.dir = tempfile.mkdtemp(prefix="ringdb-secbench-")
        self.procs = []
        self.client_args = []
        extra = []
        if secure:
            extra = ["--tls-cert", os.path.join(certs, "node.pem"),
                     "--tls-key", os.path.join(certs, "node.key"),
                     "--tls-ca", os.path.join(certs, "ca.pem"),
                     "--auth", "--auth-bootstrap-token-file",
                     os.path.join(certs, "bootstrap.token")]
            self.client_args = ["--tls-ca", os.path.join(certs, "ca.pem"), "--token", TOKEN]
        for i, port in enumerate(PORTS):
            log_file = open(os.path.join(self.dir, f"n{i + 1}.log"), "w")
            cmd = [os.path.join(BIN, "ringdb"), "serve", "--node-id", f"n{i + 1}",
                   "--listen", f"127.0.0.1:{port}", "--data-dir",
                   os.path.join(self.dir, f"n{i + 1}"), "--seeds", f"127.0.0.1:{PORTS[0]}",
                   "--worker-threads", "2", *extra]
            self.procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file))
            self.wait(port, i + 1)

    def wait(self, port, n):
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                out = run([os.path.join(BIN, "ringdb"), "status", "--json", "--host",
                           f"127.0.0.1:{port}", *self.client_args])
                nodes = json.loads(out)["nodes"]
                if len(nodes) >= n and all(x["up"] and x["status"] == "NORMAL" for x in nodes):
                    return
            except subprocess.CalledProcessError:
                pass
            time.sleep(0.5)
        raise SystemExit("cluster did not come up; see " + self.dir)

    def bench(self, workload, records, duration):
        out = run([os.path.join(BIN, "ringdb-bench"), "--hosts", HOSTS, "--workload", workload,
                   "--records", str(records), "--duration", str(duration),
                   "--read-consistency", "QUORUM", "--write-consistency", "QUORUM",
                   *self.client_args])
        return json.loads(out.strip().splitlines()[-1])

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait(timeout=60)
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--records", type=int, default=20000)
    a = ap.parse_args()
    certs = tempfile.mkdtemp(prefix="ringdb-secbench-certs-")
    try:
        make_certs(certs)
        results = measure(a, certs)
    finally:
        shutil.rmtree(certs, ignore_errors=True)
    off = sum(results["off"]) / len(results["off"])
    on = sum(results["on"]) / len(results["on"])
    print(json.dumps({"off_ops_per_sec": results["off"], "on_ops_per_sec": results["on"],
                      "ratio": on / off}))


def measure(a, certs):
    results = {"off": [], "on": []}
    for r in range(a.rounds):
        for name in ("off", "on"):
            c = Cluster(name == "on", certs)
            try:
                c.bench("load", a.records, a.duration)
                res = c.bench("a", a.records, a.duration)
            finally:
                c.stop()
            log(f"round {r + 1} security {name}: {res['ops_per_sec']:.0f} ops/s "
                f"p50 {res['p50_ms']:.2f} ms p99 {res['p99_ms']:.2f} ms errors {res['errors']}")
            results[name].append(res["ops_per_sec"])
    return results


if __name__ == "__main__":
    main()
