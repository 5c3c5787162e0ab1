"""Issue 24 on a real cluster (Docker, fast profile, ports of its own, a state folder in tmp;
every container removed by label at the end): one 3-broker cluster (ZooKeeper mode, 3.9.2)
made unbalanced on purpose (topics created with explicit replica lists, broker 1 first
everywhere; one of them on brokers 1 and 2 only):

* `kops balance` reports the spread and a proposal, exit 0, and changes nothing;
* `kops up --dry-run` with ``brokers.rebalance: auto`` shows the balance step;
* `kops balance --execute` under an acks=all producer, interrupted once while it moves and
  run again (it finishes what the first began), evens leaders (each broker leads its share
  +-1) and replicas; nothing acknowledged is lost; the throttle is gone afterwards;
* `kops up` with ``brokers.rebalance: auto`` evens a new skew by itself, and the next `up`
  has nothing to change.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from kopsrun import KOPS, json_of, kops, ok, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

NAME = f"bal-{uuid.uuid4().hex[:4]}"
SAME = "bal-same"      # 6 partitions, replicas [1, 2, 3] each: leaders all on broker 1
PAIR = "bal-pair"      # 6 partitions, replicas [1, 2] each: broker 3 holds none, broker 1 leads all


def inventory(rebalance: str = "off") -> str:
    return f"""\
name: {NAME}
ports: auto
profile: fast
kafka:
  version: 3.9.2
  heap: 256m
  config:
    offsets.topic.replication.factor: 3
    transaction.state.log.replication.factor: 3
    transaction.state.log.min.isr: 2
    min.insync.replicas: 2
    auto.leader.rebalance.enable: false
zookeeper: {{nodes: 1, heap: 128m}}
brokers: {{nodes: 3, rebalance: {rebalance}}}
"""


def _env(tmp: Path) -> dict:
    return {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1", "COLUMNS": "160"}


def _layout(boot: str) -> tuple[dict, dict]:
    """(replicas, leader) of every partition of the cluster (kops's own topics aside)."""
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": boot, "log_level": 0}).list_topics(timeout=10)
    reps, lead = {}, {}
    for t in md.topics.values():
        if t.topic.startswith("__kops"):
            continue
        for p in t.partitions.values():
            reps[f"{t.topic}-{p.id}"] = list(p.replicas)
            lead[f"{t.topic}-{p.id}"] = p.leader
    return reps, lead


def _per_broker(boot: str) -> dict[int, tuple[int, int]]:
    reps, lead = _layout(boot)
    out = {b: [0, 0] for b in (1, 2, 3)}
    for r in reps.values():
        for b in r:
            out[b][1] += 1
    for b in lead.values():
        out[b][0] += 1
    return {b: tuple(v) for b, v in out.items()}


def test_balance_reports_then_evens_leaders_and_replicas_under_load(tmp_path, own_clusters):
    from confluent_kafka.admin import AdminClient, NewTopic
    from load import Load

    own_clusters(NAME)
    env = _env(tmp_path)
    inv = tmp_path / "bal.yaml"
    inv.write_text(inventory())
    try:
        t0 = time.monotonic()
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        print(f"3-broker cluster up in {time.monotonic() - t0:.0f} s")
        boot = json.loads(ok(kops("status", "-i", str(inv), "--output", "json", env=env)).stdout)[
            "bootstrap_servers"]
        admin = AdminClient({"bootstrap.servers": boot, "log_level": 0})
        futs = admin.create_topics([NewTopic(SAME, 6, replica_assignment=[[1, 2, 3]] * 6),
                                    NewTopic(PAIR, 6, replica_assignment=[[1, 2]] * 6)])
        for f in futs.values():
            f.result(30)
        poll(lambda: sum(1 for k, v in _layout(boot)[1].items() if k.startswith("bal-") and v == 1) == 12,
             timeout=60, what="broker 1 leading every partition")
        _fill(boot, PAIR, mib=24)   # bytes for the report, and a move slow enough to interrupt
        before = _layout(boot)
        print(f"topics: {sorted({k.rsplit('-', 1)[0] for k in before[0]})}")
        skew_before = _per_broker(boot)
        print(f"before: (leaders, replicas) per broker {skew_before}")

        # the report and the proposal: exit 0, nothing changed
        p = ok(kops("balance", "-i", str(inv), env=env))
        print(p.stdout)
        assert "dry run: nothing was changed" in p.stdout, p.stdout
        assert f"{PAIR}-0: [1, 2] -> " in p.stdout and "skew: " in p.stdout and "leaders spread" in p.stdout, \
            p.stdout
        rep = json_of(ok(kops("balance", "-i", str(inv), "--output", "json", env=env)))
        assert rep["balanced"] is False and rep["dry_run"] is True, rep
        assert rep["skew"]["leaders"]["max_min"] >= 12 and rep["skew"]["replicas"]["max_min"] >= 6, rep["skew"]
        assert rep["skew_after_proposal"]["leaders"]["max_min"] <= 1, rep
        assert rep["skew_after_proposal"]["replicas"]["max_min"] <= 1, rep
        assert rep["proposal"]["moves"] and rep["bytes_error"] is None, rep
        assert {r["broker"] for r in rep["per_broker"]} == {1, 2, 3}
        assert next(r for r in rep["per_broker"] if r["broker"] == 1)["bytes"] > 0, rep["per_broker"]
        assert _layout(boot) == before, "a dry run changed the cluster"

        # `up --dry-run` with brokers.rebalance: auto shows the balance step (and changes nothing)
        inv.write_text(inventory("auto"))
        d = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        assert "balance brokers [1, 2, 3] (brokers.rebalance: auto" in d.stdout, d.stdout
        assert _layout(boot) == before
        inv.write_text(inventory())

        # --execute under load, interrupted once while it moves, then run again
        with Load(boot, PAIR) as load:
            load.flowing()
            t1 = time.monotonic()
            log = tmp_path / "first.err"
            with open(log, "w") as err:
                first = subprocess.Popen([KOPS, "balance", "-i", str(inv), "--execute", "--throttle", "1"],
                                         env=env, stdout=subprocess.DEVNULL, stderr=err,
                                         stdin=subprocess.DEVNULL)
                try:   # killed once Kafka is moving data (a partition of PAIR with 3 replicas)
                    poll(lambda: any(len(r) > 2 for k, r in _layout(boot)[0].items() if k.startswith(PAIR))
                         or first.poll() is not None, timeout=300, interval=0.2, what="the first run to move")
                finally:
                    if first.poll() is None:
                        os.kill(first.pid, signal.SIGKILL)
                    first.wait(30)
            killed_at = time.monotonic() - t1
            print(f"first run killed after {killed_at:.1f} s (exit {first.returncode}): {log.read_text()[-600:]}")
            assert first.returncode == -signal.SIGKILL, log.read_text()
            assert _throttles(boot), "the first run was killed before it set the throttle"
            again = ok(kops("balance", "-i", str(inv), "--execute", env=env))
            took = time.monotonic() - t1
        res = load.verify(boot, "kops balance --execute (interrupted once, run again)", took)
        print(again.stderr[-1500:])
        print(again.stdout)
        assert "balance done" in again.stderr, again.stderr
        # what the killed run left: its move awaited (or already finished), its elections made
        assert "still moving from an earlier reassignment" in again.stderr or \
            "electing the preferred leader" in again.stderr, again.stderr
        assert "removing a replication throttle left behind" in again.stderr, again.stderr

        after = _per_broker(boot)
        leaders = {b: v[0] for b, v in after.items()}
        replicas = {b: v[1] for b, v in after.items()}
        share = sum(leaders.values()) / 3
        print(f"after: (leaders, replicas) per broker {after}; load {res}; balance took {took:.1f} s")
        assert all(abs(n - share) <= 1 for n in leaders.values()), leaders
        assert max(replicas.values()) - min(replicas.values()) <= 1, replicas
        final = json_of(ok(kops("balance", "-i", str(inv), "--output", "json", env=env)))
        print(f"skew before {skew_before} -> after {final['skew']}")
        assert final["balanced"] is True, final
        assert final["skew"]["leaders"]["max_min"] <= 1 and final["skew"]["replicas"]["max_min"] <= 1, final
        left = _throttles(boot)
        assert not left, left
        assert res["lost"] == 0

        # `kops up` with brokers.rebalance: auto evens a new skew by itself (the same step)
        admin.create_topics([NewTopic("bal-late", 6, replica_assignment=[[1, 2, 3]] * 6)])["bal-late"].result(30)
        poll(lambda: sum(1 for k, v in _layout(boot)[1].items() if k.startswith("bal-late") and v == 1) == 6,
             timeout=60, what="broker 1 leading bal-late")
        print(f"before up (auto): {_per_broker(boot)}")
        inv.write_text(inventory("auto"))
        u = ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        print(u.stderr[-800:])
        assert "balance done" in u.stderr, u.stderr
        leaders = {b: v[0] for b, v in _per_broker(boot).items()}
        print(f"after up (auto): {_per_broker(boot)} in {u.seconds:.1f} s")
        assert max(leaders.values()) - min(leaders.values()) <= 1, leaders
        assert "nothing to change" in ok(kops("up", "-i", str(inv), env=env)).stderr
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)


def _fill(boot: str, topic: str, *, mib: int) -> None:
    from confluent_kafka import Producer

    prod = Producer({"bootstrap.servers": boot, "acks": "all", "linger.ms": 20, "log_level": 0})
    value = os.urandom(10240)
    for i in range(mib * 100):
        while True:
            try:
                prod.produce(topic, key=f"fill-{i}".encode(), value=value, partition=i % 6)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
    assert prod.flush(120) == 0


def _throttles(boot: str) -> list[str]:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient({"bootstrap.servers": boot, "log_level": 0})
    out = []
    res = [[ConfigResource("BROKER", str(b))] for b in (1, 2, 3)] + [[ConfigResource("TOPIC", SAME),
                                                                        ConfigResource("TOPIC", PAIR)]]
    for batch in res:
        for r, fut in admin.describe_configs(batch).items():
            for k, e in fut.result(30).items():
                if "throttled" in k and e.value and not e.is_default:
                    out.append(f"{r.name}: {k}={e.value}")
    return out
