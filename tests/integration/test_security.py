"""Secure by default, on real clusters (Docker engine, real Kafka, real clients).

* TLS + SASL/SCRAM: a client on the host (confluent-kafka) and Kafka's own console tools on
  the cluster network produce and consume with the settings `kops client-config` writes;
  plaintext to a TLS port, a wrong password and a certificate of another CA all fail; on
  Kafka 4 (KRaft) and 3.9 (ZooKeeper mode).
* secrets: never printed (up, status --output json, render, dry run, errors), 0600 on this
  machine, 0640 root:kafka in the nodes, and the whole cluster keeps working (status,
  check, restart).
* ports: nothing is published on every interface unless the inventory asks for it.

Every cluster has a name and ports of its own (5x0xx); each test purges what it made.
"""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path

import pytest
import yaml

import kopsrun
from kopsrun import ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

LABEL = "io.kops.cluster"
CONSOLE = {"3": ("kafka.tools.ConsoleProducer", "org.apache.kafka.tools.consumer.ConsoleConsumer"),
           "4": ("org.apache.kafka.tools.ConsoleProducer", "org.apache.kafka.tools.consumer.ConsoleConsumer")}


@pytest.fixture
def env(tmp_path):
    return {**os.environ, "KOPS_STATE_DIR": str(tmp_path / "state"), "NO_COLOR": "1", "COLUMNS": "120"}


def kops(env, *args, timeout=420):
    return kopsrun.kops(*args, env=env, timeout=timeout)


@pytest.fixture
def cluster(own_clusters):
    return own_clusters


def conf_of(path: Path) -> dict:
    return dict(line.strip().split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def quiet(conf: dict) -> dict:
    return {**conf, "log_level": 0, "socket.timeout.ms": 6000}


def round_trip(conf: dict, topic: str, n: int = 20) -> list[bytes]:
    from confluent_kafka import Consumer, Producer

    prod = Producer(quiet(conf))
    for i in range(n):
        prod.produce(topic, f"m{i}".encode())
    assert prod.flush(60) == 0
    cons = Consumer({**quiet(conf), "group.id": f"g-{uuid.uuid4().hex[:6]}", "auto.offset.reset": "earliest"})
    cons.subscribe([topic])
    got = []
    import time

    deadline = time.monotonic() + 60
    while len(got) < n and time.monotonic() < deadline:
        m = cons.poll(0.5)
        if m is not None and not m.error():
            got.append(m.value())
    cons.close()
    return got


def refused(conf: dict) -> str:
    """What a client that must not get in gets: an error (never metadata)."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        md = AdminClient(quiet(conf)).list_topics(timeout=8)
    except KafkaException as exc:
        return str(exc)
    pytest.fail(f"a client that must be refused got metadata: {md.brokers}")


def other_ca(tmp_path: Path) -> Path:
    """A CA that did not sign the cluster's certificates."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the cluster CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp_path / "other-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


@pytest.mark.parametrize("version, mode, sasl, port", [
    ("4.4.0", "kraft", "scram-sha-512", 30092),
    ("3.9.2", "zookeeper", "scram-sha-256", 30492),
], ids=["kraft-4", "zookeeper-3.9"])
def test_tls_and_scram(version, mode, sasl, port, cluster, docker_client, env, tmp_path):
    name = cluster(f"sec-{mode[:2]}-{uuid.uuid4().hex[:4]}")
    data = {"name": name, "profile": "fast", "kafka": {"version": version, "mode": mode, "heap": "256m"},
            "brokers": {"nodes": 2 if mode == "zookeeper" else 1, "external_port": port,
                        "docker_port": port + 100, "internal_port": port + 200},
            "security": {"tls": True, "sasl": sasl, "users": {"app": {}, "ci": {"password": "given-password-123"}}}}
    if mode == "zookeeper":
        data["zookeeper"] = {"nodes": 1, "heap": "128m", "client_port": port + 281}
    inv = tmp_path / "secure.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))

    dry = ok(kops(env, "up", "-i", inv, "--dry-run", "--output", "json"))
    up = ok(kops(env, "up", "-i", inv))
    assert "user app created" in up.stderr and "user ci created" in up.stderr, up.stderr
    state = Path(env["KOPS_STATE_DIR"]) / "clusters" / name / "secrets"
    secret_files = sorted(p for p in state.iterdir())
    assert secret_files and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secret_files), \
        [(p.name, oct(p.stat().st_mode)) for p in secret_files]
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    passwords = json.loads((state / "users.json").read_text())
    assert passwords["ci"] == "given-password-123" and len(passwords["app"]) >= 24

    # the client settings kops writes get in; the broker's own console tools too
    out = tmp_path / "client"
    ok(kops(env, "client-config", "app", "-i", inv, "-o", out))
    assert {p.name for p in out.iterdir()} == {"ca.pem", "client.properties", "librdkafka.conf"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in out.iterdir())
    conf = conf_of(out / "librdkafka.conf")
    assert conf["security.protocol"] == "SASL_SSL" and conf["sasl.username"] == "app"
    got = round_trip(conf, f"secure-{uuid.uuid4().hex[:6]}")
    assert len(got) == 20
    ci = {**conf, "sasl.username": "ci", "sasl.password": "given-password-123"}
    assert len(round_trip(ci, f"secure-ci-{uuid.uuid4().hex[:6]}", 5)) == 5

    # refused: plaintext to the TLS port, a wrong password, a CA that did not sign the brokers
    refused({"bootstrap.servers": conf["bootstrap.servers"]})
    refused({**conf, "sasl.password": "wrong-password-123"})
    refused({**conf, "ssl.ca.location": str(other_ca(tmp_path))})

    # Kafka's own console tools, inside the cluster network, with client.properties
    image = f"kops/kafka:{version}"
    net = f"kops-{name}"
    props = (out / "client.properties").read_text().replace(str((out / "ca.pem").resolve()), "/c/ca.pem")
    props = "\n".join(ln for ln in props.splitlines() if not ln.startswith("bootstrap.servers"))
    (out / "tools.properties").write_text(props + "\n")
    producer, consumer = CONSOLE[version[0]]
    internal = f"kafka1:{port + 200}"
    topic = f"tools-{uuid.uuid4().hex[:6]}"
    script = (f"printf 'one\\ntwo\\nthree\\n' | java -Xmx128m -cp '/opt/kafka/libs/*' {producer} "
              f"--bootstrap-server {internal} --producer.config /c/tools.properties --topic {topic} && "
              f"java -Xmx128m -cp '/opt/kafka/libs/*' {consumer} --bootstrap-server {internal} "
              f"--consumer.config /c/tools.properties --topic {topic} --from-beginning --max-messages 3 "
              "--timeout-ms 60000")
    c = docker_client.containers.run(image, ["sh", "-c", script], network=net, detach=True,
                                     volumes={str(out.resolve()): {"bind": "/c", "mode": "ro"}},
                                     labels={LABEL: name}, user="0")
    try:
        code = c.wait(timeout=240)["StatusCode"]
        logs = c.logs().decode(errors="replace")
    finally:
        c.remove(force=True)
    assert code == 0 and [ln for ln in logs.splitlines() if ln in ("one", "two", "three")] == ["one", "two", "three"], logs

    # inside a node, Kafka's own tools reach it as typed, with the node's ready client.properties
    listed = kops(env, "exec", "-i", inv, "kafka1", "--", "sh", "-c",
                  'kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" '
                  '--command-config /etc/kafka/client.properties --list')
    assert listed.returncode == 0 and topic in listed.stdout.split(), listed.stdout + listed.stderr

    # every existing feature on the secure cluster: status, check, restart
    st = json.loads(ok(kops(env, "status", "-i", inv, "--output", "json", "--wait", "60")).stdout)
    assert st["state"] == "healthy" and st["security"] == f"tls,{sasl}", st
    ok(kops(env, "check", "-i", inv, "--messages", "20"))
    ok(kops(env, "restart", "-i", inv, "--node", "kafka1"))
    again = ok(kops(env, "up", "-i", inv, "--output", "json"))
    assert json.loads(again.stdout)["changed"] is False, "a second up changed something"

    # inside the nodes: keys and passwords readable by the service only
    node = docker_client.containers.get(f"{name}-kafka1")
    res = node.exec_run(["stat", "-c", "%a %U %G %n", "/etc/kafka/server.properties", "/etc/kafka/tls/node.pem",
                         "/etc/kafka/tls", "/etc/kafka/client.properties"])
    lines = res.output.decode().split("\n")
    assert lines[0].startswith("640 root kafka") and lines[1].startswith("640 root kafka"), lines
    assert lines[2].startswith("750 root kafka") and lines[3].startswith("640 root kafka"), lines

    # no password in anything kops printed, rendered on stdout or answered as JSON
    render = ok(kops(env, "render", "-i", inv, "-o", tmp_path / "bundle"))
    everything = "".join(p.stdout + p.stderr for p in (dry, up, render, again)) + json.dumps(st)
    for pw in passwords.values():
        assert pw not in everything, "a password was printed"
    bundle = tmp_path / "bundle"
    for rel in ("kafka1/server.properties", "kafka1/tls/node.pem", "docker-compose.yml"):
        assert stat.S_IMODE((bundle / rel).stat().st_mode) == 0o600, rel
    assert stat.S_IMODE((bundle / "kafka1/tls/ca.pem").stat().st_mode) == 0o644
    ok(kops(env, "down", "-i", inv, "--purge"))


def test_nothing_on_every_interface_unless_asked(cluster, docker_client, env, tmp_path):
    name = cluster(f"ports-{uuid.uuid4().hex[:4]}")
    data = {"name": name, "kafka": {"version": "3.9.2", "heap": "256m"},
            "zookeeper": {"nodes": 1, "heap": "128m", "client_port": 30981},
            "brokers": {"nodes": 1, "external_port": 30892, "docker_port": 30992, "internal_port": 31092,
                        "jmx_port": 30899}}
    inv = tmp_path / "ports.yaml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    ok(kops(env, "up", "-i", inv))
    gateway = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0].get("Gateway") or "172.17.0.1"
    bound = {}
    for c in docker_client.containers.list(filters={"label": f"{LABEL}={name}"}):
        for port, binds in (c.attrs["NetworkSettings"]["Ports"] or {}).items():
            for b in binds or []:
                bound[(c.labels["io.kops.node"], port)] = b["HostIp"]
    assert bound == {("zoo1", "30981/tcp"): "127.0.0.1", ("kafka1", "30892/tcp"): "127.0.0.1",
                     ("kafka1", "30899/tcp"): "127.0.0.1", ("kafka1", "30992/tcp"): gateway}, bound
    # the DOCKER listener still serves other containers through host.docker.internal
    code = docker_client.containers.run(
        "kops/kafka:3.9.2", ["java", "-Xmx128m", "-cp", "/opt/kafka/libs/*", "kafka.admin.BrokerApiVersionsCommand",
                             "--bootstrap-server", "host.docker.internal:30992"],
        extra_hosts={"host.docker.internal": "host-gateway"}, remove=True, labels={LABEL: name})
    assert b"host.docker.internal:30992" in code
    # asked for: every interface (JMX, which has no authentication, is then refused)
    data["brokers"]["bind_address"] = "0.0.0.0"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    p = kops(env, "up", "-i", inv)
    assert p.returncode == 2 and "JMX has no authentication" in p.stderr, p.stderr
    del data["brokers"]["jmx_port"]
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    ok(kops(env, "up", "-i", inv))
    c = docker_client.containers.get(f"{name}-kafka1")
    assert c.attrs["NetworkSettings"]["Ports"]["30892/tcp"][0]["HostIp"] in ("0.0.0.0", "")
    ok(kops(env, "down", "-i", inv, "--purge"))
