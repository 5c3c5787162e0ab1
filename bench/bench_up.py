"""Benchmark: time to a usable cluster with `kops up` vs `docker-compose up -d` of the same
topology (the bundle `kops render` writes), each until a real client's produce/consume
round trip succeeds. Also: kops's no-op re-run and `kops down`.

Usage: .venv/bin/python bench/bench_up.py [--preset P ...] [--runs N]
Writes a Markdown table to stdout and appends it to bench/RESULTS.md with the machine.
Ports 9092-9094/2181-2183 must be free (run it on an otherwise idle machine).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KOPS = str(Path(sys.executable).parent / "kops")
sys.path.insert(0, str(ROOT))

from kops.kafka import health
from kops.model import topology  # noqa: E402
from kops.model import inventory as speclib  # noqa: E402


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def wait_round_trip(bootstrap: str, brokers: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        h = health.kafka_health(bootstrap, timeout=2)
        if not h.error and len(h.brokers) == brokers:
            try:
                health.round_trip(bootstrap, min(3, brokers), timeout=10)
                return
            except Exception:  # noqa: BLE001 - not ready yet
                pass
        time.sleep(0.2)
    raise SystemExit(f"cluster at {bootstrap} not ready in time")


def purge(name: str) -> None:
    sh([KOPS, "down", "--purge", "--name", name])


def bench_kops(preset: str, env) -> dict:
    s = speclib.load(preset=preset)
    purge(s.name)
    t0 = time.monotonic()
    r = sh([KOPS, "up", "--preset", preset], env=env)
    cold = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit(f"kops up failed:\n{r.stderr[-3000:]}")
    t0 = time.monotonic()
    sh([KOPS, "up", "--preset", preset], env=env)
    noop = time.monotonic() - t0
    t0 = time.monotonic()
    sh([KOPS, "down", "--preset", preset], env=env)
    down = time.monotonic() - t0
    t0 = time.monotonic()
    sh([KOPS, "up", "--preset", preset], env=env)
    warm = time.monotonic() - t0
    purge(s.name)
    return {"cold": cold, "noop": noop, "down": down, "restart": warm}


def bench_compose(preset: str, env) -> dict:
    s = speclib.load(preset=preset)
    topo = topology.build(s, topology.new_cluster_id())
    compose = shutil.which("docker-compose") or "docker-compose"
    with tempfile.TemporaryDirectory() as tmp:
        r = sh([KOPS, "render", "--preset", preset, "-o", tmp], env=env)
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        proj = f"bench{os.getpid()}"
        purge(s.name)
        t0 = time.monotonic()
        r = sh([compose, "-p", proj, "up", "-d"], cwd=tmp)
        returned = time.monotonic() - t0
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        wait_round_trip(topo.bootstrap_servers, len(topo.brokers), time.monotonic() + 300)
        ready = time.monotonic() - t0
        sh([compose, "-p", proj, "down", "-v"], cwd=tmp)
        purge(s.name)
    return {"returned": returned, "ready": ready}


def machine() -> str:
    """The machine a result was measured on, as its header says it."""
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    docker_v = sh(["docker", "version", "--format", "{{.Server.Version}}"]).stdout.strip()
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, {platform.platform()}, Docker {docker_v}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", action="append")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    presets = args.preset or ["zk-single-kafka-single", "zk-multiple-kafka-multiple", "kraft-multiple"]
    env = dict(os.environ, KOPS_STATE_DIR=tempfile.mkdtemp(prefix="kops-bench-"))
    rows = []
    for p in presets:
        ks, cs = [], []
        for _ in range(args.runs):
            ks.append(bench_kops(p, env))
            cs.append(bench_compose(p, env))
        med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
        rows.append((p, med(ks, "cold"), med(cs, "returned"), med(cs, "ready"), med(ks, "noop"),
                     med(ks, "down"), med(ks, "restart")))
    head = (f"\n### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {machine()}, median of {args.runs} runs\n\n"
            "| preset | kops up → ready (s) | compose up -d returns (s) | compose → ready (s) | "
            "ratio kops/compose-ready | kops no-op re-run (s) | kops down (s) | kops up after down (s) |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |\n")
    body = "".join(f"| {p} | {k:.1f} | {cr:.1f} | {c:.1f} | {k / c:.2f} | {n:.2f} | {d:.1f} | {w:.1f} |\n"
                   for p, k, cr, c, n, d, w in rows)
    print(head + body)
    with open(ROOT / "bench" / "RESULTS.md", "a") as fh:
        fh.write(head + body)


if __name__ == "__main__":
    main()
