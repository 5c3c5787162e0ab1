"""Scaling the brokers of real KRaft clusters (Docker, Kafka 4.4.0, dedicated controllers:
combined nodes cannot leave, see kops.scale), regression tests of two executor bugs:

* 5 -> 3 brokers in one `kops up`: both leaving brokers drained, stopped, unregistered (two
  Unregister actions in one step used to crash the executor with ``KeyError: <class
  'kops.scale.Unregister'>`` after the brokers were stopped) and removed with their
  volumes; the cluster registers brokers 1-3 only, fenced ones included; under a
  continuous acks=all idempotent producer whose acknowledged messages are all read back.
* TLS + SASL/SCRAM, 2 -> 3 -> 2 brokers: the partition move used to be refused (exit 2)
  after the new broker was created, because Kafka's reassignment tool ran in the node with
  no client config; now it and ClusterTool unregister get the node's client.properties.
  Both directions exit 0, broker 3 holds replicas after the growth (read with the client
  settings `kops client-config` writes), is unregistered and gone after the shrink, and
  the data written before is read back whole after each.

One cluster per test (fast profile, small heaps, free ports); each is purged by label
before and after. Every figure is printed for the report (pytest -s).
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
from cleanup import remove_labelled
from kopsrun import ok
from load import Load, kops

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1500)]

VERSION = "4.4.0"
TOPIC = "orders"
CLUSTER_TOOL = "org.apache.kafka.tools.ClusterTool"


def inventory(name: str, brokers: int, *, rf: int, secure: bool = False) -> str:
    # the internal topics' replication given, so that the broker count changes no node's config
    body = (f"name: {name}\nports: auto\nprofile: fast\n"
            f"kafka: {{version: {VERSION}, mode: kraft, heap: 256m, config: "
            f"{{offsets.topic.replication.factor: {rf}, transaction.state.log.replication.factor: {rf}, "
            f"transaction.state.log.min.isr: 1}}}}\n"
            f"controllers: {{nodes: 1, heap: 128m}}\nbrokers: {{nodes: {brokers}}}\n")
    if secure:
        body += "security: {tls: true, sasl: scram-sha-512, users: {app: {}}}\n"
    return body


def environ(tmp) -> dict:
    return dict(os.environ, KOPS_STATE_DIR=str(tmp / "state"), NO_COLOR="1", KOPS_BASE_IMAGE=os.environ.get(
        "KOPS_BASE_IMAGE", "kops-base:bookworm-jre17"))


def figures(operation: str, **values) -> None:
    print(f"\nFIGURES {json.dumps({'operation': operation, **values})}")


def status(inv, env) -> dict:
    return json.loads(ok(kops("status", "-i", str(inv), "--output", "json", "--wait", "60", env=env)).stdout)


def assignment(conf: dict, topic: str = TOPIC) -> dict[int, list[int]]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({**conf, "log_level": 0}).list_topics(timeout=15)
    return {p.id: list(p.replicas) for p in md.topics[topic].partitions.values()}


def per_broker(placed: dict[int, list[int]], brokers) -> dict[int, int]:
    return {b: sum(b in r for r in placed.values()) for b in brokers}


def registered(docker_client, name: str, *, secure: bool = False) -> list[int]:
    """Broker ids the KRaft metadata still registers, fenced ones included (KIP-1073), as
    Kafka's own ClusterTool lists them from inside kafka1."""
    c = docker_client.containers.get(f"{name}-kafka1")
    conf = " --command-config /etc/kafka/client.properties" if secure else ""
    code, out = c.exec_run(["sh", "-c", f"java -Xmx128m -cp '/opt/kafka/libs/*' {CLUSTER_TOOL} list-endpoints "
                                        f"--bootstrap-server \"$KAFKA_BOOTSTRAP_SERVERS\"{conf} "
                                        "--include-fenced-brokers"], user="kafka")
    text = out.decode(errors="replace")
    assert code == 0, text[-2000:]
    # ID  HOST  PORT  RACK  STATE  ENDPOINT_TYPE
    return sorted(int(ln.split()[0]) for ln in text.splitlines() if ln.split() and ln.split()[0].isdigit())


def nodes_and_volumes(docker_client, name: str) -> tuple[set[str], list[str]]:
    flt = {"label": f"io.kops.cluster={name}"}
    names = {c.labels.get("io.kops.node") for c in docker_client.containers.list(all=True, filters=flt)}
    return names, [v.name for v in docker_client.volumes.list(filters=flt)]


def started(docker_client, name: str) -> dict[str, str]:
    return {c.labels["io.kops.node"]: c.attrs["State"]["StartedAt"]
            for c in docker_client.containers.list(all=True, filters={"label": f"io.kops.cluster={name}"})
            if "io.kops.node" in c.labels}


# -- 1. KRaft 5 -> 3 brokers in one `kops up` ------------------------------------------------------

KRAFT = "t19-kraft-scale"


@pytest.fixture
def kraft(tmp_path, docker_client):
    inv = tmp_path / "kraft.yaml"
    inv.write_text(inventory(KRAFT, 5, rf=3))
    env = environ(tmp_path)
    remove_labelled(docker_client, KRAFT)
    try:
        up = ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        figures("up: 1 controller + 5 brokers (KRaft)", seconds=round(up.seconds, 1))
        yield inv, env
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)
        remove_labelled(docker_client, KRAFT)


def test_kraft_five_to_three_brokers_in_one_up(kraft, docker_client):
    from confluent_kafka.admin import AdminClient, NewTopic

    inv, env = kraft
    boot = status(inv, env)["bootstrap_servers"]
    admin = AdminClient({"bootstrap.servers": boot, "log_level": 0})
    admin.create_topics([NewTopic(TOPIC, 6, 3)])[TOPIC].result(30)
    before = per_broker(assignment({"bootstrap.servers": boot}), range(1, 6))
    assert before[4] and before[5], f"brokers 4 and 5 must hold replicas to drain: {before}"
    assert registered(docker_client, KRAFT) == [1, 2, 3, 4, 5]

    inv.write_text(inventory(KRAFT, 3, rf=3))
    d = ok(kops("up", "-i", str(inv), "--dry-run", "--output", "json", env=env))
    steps = json.loads(d.stdout)["plan"]
    kinds = [sorted(a["kind"] for a in step) for step in steps]
    assert ["unregister", "unregister"] in kinds, f"both registrations dropped in one step: {kinds}"
    stays = started(docker_client, KRAFT)

    with Load(boot, TOPIC) as load:
        load.flowing()
        p = kops("up", "-i", str(inv), "--timeout", "600", env=env)
    assert "KeyError" not in p.stderr, p.stderr[-3000:]
    ok(p)
    left = ",".join(boot.split(",")[:3])
    done = load.verify(left, "KRaft scale 5 -> 3 brokers in one up", p.seconds)

    assert "broker 4 unregistered" in p.stderr and "broker 5 unregistered" in p.stderr, p.stderr[-3000:]
    names, vols = nodes_and_volumes(docker_client, KRAFT)
    assert names == {"controller1", "kafka1", "kafka2", "kafka3"}, names
    assert not any("-kafka4-" in v or "-kafka5-" in v for v in vols), vols
    after = started(docker_client, KRAFT)
    assert all(after[n] == stays[n] for n in after), "no staying node was restarted"
    placed = assignment({"bootstrap.servers": left})
    assert all(sorted(r) == [1, 2, 3] for r in placed.values()), placed
    st = status(inv, env)
    assert st["state"] == "healthy", st["problems"]
    assert sorted(map(int, st["kafka"]["brokers"])) == [1, 2, 3], st["kafka"]
    listed = registered(docker_client, KRAFT)
    assert listed == [1, 2, 3], f"registrations left in the KRaft metadata: {listed}"
    figures(done["operation"], **{"replicas before (broker: n)": before, "registered after": listed})


# -- 2. TLS + SASL/SCRAM, 2 -> 3 -> 2 brokers -----------------------------------------------------

SECURE = "t19-secure-scale"
MESSAGES = 3000


@pytest.fixture
def secure(tmp_path, docker_client):
    inv = tmp_path / "secure.yaml"
    inv.write_text(inventory(SECURE, 2, rf=2, secure=True))
    env = environ(tmp_path)
    remove_labelled(docker_client, SECURE)
    try:
        up = ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        figures("up: TLS+SCRAM, 1 controller + 2 brokers", seconds=round(up.seconds, 1))
        out = tmp_path / "client"
        ok(kops("client-config", "app", "-i", str(inv), "-o", str(out), env=env))
        conf = dict(line.strip().split("=", 1) for line in (out / "librdkafka.conf").read_text().splitlines()
                    if "=" in line and not line.lstrip().startswith("#"))
        assert conf["security.protocol"] == "SASL_SSL", conf.keys()
        yield inv, env, conf
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)
        remove_labelled(docker_client, SECURE)


def write(conf: dict, n: int) -> set[bytes]:
    from confluent_kafka import Producer

    acked: set[bytes] = set()

    def done(err, msg):
        if not err:
            acked.add(msg.key())

    prod = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5, "log_level": 0})
    for i in range(n):
        prod.produce(TOPIC, key=f"k{i}".encode(), value=os.urandom(200), on_delivery=done)
        if i % 500 == 0:
            prod.poll(0)
    assert prod.flush(60) == 0
    assert len(acked) == n, f"only {len(acked)} of {n} acknowledged"
    return acked


def read_back(conf: dict, want: set[bytes]) -> int:
    """How many of ``want`` are missing from the topic read from the beginning."""
    from confluent_kafka import Consumer

    c = Consumer({**conf, "group.id": f"t19-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest",
                  "enable.auto.commit": False, "log_level": 0})
    c.subscribe([TOPIC])
    missing = set(want)
    deadline = time.monotonic() + 120
    while missing and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            missing.discard(m.key())
    c.close()
    return len(missing)


def test_secure_cluster_grows_and_shrinks(secure, docker_client):
    from confluent_kafka.admin import AdminClient, NewTopic

    inv, env, conf = secure
    admin = AdminClient({**conf, "log_level": 0})   # alive until the future resolves
    admin.create_topics([NewTopic(TOPIC, 6, 2)])[TOPIC].result(30)
    data = write(conf, MESSAGES)
    stays = started(docker_client, SECURE)

    # 2 -> 3: the new broker created, then the partitions spread onto it by Kafka's tool
    inv.write_text(inventory(SECURE, 3, rf=2, secure=True))
    grow = kops("up", "-i", str(inv), "--timeout", "600", env=env)
    ok(grow)
    assert "reassignment done" in grow.stderr, grow.stderr[-3000:]
    placed = assignment(conf)
    grown = per_broker(placed, (1, 2, 3))
    # 6 partitions x 2 replicas over 3 brokers: 4 each
    assert grown[3] > 0 and sum(grown.values()) == 12 and set(grown.values()) == {4}, (grown, placed)
    lost_grow = read_back(conf, data)
    assert lost_grow == 0, f"{lost_grow} messages not read back after 2 -> 3"
    after = started(docker_client, SECURE)
    restarted = sorted(n for n in stays if after.get(n) != stays[n])
    assert registered(docker_client, SECURE, secure=True) == [1, 2, 3]

    # 3 -> 2: drained, stopped, unregistered (ClusterTool with the node's config), removed
    inv.write_text(inventory(SECURE, 2, rf=2, secure=True))
    shrink = kops("up", "-i", str(inv), "--timeout", "600", env=env)
    ok(shrink)
    assert "broker 3 unregistered" in shrink.stderr and "unregistering broker" not in shrink.stderr, \
        shrink.stderr[-3000:]
    names, vols = nodes_and_volumes(docker_client, SECURE)
    assert names == {"controller1", "kafka1", "kafka2"}, names
    assert not any("-kafka3-" in v for v in vols), vols
    placed = assignment(conf)
    assert all(sorted(r) == [1, 2] for r in placed.values()), placed
    lost_shrink = read_back(conf, data)
    assert lost_shrink == 0, f"{lost_shrink} messages not read back after 3 -> 2"
    listed = registered(docker_client, SECURE, secure=True)
    assert listed == [1, 2], f"registrations left in the KRaft metadata: {listed}"
    st = status(inv, env)
    assert st["state"] == "healthy" and st["security"] == "tls,scram-sha-512", st
    figures("TLS+SCRAM 2 -> 3 -> 2 brokers", **{
        "grow seconds": round(grow.seconds, 1), "shrink seconds": round(shrink.seconds, 1), "written": MESSAGES,
        "lost after grow": lost_grow, "lost after shrink": lost_shrink, "replicas after grow (broker: n)": grown,
        "restarted by the growth": restarted, "registered after": listed})
    assert not restarted, f"adding a broker restarted {restarted}"
