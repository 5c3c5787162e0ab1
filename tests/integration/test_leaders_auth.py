"""Issue 21 on real clusters (Docker, fast profile, free ports, a state folder in tmp; every
container removed by label at the end):

* leaders spread after a move: a 3-broker cluster (ZooKeeper mode, 3.9.2) with a
  9-partition replication-3 topic scaled to 5 brokers under an acks=all producer: every
  broker leads at least one partition afterwards, `up` says how many each leads, and
  nothing acknowledged is lost;
* authentication failures: on a one-node KRaft 4.4.0 cluster with TLS + SCRAM, kops's own
  clients given a wrong password fail at once (exit 1, seconds, not the whole request
  timeout) saying "authentication", naming the user and the mechanism.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path

import pytest

from kopsrun import kops, ok, poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1200)]

SCALE = f"lead-scale-{uuid.uuid4().hex[:4]}"
AUTH = f"lead-auth-{uuid.uuid4().hex[:4]}"
TOPIC = "spread"


def scale_inventory(brokers: int) -> str:
    return f"""\
name: {SCALE}
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
zookeeper: {{nodes: 1, heap: 128m}}
brokers: {{nodes: {brokers}}}
"""


def _env(tmp: Path) -> dict:
    return {**os.environ, "KOPS_STATE_DIR": str(tmp / "state"), "NO_COLOR": "1", "COLUMNS": "160"}


def _bootstrap(inv: Path, env: dict) -> str:
    return json.loads(ok(kops("status", "-i", str(inv), "--output", "json", env=env)).stdout)["bootstrap_servers"]


def _leaders(boot: str) -> dict[int, int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient({"bootstrap.servers": boot, "log_level": 0}).list_topics(TOPIC, timeout=10)
    out: dict[int, int] = {}
    for p in md.topics[TOPIC].partitions.values():
        out[p.leader] = out.get(p.leader, 0) + 1
    return out


def test_scaling_3_to_5_spreads_leaders(tmp_path, own_clusters):
    from load import Load

    own_clusters(SCALE)
    env = _env(tmp_path)
    inv = tmp_path / "scale.yaml"
    inv.write_text(scale_inventory(3))
    try:
        t0 = time.monotonic()
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        print(f"3-broker cluster up in {time.monotonic() - t0:.0f} s")
        from confluent_kafka.admin import AdminClient, NewTopic

        boot = _bootstrap(inv, env)
        admin = AdminClient({"bootstrap.servers": boot, "log_level": 0})
        admin.create_topics([NewTopic(TOPIC, 9, 3)])[TOPIC].result(30)
        poll(lambda: sum(_leaders(boot).values()) == 9 and -1 not in _leaders(boot), timeout=60,
             what="the topic's leaders")
        inv.write_text(scale_inventory(5))
        with Load(boot, TOPIC) as load:
            load.flowing()
            p = ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        res = load.verify(boot, "scale 3 -> 5 brokers", p.seconds)
        print(p.stderr[-1500:])
        assert "reassignment done" in p.stderr, p.stderr
        led = _leaders(_bootstrap(inv, env))
        print(f"leaders after the scale: {dict(sorted(led.items()))}; load: {res}")
        assert set(led) == {1, 2, 3, 4, 5} and min(led.values()) >= 1, led
        line = next(ln for ln in p.stderr.splitlines() if "leaders:" in ln)
        assert all(f"{b}:" in line for b in (1, 2, 3, 4, 5)), line
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)


def auth_inventory() -> str:
    # an authorizer that allows what no ACL names (the controllers' and brokers' own
    # connections included), so that a DENY ACL can refuse one topic and one group to `app`
    return f"""\
name: {AUTH}
ports: auto
profile: fast
kafka:
  version: 4.4.0
  heap: 256m
  config:
    authorizer.class.name: org.apache.kafka.metadata.authorizer.StandardAuthorizer
    allow.everyone.if.no.acl.found: true
  custom_keys: [allow.everyone.if.no.acl.found]
brokers: {{nodes: 1}}
security: {{tls: true, sasl: scram-sha-512, users: {{app: {{}}}}}}
"""


def _conf(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_wrong_credentials_and_missing_acls_fail_at_once(tmp_path, own_clusters):
    own_clusters(AUTH)
    env = _env(tmp_path)
    inv = tmp_path / "auth.yaml"
    inv.write_text(auth_inventory())
    try:
        t0 = time.monotonic()
        ok(kops("up", "-i", str(inv), "--timeout", "600", env=env))
        print(f"SCRAM cluster up in {time.monotonic() - t0:.0f} s")
        ok(kops("client-config", "app", "-i", str(inv), "-o", str(tmp_path / "app"), env=env))
        ok(kops("client-config", "-i", str(inv), "-o", str(tmp_path / "admin"), env=env))
        good = tmp_path / "app" / "librdkafka.conf"
        boot = _conf(good)["bootstrap.servers"]
        bad = tmp_path / "bad.conf"
        bad.write_text("".join(f"{k}={'wrong-password-123' if k == 'sasl.password' else v}\n"
                               for k, v in _conf(good).items()))
        ok(kops("topic", "create", "open", "-i", str(inv), env=env))
        common = ["-b", boot, "--command-config", str(bad)]
        for argv, stdin in ((["consume", "open", "-n", "1"], None), (["produce", "open"], "hello\n"),
                            (["topic", "list"], None), (["group", "list"], None)):
            p = kops(*argv, *common, env=env, input=stdin, timeout=60)
            print(f"{' '.join(argv)} with a wrong password: exit {p.returncode} in {p.seconds:.1f} s: "
                  f"{p.stderr.strip().splitlines()[0] if p.stderr.strip() else ''}")
            assert p.returncode == 1, (argv, p.stderr)
            assert p.seconds < 10, (argv, p.seconds, p.stderr)
            assert "authentication failed" in p.stderr and "'app'" in p.stderr and "SCRAM-SHA-512" in p.stderr, \
                p.stderr
            assert "kops client-config" in p.stderr and "Broker transport failure" not in p.stderr, p.stderr
            assert "wrong-password-123" not in p.stderr + p.stdout

        # authenticated, but an ACL refuses: said as such, at once
        from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient,
                                           ResourcePatternType, ResourceType)

        admin_conf = {k: v for k, v in _conf(tmp_path / "admin" / "librdkafka.conf").items()}
        admin = AdminClient({**admin_conf, "log_level": 0})
        deny = [AclBinding(ResourceType.TOPIC, "secret", ResourcePatternType.LITERAL, "User:app", "*",
                           AclOperation.ALL, AclPermissionType.DENY),
                AclBinding(ResourceType.GROUP, "locked", ResourcePatternType.LITERAL, "User:app", "*",
                           AclOperation.ALL, AclPermissionType.DENY)]
        for fut in admin.create_acls(deny).values():
            fut.result(30)
        ok(kops("topic", "create", "secret", "-i", str(inv), env=env))
        app = ["-b", boot, "--command-config", str(good)]
        ok(kops("produce", "open", *app, env=env, input="hello\n", timeout=60))
        for argv, stdin, what in ((["produce", "secret"], "hello\n", "on the topic"),
                                  (["consume", "secret", "-e"], None, "on the topic"),
                                  (["consume", "open", "-g", "locked", "-n", "1"], None, "on the consumer group")):
            p = kops(*argv, *app, env=env, input=stdin, timeout=60)
            print(f"{' '.join(argv)} without an ACL: exit {p.returncode} in {p.seconds:.1f} s")
            assert p.returncode == 1 and p.seconds < 10, (argv, p.returncode, p.seconds, p.stderr)
            assert "not authorized" in p.stderr and "'app'" in p.stderr and what in p.stderr, p.stderr

        # a user added to the inventory changes no node's files: `up` makes it all the same
        inv.write_text(auth_inventory().replace("users: {app: {}}", "users: {app: {}, late: {}}"))
        assert "late: {}" in inv.read_text()
        added = ok(kops("up", "-i", str(inv), env=env))
        assert "nothing to change" in added.stderr and "user late created" in added.stderr, added.stderr
        assert "user late created" not in ok(kops("up", "-i", str(inv), env=env)).stderr

        # the debug bundle of this secure cluster: everything a ticket needs, no secret in it
        check_debug_bundle(inv, env, tmp_path, state=Path(env["KOPS_STATE_DIR"]))
    finally:
        kops("down", "--purge", "-i", str(inv), env=env)


def check_debug_bundle(inv: Path, env: dict, tmp_path: Path, *, state: Path) -> None:
    import json as _json
    import tarfile

    out = tmp_path / "ticket.tar.gz"
    p = ok(kops("debug", "bundle", "-i", str(inv), "-o", str(out), "--output", "json", env=env))
    rep = _json.loads(p.stdout)
    print(f"debug bundle: {rep['files']} files, {rep['bytes']} bytes in {rep['seconds']} s; missing {rep['missing']}")
    assert rep["missing"] == [], rep["missing"]
    assert oct(out.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    for want in ("status.json", "inventory.yaml", "kafka/topics.json", "kafka/groups.json", "kafka/log_dirs.json",
                 "nodes/kafka1/log.txt", "nodes/kafka1/state.json", "nodes/kafka1/facts.txt",
                 "nodes/kafka1/files/etc/kafka/server.properties", "engine.json"):
        assert want in members, (want, sorted(members))
    assert _json.loads(members["status.json"])["state"] == "healthy"
    assert {"open", "secret"} <= set(_json.loads(members["kafka/topics.json"]))
    assert b'"partition":"open-0"' in members["kafka/log_dirs.json"]
    facts = members["nodes/kafka1/facts.txt"].decode()
    assert "-Xmx256m" in facts and "clock offset" in facts and "/var/lib/kafka/data" in facts, facts
    assert b'password="****"' in members["nodes/kafka1/files/etc/kafka/server.properties"]
    # every secret kops keeps for the cluster: absent from every member
    secrets_dir = state / "clusters" / AUTH / "secrets"
    kept = list(_json.loads((secrets_dir / "users.json").read_text()).values())
    keys = [ln for f in secrets_dir.glob("*.key") for ln in f.read_text().splitlines() if not ln.startswith("-----")]
    assert kept and keys
    for name, raw in members.items():
        for secret in kept + keys:
            assert secret.encode() not in raw, f"a secret of the cluster is in {name}"
        assert b"PRIVATE KEY-----\n" not in raw, name
