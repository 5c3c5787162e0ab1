"""Issue 22 on a real cluster (Docker, KRaft 4.4.0, one combined node, TLS + SCRAM, fast
profile, free ports, a state folder in tmp; removed at the end): the inventory's
``security.acls`` and ``security.quotas``.

* a user allowed to produce to ``orders-*`` (prefixed) and read with group ``billing`` can do
  exactly that with confluent-kafka, and is refused (TOPIC_AUTHORIZATION_FAILED,
  GROUP_AUTHORIZATION_FAILED) elsewhere;
* Kafka's own ``kafka-acls.sh --list`` in the node shows what the inventory says, and
  ``kops status`` names the users and counts the ACLs;
* changing the inventory's ACLs and quota and re-running `up` converges them (the dry run
  shows the diff first; an ACL of a principal kops does not manage is left alone);
* a quota is visible with Kafka's ``kafka-configs.sh --describe`` and changes.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from kopsrun import kops, ok

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

NAME = f"acl-{uuid.uuid4().hex[:4]}"
TOOL = 'kafka-{tool}.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --command-config "$KOPS_CLIENT_CONFIG" {args}'


def inventory(*, write: bool = True, audit: bool = False, rate: int = 1048576, acls: bool = True) -> str:
    ops = "[write, read, describe]" if write else "[read, describe]"
    extra = "\n        - {group: audit, operations: [read]}" if audit else ""
    text = f"""\
name: {NAME}
ports: auto
profile: fast
kafka: {{version: 4.4.0, heap: 256m}}
brokers: {{nodes: 1}}
topics:
  orders-eu: {{partitions: 1}}
  secret: {{partitions: 1}}
security:
  tls: true
  sasl: scram-sha-512
  users: {{app: {{}}, other: {{}}}}
  acls:
    app:
        - {{topic: "orders-*", operations: {ops}}}
        - {{group: billing, operations: [read]}}{extra}
  quotas:
    users: {{app: {{producer_byte_rate: {rate}}}}}
"""
    return text if acls else text.split("  acls:")[0]


def _env(tmp: Path) -> dict:
    return {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1", "COLUMNS": "160"}


def _conf(path: Path) -> dict[str, str]:
    return {**dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line), "log_level": 0}


def produce(conf: dict, topic: str) -> str | None:
    """None when the message is acknowledged, else the error's name."""
    from confluent_kafka import Producer

    got: list = []
    p = Producer({**conf, "message.timeout.ms": 15000})
    p.produce(topic, b"hello", on_delivery=lambda err, msg: got.append(err))
    p.flush(20)
    return got[0].name() if got and got[0] else (None if got else "no delivery report")


def consume(conf: dict, topic: str, group: str) -> str | None:
    """None when a message is read with ``group``, else the error's name."""
    from confluent_kafka import Consumer

    c = Consumer({**conf, "group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        c.subscribe([topic])
        end = time.monotonic() + 30
        while time.monotonic() < end:
            m = c.poll(1)
            if m is None:
                continue
            if m.error():
                return m.error().name()
            return None
        return "nothing read"
    finally:
        c.close()


def tool(inv: Path, env: dict, name: str, args: str) -> str:
    return ok(kops("exec", "kafka1", "-i", str(inv), "--", "sh", "-c", TOOL.format(tool=name, args=args),
                   env=env, timeout=120)).stdout


def test_acls_and_quotas_converge(tmp_path, own_clusters):
    own_clusters(NAME)
    env = _env(tmp_path)
    inv = tmp_path / "acl.yaml"
    inv.write_text(inventory(acls=False))
    try:
        t0 = time.monotonic()
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        print(f"cluster without ACLs up in {time.monotonic() - t0:.0f} s")
        # ACLs on a running cluster: the authorizer comes with a roll, then the ACLs and quota
        inv.write_text(inventory())
        p = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        print(p.stdout)
        assert "add ACL User:app allow write on topic orders-*" in p.stdout, p.stdout
        assert "quota of user app: producer_byte_rate (none) -> 1048576" in p.stdout, p.stdout
        t0 = time.monotonic()
        p = ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        print(f"authorizer on and ACLs made in {time.monotonic() - t0:.0f} s")
        assert "ACL added: User:app allow write on topic orders-*" in p.stderr + p.stdout, p.stderr
        ok(kops("client-config", "app", "-i", str(inv), "-o", str(tmp_path / "app"), env=env))
        ok(kops("client-config", "other", "-i", str(inv), "-o", str(tmp_path / "other"), env=env))
        app = _conf(tmp_path / "app" / "librdkafka.conf")
        other = _conf(tmp_path / "other" / "librdkafka.conf")

        # exactly what the ACLs allow
        assert produce(app, "orders-eu") is None
        assert consume(app, "orders-eu", "billing") is None
        assert produce(app, "secret") == "TOPIC_AUTHORIZATION_FAILED"
        assert consume(app, "orders-eu", "elsewhere") == "GROUP_AUTHORIZATION_FAILED"
        assert produce(other, "orders-eu") == "TOPIC_AUTHORIZATION_FAILED"   # no ACL at all: denied

        # Kafka's own tools say the same; a principal kops does not manage gets an ACL by hand
        listed = tool(inv, env, "acls", "--list")
        print(listed)
        assert "User:app" in listed and "name=orders-, patternType=PREFIXED" in listed, listed
        assert "name=billing, patternType=LITERAL" in listed and "operation=WRITE" in listed, listed
        tool(inv, env, "acls", "--add --allow-principal User:outsider --operation READ --topic secret")
        quotas = tool(inv, env, "configs", "--describe --entity-type users --entity-name app")
        assert "producer_byte_rate=1048576" in quotas, quotas
        st = json.loads(ok(kops("status", "-i", str(inv), "--output", "json", env=env)).stdout)
        print(f"status access: {st.get('access')}")
        assert st["access"] == {"users": ["app", "other"], "authorizer": True, "acls": 5}, st.get("access")
        table = ok(kops("status", "-i", str(inv), env=env)).stdout
        assert "users app, other · ACLs 5" in table, table

        # nothing changed: `up` says so
        p = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        assert "acls: as in the inventory; nothing to change" in p.stdout, p.stdout
        assert "quotas: as in the inventory; nothing to change" in p.stdout, p.stdout

        # the inventory changes: the dry run shows the diff, `up` makes it so
        inv.write_text(inventory(write=False, audit=True, rate=2097152))
        p = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        print(p.stdout)
        assert "remove ACL User:app allow write on topic orders-*" in p.stdout, p.stdout
        assert "add ACL User:app allow read on group audit" in p.stdout, p.stdout
        assert "quota of user app: producer_byte_rate 1048576 -> 2097152" in p.stdout, p.stdout
        assert "User:outsider" not in p.stdout
        assert "operation=WRITE" in tool(inv, env, "acls", "--list --principal User:app")   # dry run: unchanged
        t0 = time.monotonic()
        p = ok(kops("up", "-i", str(inv), env=env))
        print(f"converged in {time.monotonic() - t0:.1f} s")
        listed = tool(inv, env, "acls", "--list")
        print(listed)
        assert "name=audit, patternType=LITERAL" in listed, listed
        app_part = tool(inv, env, "acls", "--list --principal User:app")
        assert "operation=WRITE" not in app_part and "operation=READ" in app_part, app_part
        assert "User:outsider" in listed, listed   # not kops's: left alone
        assert produce(app, "orders-eu") == "TOPIC_AUTHORIZATION_FAILED"
        assert consume(app, "orders-eu", "audit") is None
        quotas = tool(inv, env, "configs", "--describe --entity-type users --entity-name app")
        assert "producer_byte_rate=2097152" in quotas, quotas
        p = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        assert "acls: as in the inventory; nothing to change" in p.stdout, p.stdout
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)


ZK_NAME = f"acl-zk-{uuid.uuid4().hex[:4]}"


def test_zookeeper_mode_acl_authorizer(tmp_path, own_clusters):
    """The same inventory shape on Kafka 3.9.2 in ZooKeeper mode: AclAuthorizer, the ACLs and
    a quota through Kafka 3's ConfigCommand."""
    own_clusters(ZK_NAME)
    env = _env(tmp_path)
    inv = tmp_path / "acl-zk.yaml"
    inv.write_text(inventory().replace(f"name: {NAME}", f"name: {ZK_NAME}")
                   .replace("kafka: {version: 4.4.0, heap: 256m}", "kafka: {version: 3.9.2, heap: 256m}\n"
                            "zookeeper: {nodes: 1, heap: 128m}"))
    try:
        t0 = time.monotonic()
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        print(f"ZooKeeper-mode cluster with ACLs up in {time.monotonic() - t0:.0f} s")
        ok(kops("client-config", "app", "-i", str(inv), "-o", str(tmp_path / "app"), env=env))
        app = _conf(tmp_path / "app" / "librdkafka.conf")
        assert produce(app, "orders-eu") is None
        assert consume(app, "orders-eu", "billing") is None
        assert produce(app, "secret") == "TOPIC_AUTHORIZATION_FAILED"
        assert consume(app, "orders-eu", "elsewhere") == "GROUP_AUTHORIZATION_FAILED"
        listed = tool(inv, env, "acls", "--list")
        assert "name=orders-, patternType=PREFIXED" in listed and "User:app" in listed, listed
        props = ok(kops("exec", "kafka1", "-i", str(inv), "--", "cat", "/etc/kafka/server.properties",
                        env=env)).stdout
        assert "authorizer.class.name=kafka.security.authorizer.AclAuthorizer" in props, props
        quotas = tool(inv, env, "configs", "--describe --entity-type users --entity-name app")
        assert "producer_byte_rate=1048576" in quotas, quotas
        p = ok(kops("up", "-i", str(inv), "--dry-run", env=env))
        assert "acls: as in the inventory; nothing to change" in p.stdout, p.stdout
        assert "quotas: as in the inventory; nothing to change" in p.stdout, p.stdout
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)
