"""Kafka Connect workers and the schema registry on a secure cluster, as data: their rendered
properties carry the Kafka client security settings (TLS with the cluster CA, SCRAM as their
own users), the password sits only in files marked secret (in the nodes, in `kops render`'s
output, never in argv, environment, the systemd unit or the compose file), the spec's rules
(security keys are kops's, the services' user names reserved), the step that makes their
users before they start, and the kept passwords. No engine, no network."""

from __future__ import annotations

import json

import pytest

from kops.bundle import render
from kops.model import inventory as speclib, topology
from kops.plan import NodeObs, Observed, plan_up
from kops.services import connect, registry

from specs import CID, props, refused, topo  # noqa: E402

PW = {"kops-connect": "connect-pw-" + "c" * 20, "kops-registry": "registry-pw-" + "r" * 20}
ADMIN_PW = "admin-pw-" + "a" * 20
KRAFT = ("name: s\nkafka: {version: 4.4.0}\nbrokers: {nodes: 1}\nconnect: {nodes: 2}\nschema_registry: {nodes: 1}\n")
SASL = "security: {tls: true, sasl: scram-sha-512}\n"
TLS = "security: {tls: true}\n"


def creds(t, users=PW) -> render.Credentials:
    return render.Credentials("CA-PEM", {n.name: ("KEY", "CERT") for n in t.nodes if n.is_kafka}, ADMIN_PW,
                              t.spec.security.mechanism, users={u: users[u] for u in render.service_users(t.spec)})


def secrets_in(text: str) -> list[str]:
    return [p for p in (*PW.values(), ADMIN_PW) if p in text]


@pytest.mark.parametrize("driver", ["docker", "ssh"])
def test_worker_and_registry_get_the_client_security_settings(driver):
    text = KRAFT + SASL
    if driver == "ssh":
        text = text.replace("name: s\n", "name: s\ndriver: ssh\nhosts: {vm1: {address: 10.0.0.11, "
                                          "roles: [broker, connect, registry]}}\n")
        text = text.replace("connect: {nodes: 2}", "connect: {nodes: 1}")
    t = topo(text)
    c = creds(t)
    b = render.build(t, c)
    w = b.nodes["connect1"]
    conf = w.layout.conf_dir
    p = props(w.files[f"{conf}/connect-distributed.properties"])
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert p[f"{prefix}security.protocol"] == "SASL_SSL"
        assert p[f"{prefix}ssl.truststore.type"] == "PEM"
        assert p[f"{prefix}ssl.truststore.location"] == f"{conf}/tls/ca.pem"
        assert p[f"{prefix}ssl.endpoint.identification.algorithm"] == "https"
        assert p[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert p[f"{prefix}sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                                                  f'username="kops-connect" password="{PW["kops-connect"]}";')
    assert w.files[f"{conf}/tls/ca.pem"] == "CA-PEM"
    assert f"{conf}/connect-distributed.properties" in w.secret and f"{conf}/tls/ca.pem" not in w.secret
    r = b.nodes["registry1"]
    rconf = r.layout.conf_dir
    rp = props(r.files[f"{rconf}/registry.properties"])
    pre = registry.CLIENT_PREFIX
    assert rp[f"{pre}security.protocol"] == "SASL_SSL" and rp[f"{pre}sasl.mechanism"] == "SCRAM-SHA-512"
    assert rp[f"{pre}ssl.truststore.type"] == "PEM" and rp[f"{pre}ssl.truststore.location"] == f"{rconf}/tls/ca.pem"
    assert rp[f"{pre}ssl.endpoint.identification.algorithm"] == "https"
    assert f'username="kops-registry" password="{PW["kops-registry"]}"' in rp[f"{pre}sasl.jaas.config"]
    assert not any(k.startswith("apicurio.kafkasql.security.") for k in rp)   # Apicurio's own SASL is OAuth's
    assert r.files[f"{rconf}/tls/ca.pem"] == "CA-PEM" and f"{rconf}/registry.properties" in r.secret
    # the passwords: only in the files marked secret; never in argv, environment, units, container
    for nb in b:
        for path, body in nb.files.items():
            if path not in nb.secret:
                assert not secrets_in(body), (nb.name, path)
        outside = json.dumps([nb.argv, nb.prestart, nb.env, nb.container, nb.format_argv if nb.node.role in
                              ("connect", "registry") else None])
        assert not secrets_in(outside), nb.name
    # a worker does not authenticate as kops's admin (it runs the users' connectors)
    assert ADMIN_PW not in w.files[f"{conf}/connect-distributed.properties"]


def test_tls_only_no_users_no_secret_files():
    t = topo(KRAFT + TLS)
    assert render.service_users(t.spec) == []
    b = render.build(t, creds(t))
    w, r = b.nodes["connect1"], b.nodes["registry1"]
    p = props(w.files["/etc/kafka/connect-distributed.properties"])
    assert p["security.protocol"] == "SSL" and p["consumer.security.protocol"] == "SSL"
    assert "sasl.jaas.config" not in p and "sasl.mechanism" not in p
    rp = props(r.files["/etc/kafka/registry.properties"])
    assert rp["apicurio.kafka.common.security.protocol"] == "SSL"
    assert not w.secret and not r.secret   # no password there: the files stay readable (diffs in the plan)


def test_a_plain_cluster_renders_as_before():
    t = topo(KRAFT)
    b = render.build(t)
    p = props(b.nodes["connect1"].files["/etc/kafka/connect-distributed.properties"])
    assert not any(k.split(".", 1)[-1].startswith(("security.", "ssl.", "sasl.")) for k in p)
    assert "/etc/kafka/tls/ca.pem" not in b.nodes["connect1"].files
    assert not any("apicurio.kafka.common" in k for k in props(b.nodes["registry1"].files["/etc/kafka/registry.properties"]))


def test_kops_render_marks_the_services_files_secret():
    t = topo(KRAFT + SASL)
    c = creds(t)
    files = render.export(t, c)
    for rel, body in files.items():
        if secrets_in(body):
            assert render.export_secret(rel, c), rel
    assert render.export_secret("connect1/connect-distributed.properties", c)
    assert render.export_secret("registry1/registry.properties", c)
    assert not render.export_secret("connect1/tls/ca.pem", c)


def test_a_missing_service_password_is_an_error_not_an_empty_password():
    from kops.core.errors import KopsError

    t = topo(KRAFT + SASL)
    with pytest.raises(KopsError, match="kops-connect"):
        render.build(t, render.Credentials("CA", {"kafka1": ("K", "C")}, ADMIN_PW, "SCRAM-SHA-512", users={}))
    with pytest.raises(KopsError, match="without its credentials"):
        render.build(t)


@pytest.mark.parametrize("section, key", [
    ("connect", "security.protocol"), ("connect", "producer.sasl.jaas.config"), ("connect", "consumer.ssl.truststore.location"),
    ("connect", "admin.sasl.mechanism"), ("connect", "ssl.endpoint.identification.algorithm"),
    ("schema_registry", "apicurio.kafka.common.sasl.jaas.config"), ("schema_registry", "apicurio.kafkasql.security.protocol"),
    ("schema_registry", "apicurio.kafkasql.producer.ssl.truststore.location"),
    ("schema_registry", "apicurio.kafkasql.ssl.truststore.location"),
])
def test_security_keys_are_kops_s_on_a_secure_cluster(section, key):
    base = "name: s\nkafka: {version: 4.4.0}\nbrokers: {nodes: 1}\n" + SASL
    refused(f"{base}{section}: {{config: {{{key}: x}}}}\n", f"{section}.config.{key}", "security settings itself")
    # a plain cluster: the user's own settings (no kops security there)
    topo(f"name: s\nkafka: {{version: 4.4.0}}\nbrokers: {{nodes: 1}}\n{section}: {{config: {{{key}: x}}}}\n")


@pytest.mark.parametrize("section, user", [("connect", "kops-connect"), ("schema_registry", "kops-registry")])
def test_the_services_user_names_are_reserved(section, user):
    base = "name: s\nkafka: {version: 4.4.0}\nbrokers: {nodes: 1}\n"
    refused(f"{base}{section}: {{}}\nsecurity: {{tls: true, sasl: scram-sha-256, users: {{{user}: {{}}}}}}\n",
            f"security.users.{user}: this name is kops's own")


def test_secure_services_are_no_longer_refused():
    t = topo(KRAFT + SASL)
    assert [n.name for n in t.connects] == ["connect1", "connect2"] and [n.name for n in t.registries] == ["registry1"]
    assert render.service_users(t.spec) == ["kops-connect", "kops-registry"]
    zk = topo("name: z\nkafka: {version: 3.9.2}\nzookeeper: {nodes: 1}\nbrokers: {nodes: 1}\nconnect: {}\n"
              "security: {tls: true, sasl: scram-sha-256}\n")
    assert render.service_users(zk.spec) == ["kops-connect"]
    b = render.build(zk, creds(zk))
    p = props(b.nodes["connect1"].files["/etc/kafka/connect-distributed.properties"])
    assert p["sasl.mechanism"] == "SCRAM-SHA-256"


def test_up_makes_the_users_before_the_services_start():
    from kops.orchestration import lifecycle

    t = topo(KRAFT + SASL)
    b = render.build(t, creds(t))
    plan = lifecycle._with_service_users(plan_up(b, Observed()), b)
    kinds = [[(a.kind, a.node) for a in step] for step in plan.steps]
    users = next(i for i, step in enumerate(plan.steps) if any(a.kind == "users" for a in step))
    first = next(i for i, step in enumerate(plan.steps)
                 if any(a.node in ("connect1", "connect2", "registry1") and a.kind == "create" for a in step))
    ready = max(i for i, step in enumerate(plan.steps) if any(getattr(a, "gate", "") == "kafka-ready" for a in step))
    assert ready < users < first, kinds
    action = plan.steps[users][0]
    assert action.users == ("kops-connect", "kops-registry")
    assert "kops-connect, kops-registry" in action.describe() and not secrets_in(json.dumps(plan.as_dict()))
    # every node running as rendered: no step to add
    running = Observed(nodes={nb.name: NodeObs(nb.name, role=nb.node.role, exists=True, running=True,
                                               files=dict(nb.sums), digest=nb.digest, formatted=True)
                              for nb in b})
    assert not any(a.kind == "users" for a in lifecycle._with_service_users(plan_up(b, running), b).actions)
    # a plain or TLS-only cluster: no users
    plain = render.build(topo(KRAFT))
    assert not any(a.kind == "users" for a in lifecycle._with_service_users(plan_up(plain, Observed()), plain).actions)


def test_kept_passwords_of_users_not_asked_for_stay(tmp_path, monkeypatch):
    from kops.store import secrets

    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path))
    first = secrets.passwords("c1", {"app": None, "kops-connect": None})
    # another command asks only for the inventory's users (client-config, the end of `up`)
    again = secrets.passwords("c1", {"app": None})
    assert again["app"] == first["app"] and "kops-connect" not in again
    kept = json.loads((secrets.folder("c1") / "users.json").read_text())
    assert kept["kops-connect"] == first["kops-connect"]
    assert secrets.passwords("c1", {"kops-connect": None})["kops-connect"] == first["kops-connect"]


def test_the_worker_settings_keep_the_inventory_last():
    t = topo(KRAFT.replace("connect: {nodes: 2}", "connect: {nodes: 1, config: {offset.flush.interval.ms: 500}}") + SASL)
    node = t.node("connect1")
    lay = render.layout(t, node)
    items = connect.worker_settings(t, node, lay, render.service_client(t, node, lay, creds(t)))
    keys = [k for k, _ in items]
    assert keys.index("admin.sasl.jaas.config") < keys.index("offset.flush.interval.ms")
    assert dict(items)["offset.flush.interval.ms"] == 500


def test_spec_library_round_trip():
    # a secure cluster with both services loads from text (what `kops init`/the CLI do)
    spec = speclib.loads(KRAFT + SASL, "t")
    assert spec.connect is not None and spec.schema_registry is not None and spec.security.sasl
    assert topology.build(spec, CID).node("registry1").role == "registry"
