"""Issue 24, `kops fault` and `kops status --watch` on a real cluster (Docker, fast profile,
ports of its own, a state folder in tmp; every container removed by label at the end).

One 3-broker cluster (ZooKeeper mode, Kafka 3.9.2; RF 3, min.insync.replicas 2; shorter
ZooKeeper session and replica lag so that Kafka notices a fault within seconds), a topic
under a continuous acks=all idempotent producer (load.Load), and three faults in turn:

* the broker leading partition 0 paused for ~15 s;
* one broker slowed (200 ms delay) with 5 % packet loss for ~20 s (a kernel without netem,
  as some CI VMs have: 5 % loss alone, nftables, and the test says so);
* one broker cut off from the others for ~20 s.

During each, `kops status --watch --until healthy --timeout 120` (no terminal: a line per
change) runs from the moment the fault is in place until the cluster is healthy again: it
shows the node going back from its fault and ends 0. Afterwards every acknowledged message
is read back (lost 0). The time each took to heal (from the heal to healthy) is printed as
FIGURES lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

import kopsrun
from kopsrun import KOPS, json_of, ok
from load import Load

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

NAME = f"fault-{uuid.uuid4().hex[:4]}"
TOPIC = "fault-load"
INVENTORY = f"""\
name: {NAME}
ports: auto
profile: fast
kafka:
  version: 3.9.2
  heap: 256m
  config:
    min.insync.replicas: 2
    default.replication.factor: 3
    offsets.topic.replication.factor: 3
    transaction.state.log.replication.factor: 3
    transaction.state.log.min.isr: 2
    zookeeper.session.timeout.ms: 8000
    replica.lag.time.max.ms: 8000
zookeeper: {{nodes: 1, heap: 128m}}
brokers: {{nodes: 3}}
"""
HEALED: dict[str, float] = {}


@pytest.fixture(scope="module")
def cluster(own_clusters_module, tmp_path_factory):
    own_clusters_module(NAME)
    tmp = tmp_path_factory.mktemp("faults")
    inv = tmp / f"{NAME}.yaml"
    inv.write_text(INVENTORY)
    env = {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1", "COLUMNS": "160"}
    ok(kopsrun.kops("up", "-i", inv, env=env, timeout=300))
    boot = json_of(kopsrun.kops("status", "--name", NAME, "--output", "json", env=env))["bootstrap_servers"]
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": boot, "log_level": 0})
    admin.create_topics([NewTopic(TOPIC, 3, 3)])[TOPIC].result(30)

    def led():
        md = admin.list_topics(TOPIC, timeout=10).topics[TOPIC]
        assert md.error is None and len(md.partitions) == 3 and all(p.leader > 0 for p in md.partitions.values())
        return True
    kopsrun.poll(led, timeout=60, what=f"a leader for every partition of {TOPIC}")
    yield {"env": env, "boot": boot, "admin": admin}
    kopsrun.kops("fault", "heal", "--name", NAME, env=env, timeout=120)
    print(f"\nFIGURES {json.dumps({'healed_seconds': HEALED})}")


def leader_of(c, partition: int) -> str:
    md = c["admin"].list_topics(TOPIC, timeout=10).topics[TOPIC]
    return f"kafka{md.partitions[partition].leader}"


def fault_under_load(c, node: str, args: list[str], seconds: int, what: str, fallback: list[str] | None = None):
    """``kops fault ARGS NODE --for SECONDS`` under the load; meanwhile `kops status --watch
    --until healthy --timeout 120`. Returns (the watch's output, the seconds from the heal to
    healthy); every acknowledged message read back."""
    env = c["env"]
    with Load(c["boot"], TOPIC, seconds=600) as load:
        load.flowing()
        t0 = time.monotonic()
        proc, first = _start_fault(env, args, node, seconds)
        if proc.poll() not in (None, 0) and fallback is not None:
            words = first + proc.stdout.read()
            assert "netem" in words, words
            print(f"\nNOTE {what}: {words.strip().splitlines()[0]}; falling back to {' '.join(fallback)}")
            what += " (no netem here: loss only)"
            proc, first = _start_fault(env, fallback, node, seconds)
        assert first.startswith(f"{node}: "), first + (proc.stdout.read() if proc.poll() is not None else "")
        rest, ended = [], []

        def finish():   # the time the command says it healed the node
            for line in proc.stdout:
                rest.append(line)
                if "healed after" in line:
                    ended.append(time.monotonic())
            proc.wait()
        in_place = time.monotonic()
        waiter = threading.Thread(target=finish, daemon=True)
        waiter.start()
        began = time.monotonic()
        watch = kopsrun.kops("status", "--name", NAME, "--watch", "--until", "healthy", "--timeout", "120",
                             "--interval", "1", env=env, timeout=200)
        healthy_at = time.monotonic()
        waiter.join(120)
        print(f"\n--- kops fault {' '.join(args)} {node}: in place {in_place - t0:.1f} s, the watch began "
              f"{began - t0:.1f} s, healed {ended[0] - t0 if ended else -1:.1f} s, healthy "
              f"{healthy_at - t0:.1f} s after the load began:\n{first}{''.join(rest)}")
        assert ended and proc.returncode == 0, f"{first}{''.join(rest)}"
        assert any("healed after" in line for line in rest), rest
    load.verify(c["boot"], what, time.monotonic() - t0)
    ok(watch, f"the watch during {what}")
    heal = healthy_at - ended[0]
    HEALED[what] = round(max(heal, 0.0), 1)
    print(f"\n--- kops status --watch during {what}:\n{watch.stdout}")
    print(f"FIGURES {json.dumps({'operation': what, 'fault_seconds': seconds, 'healed_in': HEALED[what]})}")
    return watch.stdout, heal


def _start_fault(env, args, node, seconds):
    proc = subprocess.Popen([KOPS, "fault", *args[:1], node, *args[1:], "--name", NAME, "--for", f"{seconds}s"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            stdin=subprocess.DEVNULL)
    first, said = "", []
    while not first.startswith(f"{node}: "):   # skip the progress lines
        first = proc.stdout.readline()
        said.append(first)
        if not first:   # it ended without putting the fault in place: what it said instead
            proc.wait(60)
            return proc, "".join(said)
    return proc, first


def _changes(out: str) -> list[str]:
    """The watch's lines without their time stamps."""
    return [line.split("  ", 1)[1] for line in out.splitlines() if "  " in line and line[2:3] == ":"]


def test_pause_the_leaders_broker(cluster):
    node = leader_of(cluster, 0)
    out, _ = fault_under_load(cluster, node, ["pause"], 15, f"pause of {node} (leader of {TOPIC}-0)")
    lines = _changes(out)
    assert lines[0].startswith(f"cluster {NAME} degraded"), out
    # the fault shown on its node, the node back from it (paused -> running), and the cluster with it
    assert any(line.startswith(f"{node}: paused, fault: paused since") for line in lines), out
    assert any(line.startswith(f"{node}: paused") and "-> running" in line for line in lines), out
    assert lines[-1] == f"cluster {NAME} is healthy: done", out


def test_slow_and_lossy_broker(cluster):
    node = leader_of(cluster, 1)
    out, _ = fault_under_load(cluster, node, ["slow", "--delay", "200ms", "--loss", "5%"], 20,
                              f"200 ms delay + 5 % loss on {node}", fallback=["lose", "--loss", "5%"])
    lines = _changes(out)
    assert any(line.startswith(f"{node}: running, fault: ") and "packet loss" in line and "-> running" in line
               for line in lines), out   # the fault shown on its node, and gone
    assert lines[-1] == f"cluster {NAME} is healthy: done", out


def test_partition_one_broker(cluster):
    node = leader_of(cluster, 2)
    out, _ = fault_under_load(cluster, node, ["partition"], 20, f"partition of {node}")
    lines = _changes(out)
    assert any(line.startswith(f"{node}: running, fault: cut off from the other nodes") and "-> running" in line
               for line in lines), out
    assert lines[-1] == f"cluster {NAME} is healthy: done", out
    # nothing of the fault is left: status healthy, no note kept
    st = json_of(kopsrun.kops("status", "--name", NAME, "--output", "json", env=cluster["env"]))
    assert st["state"] == "healthy" and not any("fault" in n for n in st["nodes"]), st
    assert not (Path(cluster["env"]["KOPS_STATE_DIR"]) / "clusters" / NAME / "faults.json").exists()
