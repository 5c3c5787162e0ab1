"""The SSH driver end to end: three VM-like hosts (systemd as PID 1, sshd, reached over real
SSH with a key made here), kops driven through its real CLI, and the result checked the way
an operator would: a Kafka client on this machine talking to the hosts' addresses, and
``docker exec`` into the hosts for systemd and file facts.

The tests of this module run in order on the same hosts and build on each other (a
ZooKeeper-mode cluster is brought up, re-run, changed, stopped, started and purged; then a
KRaft cluster; then the failure cases). Run it with ``-x``. Needs a Docker engine and the
offline base image: `make test` provides both. Nothing is skipped: a missing piece fails
with the hint.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import testhosts

import kopsrun
from kopsrun import ok, poll

sys.path.insert(0, str(Path(__file__).parent.parent / "integration"))
from load import Load  # noqa: E402

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

SETUP_HINT = "run `make test` (or scripts/setup.sh): it starts a Docker engine and builds the base image"
GROUP = "e2e"                       # unique per module: its containers and network carry it
NAMES = ["vm1", "vm2", "vm3"]
ZK, KR, BAD, DOWN, JAVA = "e2ezk", "e2ekr", "e2ebad", "e2edown", "e2ejava"
UP_TIMEOUT = "300"

TIMINGS: dict[str, float] = {}


# -- the hosts --------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def _purge_after_failure(request, lab):
    """A failed test must not leave its cluster on the hosts for the next ones to trip over.
    The ZooKeeper-mode cluster is shared by the test_zk_* tests on purpose: left alone."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        for name, inv in list(lab.inventories.items()):
            if name != ZK or request.node.name == "test_zk_purge":
                kops(lab, "down", "-i", inv, "--purge")


class Lab:
    def __init__(self, client, hosts, key: Path, tmp: Path):
        self.client, self.hosts, self.key, self.tmp = client, hosts, key, tmp
        self.state = tmp / "state"
        self.env = {**os.environ, "KOPS_STATE_DIR": str(self.state), "NO_COLOR": "1", "COLUMNS": "200"}
        self.inventories: dict[str, Path] = {}

    def host(self, name: str):
        return next(h for h in self.hosts if h.name == name)

    def inventory(self, name: str, text: str) -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(text)
        self.inventories[name] = path
        return path


@pytest.fixture(scope="module")
def lab(docker_client, tmp_path_factory, request):
    import docker

    try:
        docker_client.images.get(testhosts.BASE_IMAGE)
    except docker.errors.ImageNotFound:
        pytest.fail(f"the base image {testhosts.BASE_IMAGE} is missing; {SETUP_HINT}", pytrace=False)
    tmp = tmp_path_factory.mktemp("ssh-e2e")
    key = testhosts.make_key(tmp)
    testhosts.cleanup(docker_client, GROUP)          # leftovers of an interrupted run
    try:
        t0 = time.monotonic()
        hosts = testhosts.start_hosts(docker_client, GROUP, NAMES, key)
        TIMINGS["start 3 test hosts"] = time.monotonic() - t0
        yield Lab(docker_client, hosts, key, tmp)
    finally:
        testhosts.cleanup(docker_client, GROUP)
        _report_timings(request.config)


def _report_timings(config) -> None:
    """Print the timings on the terminal (also under -q, past output capturing)."""
    tr = config.pluginmanager.get_plugin("terminalreporter")
    cap = config.pluginmanager.get_plugin("capturemanager")
    if tr is None or not TIMINGS:
        return
    line = "ssh e2e timings: " + "; ".join(f"{k} {v:.1f} s" for k, v in TIMINGS.items())
    if cap is not None:
        with cap.global_and_fixture_disabled():
            tr.write_line("")
            tr.write_line(line)
    else:
        tr.write_line(line)


# -- helpers ------------------------------------------------------------------------------------

def kops(lab: Lab, *args, timeout: float = 420) -> subprocess.CompletedProcess:
    return kopsrun.kops(*args, env=lab.env, timeout=timeout)


def sh(host, cmd: str) -> tuple[int, str]:
    res = host.container.exec_run(["sh", "-c", cmd])
    return res.exit_code, res.output.decode(errors="replace")


def zk_inventory(lab: Lab, extra: str = "") -> Path:
    return lab.inventory(ZK, testhosts.inventory(ZK, lab.hosts, lab.key, mode="zookeeper", version="3.9.2",
                                                 roles=["zookeeper", "broker"], extra=extra))


def bootstrap(hosts) -> str:
    return ",".join(f"{h.address}:9092" for h in hosts)


def status_json(lab: Lab, inv: Path) -> dict:
    proc = kops(lab, "status", "-i", inv, "--output", "json", timeout=120)
    try:
        st = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"status printed no JSON (exit {proc.returncode})\n{proc.stdout}\n{proc.stderr}")
    st["_exit"] = proc.returncode
    return st


def assert_healthy(lab: Lab, inv: Path, brokers: int = 3) -> dict:
    st = status_json(lab, inv)
    assert st["state"] == "healthy" and st["_exit"] == 0, json.dumps(st, indent=1)
    assert not st["problems"], st["problems"]
    assert len(st["kafka"]["brokers"]) == brokers, st["kafka"]
    return st


def unit_stamps(lab: Lab, cluster: str) -> dict[str, str]:
    """unit@host -> ActiveEnterTimestampMonotonic, for every kops unit of the cluster."""
    out = {}
    for h in lab.hosts:
        code, text = sh(h, f"for f in /etc/systemd/system/kops-{cluster}-*.service; do [ -f $f ] || continue; "
                           'u=$(basename $f); echo "$u $(systemctl show -p ActiveEnterTimestampMonotonic '
                           '--value $u)"; done')
        assert code == 0, text
        for line in text.splitlines():
            unit, stamp = line.split()
            out[f"{unit}@{h.name}"] = stamp
    return out


def conf_sums(lab: Lab, cluster: str) -> dict[str, str]:
    out = {}
    for h in lab.hosts:
        code, text = sh(h, f"sha256sum /etc/kops/{cluster}/*/*")
        assert code == 0, text
        out[h.name] = text
    return out


def unit_states(lab: Lab, cluster: str) -> dict[str, str]:
    out = {}
    for h in lab.hosts:
        _, text = sh(h, f"for f in /etc/systemd/system/kops-{cluster}-*.service; do u=$(basename $f); "
                        'echo "$u $(systemctl is-active $u)"; done')
        for line in text.splitlines():
            unit, state = line.split()
            out[f"{unit}@{h.name}"] = state
    return out


# -- a real Kafka client --------------------------------------------------------------------------

def _conf(bs: str) -> dict:
    return {"bootstrap.servers": bs, "socket.timeout.ms": 10000}


def create_topic(bs: str, topic: str, rf: int = 3, partitions: int = 1) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(_conf(bs))
    fut = admin.create_topics([NewTopic(topic, partitions, rf)], operation_timeout=30)
    fut[topic].result(timeout=40)

    def led():   # metadata reaches every broker a moment later
        md = admin.list_topics(topic, timeout=10).topics[topic]
        return md.error is None and len(md.partitions) == partitions and all(
            p.leader >= 0 for p in md.partitions.values())
    poll(led, timeout=30, what=f"a leader for every partition of topic {topic} after its creation")


def produce(bs: str, topic: str, values: list[bytes]) -> None:
    from confluent_kafka import Producer

    errors, acked = [], []
    prod = Producer({**_conf(bs), "acks": "all", "enable.idempotence": True, "message.timeout.ms": 60000})
    for v in values:
        prod.produce(topic, v, on_delivery=lambda err, msg: errors.append(err) if err else acked.append(msg))
        prod.poll(0)
    left = prod.flush(90)
    assert left == 0 and not errors, f"{left} message(s) not delivered; errors: {errors[:3]}"
    assert len(acked) == len(values)


def consume(bs: str, topic: str, count: int, timeout: float = 60) -> list[bytes]:
    from confluent_kafka import Consumer

    cons = Consumer({**_conf(bs), "group.id": f"e2e-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                     "enable.auto.commit": False})
    got: list[bytes] = []
    try:
        cons.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = cons.poll(1.0)
            if msg is None or msg.error():
                continue
            got.append(msg.value())
    finally:
        cons.close()
    return got


def round_trip(bs: str, rf: int) -> None:
    topic = f"e2e-rt-{uuid.uuid4().hex[:6]}"
    create_topic(bs, topic, rf)
    values = [f"m{i}".encode() for i in range(20)]
    produce(bs, topic, values)
    assert consume(bs, topic, len(values)) == values


def isrs(bs: str, topic: str) -> list[int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient(_conf(bs)).list_topics(topic, timeout=10)
    return sorted(md.topics[topic].partitions[0].isrs)


# -- 1..5: ZooKeeper mode, three hosts with a ZooKeeper and a broker each ----------------------------

def test_zk_up_from_nothing(lab):
    inv = zk_inventory(lab)
    t0 = time.monotonic()
    proc = ok(kops(lab, "up", "-i", inv, "--timeout", UP_TIMEOUT))
    TIMINGS["3-host ZK deploy from nothing to ready"] = time.monotonic() - t0
    assert f"cluster {ZK} ready" in proc.stdout

    st = assert_healthy(lab, inv)
    assert sorted(st["kafka"]["brokers"]) == ["1", "2", "3"]
    modes = sorted(n["health"] for n in st["nodes"] if n["role"] == "zookeeper")
    assert modes == ["follower", "follower", "leader"], st["nodes"]
    assert {n["where"] for n in st["nodes"]} == set(NAMES)

    bs = bootstrap(lab.hosts)
    topic = "e2e-rf3"
    create_topic(bs, topic, rf=3)
    values = [f"hello {i}".encode() for i in range(50)]
    produce(bs, topic, values)
    assert consume(bs, topic, len(values)) == values
    assert isrs(bs, topic) == [1, 2, 3]

    # the units are systemd's, enabled, running as the kafka user
    for h in lab.hosts:
        i = h.name[-1]
        code, text = sh(h, f"systemctl is-enabled kops-{ZK}-zoo{i}.service kops-{ZK}-kafka{i}.service; "
                           f"ps -o user= -C java | sort -u")
        assert code == 0 and text.split() == ["enabled", "enabled", "kafka"], text


def test_zk_second_up_changes_nothing(lab):
    inv = lab.inventories[ZK]
    stamps, sums = unit_stamps(lab, ZK), conf_sums(lab, ZK)
    assert len(stamps) == 6 and all(v not in ("", "0") for v in stamps.values()), stamps

    t0 = time.monotonic()
    proc = ok(kops(lab, "up", "-i", inv))
    TIMINGS["no-op re-run"] = time.monotonic() - t0
    assert "nothing to change" in proc.stderr, proc.stderr
    assert "already up to date" in proc.stdout

    proc = ok(kops(lab, "up", "-i", inv, "--output", "json"))
    res = json.loads(proc.stdout)
    assert res["changed"] is False
    assert {a["action"] for a in res["actions"]} == {"unchanged"}, res["actions"]
    assert res["status"]["state"] == "healthy"

    assert unit_stamps(lab, ZK) == stamps
    assert conf_sums(lab, ZK) == sums


def test_zk_config_change_restarts_one_broker(lab):
    inv = zk_inventory(lab, extra="nodes:\n  kafka2: {config: {log.retention.hours: 100}}\n")
    vm2 = lab.host("vm2")
    props = f"/etc/kops/{ZK}/kafka2/server.properties"
    stamps = unit_stamps(lab, ZK)
    _, before = sh(vm2, f"sha256sum {props}")

    proc = ok(kops(lab, "up", "-i", inv, "--dry-run"))
    table = proc.stdout.split("\n\n")[0]
    plan = dict(line.split(None, 2)[:2] for line in table.splitlines() if line.strip())
    assert plan == {"zoo1": "unchanged", "zoo2": "unchanged", "zoo3": "unchanged", "kafka1": "unchanged",
                    "kafka2": "reconfigure", "kafka3": "unchanged"}, proc.stdout
    steps = [ln.strip() for ln in proc.stdout.splitlines() if re.match(r"\s+\d+\. ", ln)]
    assert steps[0] == "1. wait for no partition to depend on this node for min.insync.replicas (kafka2)", steps
    assert steps[1] == ("2. reconfigure kafka2 on vm2: rendered server.properties (log.retention.hours 168 -> 100) "
                        "changed; data kept"), steps   # the keys that change, read from the host
    assert len(steps) == 3 and steps[2].startswith("3. wait for Kafka to be ready"), steps
    assert "nothing was changed" in proc.stderr
    assert sh(vm2, f"sha256sum {props}")[1] == before
    assert unit_stamps(lab, ZK) == stamps

    proc = ok(kops(lab, "up", "-i", inv, "--timeout", UP_TIMEOUT))
    assert "kafka2: restarted on vm2 (files changed: server.properties)" in proc.stderr, proc.stderr
    after = unit_stamps(lab, ZK)
    changed = {k for k in after if after[k] != stamps[k]}
    assert changed == {f"kops-{ZK}-kafka2.service@vm2"}, (stamps, after)
    assert sh(vm2, f"grep -x log.retention.hours=100 {props}")[0] == 0
    assert_healthy(lab, inv)
    assert isrs(bootstrap(lab.hosts), "e2e-rf3") == [1, 2, 3]


def test_zk_down_up_keeps_messages(lab):
    inv = lab.inventories[ZK]
    bs = bootstrap(lab.hosts)
    topic = "e2e-keep"
    create_topic(bs, topic, rf=3, partitions=3)
    values = [f"keep {i:03d}".encode() for i in range(500)]
    produce(bs, topic, values)

    proc = ok(kops(lab, "down", "-i", inv))
    assert proc.stdout.strip() == f"cluster {ZK} stopped: kafka1 kafka2 kafka3 zoo1 zoo2 zoo3; data kept", proc.stdout
    states = unit_states(lab, ZK)
    assert len(states) == 6 and set(states.values()) == {"inactive"}, states
    for h in lab.hosts:
        i = h.name[-1]
        code, text = sh(h, f"ls -d /var/lib/kops/{ZK}/kafka{i}/data/{topic}-0 /var/lib/kops/{ZK}/zoo{i}/version-2 "
                           f"/etc/kops/{ZK}/kafka{i}/server.properties")
        assert code == 0, text
    st = status_json(lab, inv)
    assert st["state"] == "stopped" and st["_exit"] == 3, st

    t0 = time.monotonic()
    proc = ok(kops(lab, "up", "-i", inv, "--timeout", UP_TIMEOUT))
    TIMINGS["3-host ZK start after down"] = time.monotonic() - t0
    assert set(unit_states(lab, ZK).values()) == {"active"}
    got = consume(bs, topic, len(values), timeout=90)
    assert sorted(got) == values, f"{len(got)} of {len(values)} messages back"


def unit_starts(lab: Lab, cluster: str, since: dict[str, int]) -> dict[str, int]:
    """unit@host -> how many times systemd started the unit since ``since[host]`` (the host's
    epoch seconds), from the journal's "Started UNIT" lines."""
    out = {}
    for h in lab.hosts:
        code, text = sh(h, f"for f in /etc/systemd/system/kops-{cluster}-*.service; do [ -f $f ] || continue; "
                           f'u=$(basename $f); echo "$u $(journalctl -q -o cat -u $u --since @{since[h.name]} '
                           '| grep -c "^Started ")"; done')
        assert code == 0, text
        for line in text.splitlines():
            unit, count = line.split()
            out[f"{unit}@{h.name}"] = int(count)
    return out


def host_clocks(lab: Lab) -> dict[str, int]:
    return {h.name: int(sh(h, "date +%s")[1].strip()) for h in lab.hosts}


@pytest.mark.regression(reason="kops restart -i INV of a healthy 3-host SSH cluster ended in "
                               "`unexpected NoHostError: 'No such host: None'`: restart actions had no host")
def test_zk_whole_cluster_restart_under_load(lab):
    """A rolling restart of the whole cluster (no --node) over SSH, under a continuous acks=all
    idempotent producer: every broker's unit is restarted exactly once, ZooKeeper's not at
    all (a default restart leaves it alone), the cluster is healthy after, and every message
    Kafka acknowledged meanwhile is read back."""
    inv = lab.inventories[ZK]
    bs = bootstrap(lab.hosts)
    assert_healthy(lab, inv)
    topic = "e2e-restart-load"
    create_topic(bs, topic, rf=3, partitions=3)
    stamps = unit_stamps(lab, ZK)
    since = host_clocks(lab)
    time.sleep(1.1)                      # the journal's --since has whole seconds: nothing older counts
    with Load(bs, topic) as load:
        load.flowing()
        t0 = time.monotonic()
        proc = kops(lab, "restart", "-i", inv, "--timeout", UP_TIMEOUT)
        seconds = time.monotonic() - t0
        TIMINGS["3-host ZK rolling restart under load"] = seconds
        load.flowing(len(load.acked) + 50)   # still flowing after the last broker came back
    ok(proc)
    assert "NoHostError" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(["kafka1", "kafka2", "kafka3"] + ["restarted"] * 3), proc.stdout

    after = unit_stamps(lab, ZK)
    kafka_units = {k for k in stamps if "-kafka" in k}
    zoo_units = {k for k in stamps if "-zoo" in k}
    assert len(kafka_units) == 3 and len(zoo_units) == 3, stamps
    assert {k for k in after if after[k] != stamps[k]} == kafka_units, (stamps, after)
    starts = unit_starts(lab, ZK, since)
    assert starts == {**{k: 1 for k in kafka_units}, **{k: 0 for k in zoo_units}}, starts

    assert_healthy(lab, inv)
    assert isrs(bs, "e2e-rf3") == [1, 2, 3]
    figures = load.verify(bs, "kops restart (3-host ZooKeeper-mode cluster over SSH)", seconds)
    print(f"whole-cluster restart under load: {figures['seconds']} s, produced {figures['produced']}, "
          f"acked {figures['acknowledged']}, lost {figures['lost']}, duplicates {figures['duplicates']}, "
          f"delivery errors {figures['errors']}")


def test_zk_upgrade_preflight_runs_over_ssh(lab):
    """The SSH observation carries the version and mode the Kafka nodes run (read on the hosts),
    so `kops up` of an inventory with another kafka.version runs the upgrade preflight over
    SSH too: a ZooKeeper-mode cluster cannot go to Kafka 4 (exit 2, "migrate first"), and
    nothing is restarted or rewritten."""
    inv = lab.inventories[ZK]
    st = assert_healthy(lab, inv)
    assert (st["mode"], st["kafka_version"]) == ("zookeeper", "3.9.2"), {k: st[k] for k in ("mode", "kafka_version")}
    stamps, sums = unit_stamps(lab, ZK), conf_sums(lab, ZK)
    state_dir = lab.state / "clusters" / ZK
    state_before = {p.name: p.read_bytes() for p in state_dir.iterdir() if p.is_file()} if state_dir.exists() else {}

    # 1. the version alone changed: a ZooKeeper-mode inventory at 4.4.0 is refused by its own checks
    v4 = lab.tmp / f"{ZK}-4.4.0.yaml"       # not lab.inventory(): the lab's inventory stays as it is
    v4.write_text(inv.read_text().replace("  version: 3.9.2", "  version: 4.4.0"))
    assert "version: 4.4.0" in v4.read_text() and "mode: zookeeper" in v4.read_text()
    proc = kops(lab, "up", "-i", v4, "--timeout", UP_TIMEOUT)
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "zookeeper needs Kafka below 4.0" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr

    # 2. the inventory made KRaft-shaped, as that message suggests: only the cluster knows it runs
    # in ZooKeeper mode, and the preflight (with the mode read on the hosts) refuses
    kr4 = lab.tmp / f"{ZK}-4.4.0-kraft.yaml"
    kr4.write_text(testhosts.inventory(ZK, lab.hosts, lab.key, mode="kraft", version="4.4.0", roles=["broker"]))
    for args in (["--dry-run"], ["--timeout", UP_TIMEOUT]):
        proc = kops(lab, "up", "-i", kr4, *args)
        assert proc.returncode == 2, (args, proc.returncode, proc.stdout, proc.stderr)
        err = re.sub(r"\s+", " ", proc.stderr)
        assert f"cluster {ZK} runs Kafka 3.9.2; the inventory says 4.4.0: upgrade preflight" in err, proc.stderr
        assert "preflight 3.9.2 -> 4.4.0 (zookeeper mode)" in err, proc.stderr
        assert "Kafka 4.4.0 has no ZooKeeper mode" in err and "migrate it to KRaft first" in err, proc.stderr
        assert "kops migrate --to-kraft" in err and "nothing was changed" in err, proc.stderr
        assert "Traceback" not in proc.stderr

    assert unit_stamps(lab, ZK) == stamps, "a refused upgrade must not restart anything"
    assert conf_sums(lab, ZK) == sums
    # kops's record of the cluster (version.json: 3.9.2, zookeeper) is as it was. The refused
    # KRaft-shaped `up` does keep a cluster.id (its observation runs before the preflight): the
    # id the brokers' meta.properties hold, which a migration to KRaft keeps anyway.
    state_after = {p.name: p.read_bytes() for p in state_dir.iterdir() if p.is_file()} if state_dir.exists() else {}
    cid = state_after.pop("cluster.id", None) if "cluster.id" not in state_before else None
    assert state_after == state_before, (sorted(state_before), sorted(state_after))
    assert cid is None or {cid.decode().strip()} == set(_meta_ids(lab, ZK).values()), cid
    assert "version: 3.9.2" in inv.read_text()
    assert_healthy(lab, inv)


def _no_trace(lab: Lab, cluster: str) -> dict[str, str]:
    """Host -> what is left of the cluster (empty when nothing)."""
    out = {}
    for h in lab.hosts:
        _, text = sh(h, f"ls -d /etc/kops/{cluster} /var/lib/kops/{cluster} /var/log/kops/{cluster} "
                        f"/etc/systemd/system/kops-{cluster}-*.service /opt/kops/kafka_2.13-*/ 2>/dev/null; "
                        f"systemctl list-units --all --plain --no-legend 'kops-{cluster}-*' | grep -v not-found")
        out[h.name] = text.strip()
    return out


def test_zk_purge(lab):
    inv = lab.inventories[ZK]
    proc = ok(kops(lab, "down", "-i", inv, "--purge"))
    assert f"cluster {ZK} purged (6 nodes)" in proc.stdout, proc.stdout
    assert _no_trace(lab, ZK) == {n: "" for n in NAMES}
    assert not (lab.state / "clusters" / ZK).exists() or not any((lab.state / "clusters" / ZK).iterdir())
    for h in lab.hosts:
        assert sh(h, "pgrep -u kafka java")[0] == 1, f"a kafka process is left on {h.name}"

    proc = ok(kops(lab, "down", "-i", inv, "--purge"))      # safe to repeat
    assert _no_trace(lab, ZK) == {n: "" for n in NAMES}


# -- 6: KRaft, three combined broker,controller nodes on the same hosts -----------------------------

def _meta_ids(lab: Lab, cluster: str) -> dict[str, str]:
    out = {}
    for h in lab.hosts:
        i = h.name[-1]
        code, text = sh(h, f"sed -n 's/^cluster.id=//p' /var/lib/kops/{cluster}/kafka{i}/data/meta.properties")
        assert code == 0 and text.strip(), f"{h.name}: no meta.properties: {text}"
        out[h.name] = text.strip()
    return out


def test_kraft_three_combined_nodes(lab):
    inv = lab.inventory(KR, testhosts.inventory(KR, lab.hosts, lab.key, mode="kraft", version="4.4.0",
                                                roles=["broker"]))
    t0 = time.monotonic()
    proc = ok(kops(lab, "up", "-i", inv, "--timeout", UP_TIMEOUT))
    TIMINGS["3-host KRaft deploy from nothing to ready"] = time.monotonic() - t0
    assert f"cluster {KR} ready" in proc.stdout
    st = assert_healthy(lab, inv)
    assert sorted(n["role"] for n in st["nodes"]) == ["combined"] * 3
    bs = bootstrap(lab.hosts)
    topic = "e2e-kraft"
    create_topic(bs, topic, rf=3)
    produce(bs, topic, [b"before"])
    assert isrs(bs, topic) == [1, 2, 3]

    # Kafka's own tools on a host through `kops exec`: the node's environment and client config
    t0 = time.monotonic()
    p = ok(kops(lab, "exec", "-i", inv, "kafka2", "--", "sh", "-c",
                'kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --command-config "$KOPS_CLIENT_CONFIG" '
                f"--describe --topic {topic}"))
    TIMINGS["kops exec kafka-topics.sh on a host"] = time.monotonic() - t0
    assert "ReplicationFactor: 3" in p.stdout, p.stdout
    assert kops(lab, "exec", "-i", inv, "kafka2", "--", "false").returncode == 1
    code, text = sh(lab.host("vm1"), "bash -lc 'command -v kafka-topics.sh; echo $KAFKA_BOOTSTRAP_SERVERS'")
    assert code == 0 and text.split()[0] == "/opt/kops/kafka_2.13-4.4.0/bin/kafka-topics.sh" and ":" in text, text

    ids = _meta_ids(lab, KR)
    assert len(set(ids.values())) == 1, ids
    cid = next(iter(ids.values()))
    sums = {h.name: sh(h, f"sha256sum /var/lib/kops/{KR}/kafka{h.name[-1]}/data/meta.properties")[1]
            for h in lab.hosts}

    ok(kops(lab, "down", "-i", inv))
    assert set(unit_states(lab, KR).values()) == {"inactive"}
    # The id kept on this machine is gone too: the one on the hosts must win, not a new one.
    (lab.state / "clusters" / KR / "cluster.id").unlink()
    ok(kops(lab, "up", "-i", inv, "--timeout", UP_TIMEOUT))
    assert _meta_ids(lab, KR) == ids
    assert (lab.state / "clusters" / KR / "cluster.id").read_text().strip() == cid
    assert {h.name: sh(h, f"sha256sum /var/lib/kops/{KR}/kafka{h.name[-1]}/data/meta.properties")[1]
            for h in lab.hosts} == sums, "meta.properties was rewritten (storage re-formatted?)"
    assert_healthy(lab, inv)
    assert consume(bs, topic, 1) == [b"before"]
    round_trip(bs, 3)

    ok(kops(lab, "down", "-i", inv, "--purge"))
    assert _no_trace(lab, KR) == {n: "" for n in NAMES}


# -- 7..9: failures change nothing; a host without Java gets one --------------------------------

def _untouched(lab: Lab, cluster: str, hosts=None) -> None:
    for h in hosts or lab.hosts:
        code, text = sh(h, f"ls -d /etc/kops /opt/kops /var/lib/kops /etc/systemd/system/kops-{cluster}-* "
                           "2>/dev/null")
        assert text.strip() == "", f"{h.name} was changed: {text}"


def test_bad_key_changes_nothing(lab):
    keydir = lab.tmp / "other-key"
    keydir.mkdir(exist_ok=True)
    other = testhosts.make_key(keydir)
    inv = lab.inventory(BAD, testhosts.inventory(BAD, lab.hosts, other, mode="zookeeper", version="3.9.2",
                                                 roles=["zookeeper", "broker"],
                                                 known_hosts=testhosts.known_hosts_of(lab.key)))
    proc = kops(lab, "up", "-i", inv, timeout=120)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    assert "login failed" in proc.stderr and "Authentication" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    for h in lab.hosts:
        assert f"{h.name} (root@{h.address}:22)" in proc.stderr, proc.stderr
    assert "nothing was changed" in proc.stderr
    _untouched(lab, BAD)


def test_stopped_host_changes_nothing(lab):
    vm3 = lab.host("vm3")
    inv = lab.inventory(DOWN, testhosts.inventory(DOWN, lab.hosts, lab.key, mode="zookeeper", version="3.9.2",
                                                  roles=["zookeeper", "broker"]))
    vm3.container.kill()
    try:
        vm3.container.reload()
        assert vm3.container.status == "exited"
        proc = kops(lab, "up", "-i", inv, timeout=120)
        # exit 1 (runtime failure, EngineError): the host is not reachable
        assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
        err = re.sub(r"\s+", " ", proc.stderr)
        assert f"vm3 ({vm3.address}:22): cannot open a TCP connection" in err, proc.stderr
        assert "vm1" not in err and "vm2" not in err, proc.stderr
        assert "nothing was changed on any host" in err
        _untouched(lab, DOWN, [lab.host("vm1"), lab.host("vm2")])
    finally:
        vm3.container.start()
    # the host is back (same address, sshd up): kops now reaches all three
    def sshd_back():
        vm3.container.reload()
        code, _ = sh(vm3, "systemctl is-active ssh") if vm3.container.status == "running" else (1, "")
        return code == 0
    poll(sshd_back, timeout=90, interval=1, what="vm3 to come back with sshd")
    addr = vm3.container.attrs["NetworkSettings"]["Networks"][f"kops-test-{GROUP}"]["IPAddress"]
    assert addr == vm3.address
    proc = ok(kops(lab, "up", "-i", inv, "--dry-run", timeout=120))
    assert "kafka3" in proc.stdout and "create" in proc.stdout
    _untouched(lab, DOWN)


def test_host_without_java_gets_one(lab):
    vm1 = lab.host("vm1")
    code, text = sh(vm1, "DEBIAN_FRONTEND=noninteractive apt-get purge -y openjdk-17-jre-headless "
                         ">/dev/null 2>&1; command -v java")
    assert code != 0 and not text.strip(), f"java still there: {text}"
    inv = lab.inventory(JAVA, "\n".join([
        f"name: {JAVA}", "kafka: {version: 4.4.0, mode: kraft, heap: 384m}", "driver: ssh",
        f"ssh: {{known_hosts: {testhosts.known_hosts_of(lab.key)}}}", "hosts:",
        f"  vm1: {{address: {vm1.address}, user: root, key: {lab.key}, roles: [broker]}}", ""]))
    t0 = time.monotonic()
    proc = ok(kops(lab, "up", "-i", inv, "--timeout", UP_TIMEOUT))
    TIMINGS["1-host deploy incl. Java install"] = time.monotonic() - t0
    assert "vm1: installing openjdk-17-jre-headless with apt" in proc.stderr, proc.stderr
    code, text = sh(vm1, "command -v java && java -version 2>&1")
    assert code == 0 and "17." in text, text
    assert_healthy(lab, inv, brokers=1)
    round_trip(f"{vm1.address}:9092", 1)
    ok(kops(lab, "down", "-i", inv, "--purge"))
    assert _no_trace(lab, JAVA)["vm1"] == ""


DL = "e2edl"


def test_hosts_download_the_tarball_with_checksum(lab):
    """kafka.download: the host fetches the official-layout tarball itself (here from vm1, a
    web server on the test network) and checks its SHA-512; a wrong checksum stops the run
    and leaves nothing unpacked."""
    import hashlib
    import io
    import tarfile

    from kops.artifacts import dist

    d = dist.cached("3.9.2") or dist.fetch("3.9.2", "maven")
    tgz = dist.tarball(d, lab.tmp / "serve")
    digest = hashlib.sha512(tgz.read_bytes()).hexdigest()
    vm1, vm2 = lab.host("vm1"), lab.host("vm2")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(tgz, arcname=tgz.name)
    sh(vm1, "mkdir -p /srv/www")
    vm1.container.put_archive("/srv/www", buf.getvalue())
    vm1.container.exec_run(["sh", "-c", "cd /srv/www && nohup python3 -m http.server 8000 "
                                        ">/dev/null 2>&1 &"], detach=True)
    url = f"http://{vm1.address}:8000/{tgz.name}"
    poll(lambda: sh(vm2, f"python3 -c 'import urllib.request; urllib.request.urlopen(\"{url}\").close()'")[0] == 0,
         timeout=20, what="the test web server on vm1 to come up")

    def inventory(sha: str) -> Path:
        return lab.inventory(DL, "\n".join([
            f"name: {DL}", "kafka:", "  version: 3.9.2", "  mode: kraft", "  heap: 384m",
            f"  download: {{url: '{url}', sha512: '{sha}'}}", "driver: ssh",
            f"ssh: {{known_hosts: {testhosts.known_hosts_of(lab.key)}}}", "hosts:",
            f"  vm2: {{address: {vm2.address}, user: root, key: {lab.key}, roles: [broker]}}", ""]))

    try:
        bad = kops(lab, "up", "-i", inventory("0" * 128), "--timeout", UP_TIMEOUT)
        assert bad.returncode == 1, bad.stderr
        assert "SHA-512 mismatch" in bad.stderr and "vm2" in bad.stderr, bad.stderr
        assert sh(vm2, "ls /opt/kops/ 2>/dev/null")[1].strip() == "", "nothing unverified may stay"

        proc = ok(kops(lab, "up", "-i", inventory(digest), "--timeout", UP_TIMEOUT))
        assert "vm2: installing Kafka 3.9.2 in /opt/kops/kafka_2.13-3.9.2 (downloaded by the host)" in proc.stderr
        code, _ = sh(vm2, "test -f /opt/kops/kafka_2.13-3.9.2/libs/kafka_2.13-3.9.2.jar")
        assert code == 0, "the downloaded distribution is unpacked in place"
        assert_healthy(lab, inventory(digest), brokers=1)
        round_trip(f"{vm2.address}:9092", 1)
    finally:
        kops(lab, "down", "-i", inventory(digest), "--purge")
        sh(vm1, "pkill -f 'http.server 8000' || true")
    assert _no_trace(lab, DL)["vm2"] == ""


SEC = "e2esec"


def test_secure_kraft_over_ssh(lab):
    """TLS + SCRAM on three hosts: a client with the settings kops writes gets in, a wrong
    password and plaintext do not; keys and passwords are 0640 root:kafka on the hosts and
    never printed; listeners bind the hosts' own addresses, not every interface."""
    from confluent_kafka import Consumer, KafkaException, Producer
    from confluent_kafka.admin import AdminClient

    inv = lab.inventory(SEC, testhosts.inventory(SEC, lab.hosts, lab.key, mode="kraft", version="4.4.0",
                                                 roles=["broker"],
                                                 extra="security: {tls: true, sasl: scram-sha-512, users: {app: {}}}\n"))
    t0 = time.monotonic()
    up = ok(kops(lab, "up", "-i", inv, "--timeout", UP_TIMEOUT))
    TIMINGS["3-host secure KRaft deploy"] = time.monotonic() - t0
    st = assert_healthy(lab, inv)
    assert st["security"] == "tls,scram-sha-512"
    out = lab.tmp / "sec-client"
    ok(kops(lab, "client-config", "app", "-i", inv, "-o", out))
    conf = dict(ln.split("=", 1) for ln in (out / "librdkafka.conf").read_text().splitlines() if "=" in ln)
    conf.update({"log_level": 0, "socket.timeout.ms": 8000})
    topic = f"sec-{uuid.uuid4().hex[:6]}"
    prod = Producer(conf)
    for i in range(10):
        prod.produce(topic, f"s{i}".encode())
    assert prod.flush(60) == 0
    cons = Consumer({**conf, "group.id": topic, "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    got, deadline = [], time.monotonic() + 60
    while len(got) < 10 and time.monotonic() < deadline:
        m = cons.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    cons.close()
    assert len(got) == 10
    for bad in ({**conf, "sasl.password": "wrong-password-123"},
                {"bootstrap.servers": conf["bootstrap.servers"], "log_level": 0}):
        with pytest.raises(KafkaException):
            AdminClient(bad).list_topics(timeout=8)
    passwords = json.loads((lab.state / "clusters" / SEC / "secrets" / "users.json").read_text())
    for pw in passwords.values():
        assert pw not in up.stdout + up.stderr
    vm1 = lab.host("vm1")
    code, text = sh(vm1, f"stat -c '%a %U %G' /etc/kops/{SEC}/kafka1/server.properties "
                         f"/etc/kops/{SEC}/kafka1/tls/node.pem /etc/kops/{SEC}/kafka1; ss -ltnH")
    lines = text.splitlines()
    assert lines[:3] == ["640 root kafka", "640 root kafka", "750 root kafka"], lines
    listening = " ".join(lines[3:])
    assert f"{vm1.address}:9092" in listening and "0.0.0.0:9092" not in listening and "*:9092" not in listening, \
        listening
    ok(kops(lab, "down", "-i", inv, "--purge"))
    assert _no_trace(lab, SEC)["vm1"] == ""

KEYS = "e2ekeys"


def test_host_keys_are_verified(lab):
    """No known_hosts in the inventory: an unknown key is refused (fingerprints shown), kept
    with --accept-new-host-keys, then known; a changed key is refused with both
    fingerprints even with the flag. Nothing changes on any host meanwhile."""
    inv = lab.inventory(KEYS, testhosts.inventory(KEYS, lab.hosts, lab.key, mode="kraft", version="4.4.0",
                                                  roles=["broker"], known_hosts=False))
    kept = lab.state / "known_hosts"
    kept.unlink(missing_ok=True)
    proc = kops(lab, "up", "-i", inv, "--dry-run", timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    err = re.sub(r"\s+", " ", proc.stderr)
    assert "SSH host key not known; nothing was changed on any host" in err, proc.stderr
    for h in lab.hosts:
        assert f"{h.name} ({h.address}):" in err and "SHA256:" in err, proc.stderr
    assert not kept.exists()

    proc = ok(kops(lab, "up", "-i", inv, "--dry-run", "--accept-new-host-keys", timeout=120))
    assert proc.stderr.count("new host key accepted and recorded") == 3, proc.stderr
    assert len(kept.read_text().splitlines()) == 3 and oct(kept.stat().st_mode & 0o777) == "0o600"
    ok(kops(lab, "up", "-i", inv, "--dry-run", timeout=120))           # known now: no flag needed

    vm2 = lab.host("vm2")
    code, text = sh(vm2, "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh")
    assert code == 0, text
    try:
        for flags in ([], ["--accept-new-host-keys"]):
            proc = kops(lab, "up", "-i", inv, "--dry-run", *flags, timeout=120)
            assert proc.returncode == 2, (flags, proc.returncode, proc.stderr)
            err = re.sub(r"\s+", " ", proc.stderr)
            assert "SSH host key changed; nothing was changed on any host" in err, proc.stderr
            assert f"vm2 ({vm2.address}): it presents" in err and err.count("SHA256:") == 2, proc.stderr
            assert "vm1" not in err.split("Hint:")[0] and "vm3" not in err.split("Hint:")[0]
        _untouched(lab, KEYS)
    finally:
        testhosts.write_known_hosts(lab.hosts, testhosts.known_hosts_of(lab.key))   # for later tests
