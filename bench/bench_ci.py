"""Benchmarks of Kafka in CI: kops against the bare JVM, the fast profile, memory, status, SSH scale.

1. The limit: the same Kafka processes started straight on this machine with the same
   rendered configs (``java -cp <dist>/libs/* kafka.Kafka``; KRaft: the storage format JVM
   first), no container, no class data sharing archive: time to the same produce/consume
   round trip. Against it, in the same run and alternating: ``kops up`` (standard profile;
   the image's archives) and ``kops up --preset dev`` (the fast profile).
2. Memory: the resident set (VmRSS) of every node's JVM of a 1+1, a 3+3 and the dev cluster.
3. ``kops status`` on 3+3 (the median of 5).
4. SSH: 3 and 9 test hosts (systemd + sshd containers), ZooKeeper mode, one broker a host:
   deploy from nothing and a no-op re-run; the part before the readiness wait (pyinfra's
   preparing and placing, from `up --output json`'s timeline) is shown apart, since 9 broker
   JVMs starting on 2 cores is CPU, not parallelism.

Usage: .venv/bin/python bench/bench_ci.py [--runs N] [--skip-ssh] [--only bare|memory|status|ssh]
Writes Markdown to stdout and appends it to bench/RESULTS.md with the machine. Every
cluster has a name and ports of its own; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KOPS = str(Path(sys.executable).parent / "kops")
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "e2e")]

from kops.artifacts import dist
from kops.kafka import health
from kops.model import inventory, topology
from kops.bundle import render  # noqa: E402
from kops.model.spec import ClusterSpec  # noqa: E402

from bench_up import machine, wait_round_trip  # noqa: E402

ENV = dict(os.environ, KOPS_STATE_DIR=tempfile.mkdtemp(prefix="kops-bench-ci-"), NO_COLOR="1")


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=kw.pop("env", ENV), **kw)


def kops(*args, check=True) -> subprocess.CompletedProcess:
    p = sh([KOPS, *args])
    if check and p.returncode != 0:
        raise SystemExit(f"kops {' '.join(args)} exited {p.returncode}:\n{p.stderr[-3000:]}")
    return p


# -- 1. the bare JVM --------------------------------------------------------------------------

SHIFT = 30000   # the bare processes' ports: the preset's + 30000, clear of any cluster's


def _shifted(preset: str) -> ClusterSpec:
    spec = inventory.load(preset=preset)
    data = spec.model_dump(exclude_none=True)
    b = data["brokers"]
    for key in ("internal_port", "external_port", "docker_port", "controller_port"):
        b[key] += SHIFT
    if spec.mode == "zookeeper":
        data.setdefault("zookeeper", {})["client_port"] = spec.zk.client_port + SHIFT
    data["name"] = f"bare-{preset}"[:32]
    return ClusterSpec.model_validate(data)


def bare_start(preset: str) -> float:
    """Seconds from nothing to a round trip, with Kafka's own JVMs on this machine."""
    spec = _shifted(preset)
    topo = topology.build(spec, topology.new_cluster_id())
    bundle = render.build(topo)
    home = str(dist.require(spec.kafka.version).path)
    hosts = {n.hostname for n in topo.nodes} | {"host.docker.internal"}
    work = Path(tempfile.mkdtemp(prefix="kops-bare-"))

    def local(nb, text: str) -> str:
        """The node's paths under the work folder (the container's are absolute)."""
        base = work / nb.name
        for a, b in (("/opt/kafka", home), ("/etc/kafka", f"{base}/conf"), ("/var/lib/kafka/data", f"{base}/data"),
                     ("/var/lib/zookeeper", f"{base}/data"), ("/var/log/kafka", f"{base}/log")):
            text = text.replace(a, b)
        return text

    def loopback(text: str) -> str:
        """Peers' container names -> this machine."""
        return re.sub(r"\b(" + "|".join(map(re.escape, sorted(hosts))) + r")\b", "127.0.0.1", text)

    def argv(nb, words: list[str]) -> list[str]:
        words = [local(nb, w) for w in words if not w.startswith("-XX:SharedArchiveFile")]
        return ["/usr/bin/java" if w == "java" else w for w in words]

    for nb in bundle:
        for sub in ("conf", "data", "log"):
            (work / nb.name / sub).mkdir(parents=True, exist_ok=True)
        for path, text in nb.files.items():
            dest = Path(local(nb, path))
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(local(nb, loopback(text)))
    procs = []
    t0 = time.monotonic()
    try:
        for nb in bundle:
            for pre in nb.prestart:
                subprocess.run(argv(nb, pre), check=True)
        fmts = [subprocess.Popen(argv(nb, nb.format_argv), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                for nb in bundle if nb.format_argv]
        if any(p.wait() != 0 for p in fmts):
            raise SystemExit("bare: storage format failed")
        for nb in bundle:
            with open(work / nb.name / "log" / "stdout", "w") as out:
                procs.append(subprocess.Popen(argv(nb, nb.argv), stdout=out, stderr=subprocess.STDOUT))
        wait_round_trip(topo.bootstrap_servers, len(topo.brokers), time.monotonic() + 300)
        return time.monotonic() - t0
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


def kops_start(preset: str) -> tuple[float, list[dict]]:
    name = f"bench-{preset}"[:28].rstrip("-")
    kops("down", "--purge", "--name", name, check=False)
    t0 = time.monotonic()
    p = kops("up", "--preset", preset, "--any-port", "--name", name, "--output", "json")
    took = time.monotonic() - t0
    timeline = json.loads(p.stdout).get("timeline", [])
    kops("down", "--purge", "--name", name)
    return took, timeline


def bench_bare(runs: int) -> str:
    rows, timelines = [], {}
    for preset in ("kraft-single", "zk-single-kafka-single"):
        bare, std, fast = [], [], []
        for _ in range(runs):
            bare.append(bare_start(preset))
            t, timelines[preset] = kops_start(preset)
            std.append(t)
            if preset == "kraft-single":
                t, timelines["dev"] = kops_start("dev")
                fast.append(t)
        b, s = statistics.median(bare), statistics.median(std)
        rows.append(f"| {preset} | {b:.2f} | {s:.2f} | {s / b:.2f} | "
                    + (f"{statistics.median(fast):.2f} | {statistics.median(fast) / b:.2f} |" if fast else "– | – |"))
    out = ("| preset | bare JVMs → round trip (s) | kops up (s) | ratio kops/bare | kops up --preset dev "
           "(fast profile) (s) | ratio dev/bare |\n| --- | --- | --- | --- | --- | --- |\n" + "\n".join(rows) + "\n")
    for preset, tl in timelines.items():
        out += f"\nTimeline of the last `kops up` of {preset}: " + "; ".join(
            f"{t['step'].split(':')[0]} {t['seconds']:.2f} s" for t in tl) + "\n"
    return out


# -- 2. memory, 3. status ------------------------------------------------------------------------

def rss_mib(container) -> float:
    res = container.exec_run(["sh", "-c", "grep VmRSS /proc/1/status"])
    return int(res.output.split()[1]) / 1024


def bench_memory_and_status() -> str:
    import docker

    client = docker.from_env()
    lines = ["| cluster | nodes | RSS per node (MiB) | total (MiB) |", "| --- | --- | --- | --- |"]
    status_line = ""
    for preset in ("zk-single-kafka-single", "dev", "zk-multiple-kafka-multiple"):
        name = f"bm-{preset}"[:28].rstrip("-")
        kops("down", "--purge", "--name", name, check=False)
        kops("up", "--preset", preset, "--any-port", "--name", name)
        found = sorted(client.containers.list(filters={"label": f"io.kops.cluster={name}"}),
                       key=lambda c: c.labels.get("io.kops.node", ""))
        per = {c.labels["io.kops.node"]: rss_mib(c) for c in found}
        lines.append(f"| {preset} | {len(per)} | " + ", ".join(f"{n} {v:.0f}" for n, v in per.items())
                     + f" | {sum(per.values()):.0f} |")
        if preset == "zk-multiple-kafka-multiple":
            times = []
            for _ in range(5):
                t0 = time.monotonic()
                kops("status", "--name", name, "--output", "json")
                times.append(time.monotonic() - t0)
            status_line = (f"\n`kops status` of a running 3+3 cluster: median {statistics.median(times):.2f} s "
                           f"(min {min(times):.2f}, max {max(times):.2f}, 5 runs)\n")
        kops("down", "--purge", "--name", name)
    return "\n".join(lines) + "\n" + status_line


# -- 4. SSH scale -----------------------------------------------------------------------------------

def bench_ssh() -> str:
    import docker
    import testhosts

    client = docker.from_env()
    rows = []
    for count in (3, 9):
        group = f"bench{count}"
        tmp = Path(tempfile.mkdtemp(prefix="kops-bench-ssh-"))
        key = testhosts.make_key(tmp)
        try:
            hosts = testhosts.start_hosts(client, group, [f"vm{i}" for i in range(1, count + 1)], key)
            text = testhosts.inventory(f"bench-ssh{count}", hosts, key, mode="zookeeper", version="3.9.2",
                                       roles=["broker"])
            text = text.replace("  heap: 384m", "  heap: 256m").replace(
                "roles: [broker]}", "roles: [zookeeper, broker]}", 1)
            inv = tmp / "inv.yaml"
            inv.write_text(text)
            t0 = time.monotonic()
            p = kops("up", "-i", str(inv), "--output", "json", "--timeout", "900")
            cold = time.monotonic() - t0
            tl = json.loads(p.stdout).get("timeline", [])
            before_wait = next((t["at"] for t in tl if t["step"].startswith("wait")), cold)
            t0 = time.monotonic()
            kops("up", "-i", str(inv))
            noop = time.monotonic() - t0
            rows.append((count, cold, before_wait, noop))
            kops("down", "-i", str(inv), "--purge")
        finally:
            testhosts.cleanup(client, group)
            shutil.rmtree(tmp, ignore_errors=True)
    out = ["| hosts | deploy from nothing → ready (s) | of which before the readiness wait (s) | no-op re-run (s) |",
           "| --- | --- | --- | --- |"]
    out += [f"| {c} | {a:.1f} | {b:.1f} | {n:.1f} |" for c, a, b, n in rows]
    (_, a3, b3, n3), (_, a9, b9, n9) = rows
    out.append(f"\n9 hosts against 3: deploy {a9 / a3:.2f}x, before the wait {b9 / b3:.2f}x, no-op {n9 / n3:.2f}x\n")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--skip-ssh", action="store_true")
    ap.add_argument("--only", choices=["bare", "memory", "status", "ssh"], action="append")
    args = ap.parse_args()
    only = set(args.only or ["bare", "memory", "ssh"])
    parts = [f"\n### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: Kafka in CI, {machine()}, "
             f"median of {args.runs} runs where repeated\n"]
    sections = []
    if "bare" in only:
        sections.append(lambda: bench_bare(args.runs))
    if only & {"memory", "status"}:
        sections.append(bench_memory_and_status)
    if "ssh" in only and not args.skip_ssh:
        sections.append(bench_ssh)
    print(parts[0], flush=True)
    try:
        for run in sections:
            parts.append(run())
            print(parts[-1], flush=True)
    finally:   # what was measured is kept, even when a later section fails
        if len(parts) > 1:
            with open(ROOT / "bench" / "RESULTS.md", "a") as fh:
                fh.write("\n".join(parts))


if __name__ == "__main__":
    main()
