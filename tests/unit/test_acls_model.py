"""Issue 22 as data: `security.acls` and `security.quotas` in the inventory (the model's
refusals of hostile or impossible values, naming the field), the authorizer keys rendered
for a cluster with ACLs (ZooKeeper mode and KRaft), and the ACL and quota diffs `up` runs.
No engine, no network."""

from __future__ import annotations

import pytest

from kops.bundle import render
from kops.kafka import acls
from kops.model import inventory as speclib

from specs import props, refused, topo  # noqa: E402

SECURE = "security:\n  tls: true\n  sasl: scram-sha-512\n  users: {app: {}, ci: {}}\n"
KRAFT = "name: a\nkafka: {version: 4.4.0}\nbrokers: {nodes: 1}\n"
ZK = "name: a\nkafka: {version: 3.9.2}\nbrokers: {nodes: 2}\n"
GOOD = SECURE + """\
  acls:
    app:
      - {topic: "orders-*", operations: [write, describe]}
      - {group: billing, operations: [read]}
    "User:CN=legacy,O=example":
      - {topic: audit, permission: deny, operations: [all]}
  quotas:
    users: {app: {producer_byte_rate: 1048576}}
    clients: {reporting: {consumer_byte_rate: 2048, request_percentage: 12.5}}
"""


def spec(text: str):
    return speclib.loads(text, "t")


def test_the_yaml_shape_reads_as_kafka_stores_it():
    s = spec(KRAFT + GOOD).security
    assert s.authorizer
    want = acls.wanted_acls(s)
    assert acls.Acl("User:app", "topic", "orders-", "prefixed", "write") in want
    assert acls.Acl("User:app", "topic", "orders-", "prefixed", "describe") in want
    assert acls.Acl("User:app", "group", "billing", "literal", "read") in want
    assert acls.Acl("User:CN=legacy,O=example", "topic", "audit", "literal", "all", "deny") in want
    assert len(want) == 4
    assert acls.managed_principals(s) == {"User:app", "User:ci", "User:CN=legacy,O=example"}
    assert acls.wanted_quotas(s) == {("users", "app"): {"producer_byte_rate": 1048576.0},
                                     ("clients", "reporting"): {"consumer_byte_rate": 2048.0,
                                                                "request_percentage": 12.5}}


@pytest.mark.parametrize("acl_yaml,fragments", [
    ('app: [{topic: t, operations: [write, fly]}]', ["security.acls.app.0.operations.1"]),
    ('app: [{group: g, operations: [write]}]', ["security.acls.app.0.operations.0", "write is not an operation of a group"]),
    ('app: [{cluster: true, operations: [read]}]', ["security.acls.app.0.operations.0"]),
    ('nobody: [{topic: t, operations: [read]}]', ["security.acls.nobody", "no such user"]),
    ('app: [{topic: t, group: g, operations: [read]}]', ["security.acls.app.0", "exactly one resource"]),
    ('app: [{operations: [read]}]', ["security.acls.app.0", "exactly one resource"]),
    ('app: [{topic: "a\\nb", operations: [read]}]', ["security.acls.app.0.topic"]),
    ('app: [{group: "a\\u0000b", operations: [read]}]', ["security.acls.app.0.group"]),
    ('app: [{group: "' + "g" * 300 + '", operations: [read]}]', ["security.acls.app.0.group"]),
    ('app: [{topic: "bad name!", operations: [read]}]', ["security.acls.app.0.topic", "can match no topic"]),
    ('app: [{topic: "a*b", operations: [read]}]', ["security.acls.app.0.topic", "'*'"]),
    ('app: [{topic: t, operations: []}]', ["security.acls.app.0.operations"]),
    ('app: [{topic: t, operations: [read], permission: maybe}]', ["security.acls.app.0.permission"]),
    ('app: [{topic: t, operations: [read], host: "1.2.3.4; rm -rf /"}]', ["security.acls.app.0.host"]),
    ('app: [{topic: t, operations: [read, read]}]', ["security.acls.app.0.operations.1", "list it once"]),
    ('kops-admin: [{topic: t, operations: [read]}]', ["security.acls.kops-admin", "super users"]),
    ('"User:evil\\nUser:x": [{topic: t, operations: [read]}]', ["security.acls"]),
    ('app: [{cluster: true, pattern: prefixed, operations: [alter]}]', ["security.acls.app.0.pattern"]),
])
def test_hostile_or_impossible_acls_are_refused_naming_the_field(acl_yaml, fragments):
    refused(KRAFT + SECURE + "  acls:\n    " + acl_yaml + "\n", *fragments)


@pytest.mark.parametrize("quota_yaml,fragments", [
    ("users: {app: {producer_byte_rate: 0}}", ["security.quotas.users.app.producer_byte_rate"]),
    ("users: {app: {producer_byte_rate: -5}}", ["security.quotas.users.app.producer_byte_rate"]),
    ("users: {app: {consumer_byte_rate: true}}", ["security.quotas.users.app.consumer_byte_rate", "boolean"]),
    ("users: {app: {consumer_byte_rate: lots}}", ["security.quotas.users.app.consumer_byte_rate"]),
    ("clients: {c: {request_percentage: .nan}}", ["security.quotas.clients.c.request_percentage"]),
    ("clients: {c: {request_percentage: .inf}}", ["security.quotas.clients.c.request_percentage"]),
    ("users: {app: {}}", ["security.quotas.users.app", "at least one"]),
    ("users: {ghost: {producer_byte_rate: 10}}", ["security.quotas.users.ghost", "no such user"]),
    ("clients: {\"a b\": {producer_byte_rate: 10}}", ["security.quotas.clients"]),
    ("users: {app: {fast: 10}}", ["security.quotas.users.app.fast"]),
])
def test_bad_quotas_are_refused(quota_yaml, fragments):
    refused(KRAFT + SECURE + "  quotas:\n    " + quota_yaml + "\n", *fragments)


def test_acls_need_a_principal_and_the_authorizer_keys_are_kops_own():
    refused(KRAFT + "security: {tls: true, acls: {\"User:x\": [{topic: t, operations: [read]}]}}\n",
            "security.acls: needs security.sasl")
    refused(KRAFT + "security: {authorization: true}\n", "security.authorization: needs security.sasl")
    refused(KRAFT + SECURE + "  authorization: false\n  acls: {app: [{topic: t, operations: [read]}]}\n",
            "security.authorization: false")
    refused(KRAFT.replace("{version: 4.4.0}", "{version: 4.4.0, config: {authorizer.class.name: x.Y}}")
            + SECURE + "  authorization: true\n", "kafka.config.authorizer.class.name")
    refused(KRAFT + "security: {tls: true, sasl: scram-sha-512, users: {kops-node: {}}}\n",
            "security.users.kops-node")
    refused(KRAFT + "security:\n  quotas: {users: {app: {producer_byte_rate: 5}}}\n",
            "security.quotas.users: user quotas need security.sasl")
    # client-id quotas need no security at all
    assert spec(KRAFT + "security:\n  quotas: {clients: {c: {producer_byte_rate: 5}}}\n")


def _creds(t):
    return render.Credentials("CA", {n.name: ("K", "C") for n in t.nodes if n.is_kafka}, "admin-pw-" + "a" * 20,
                              t.spec.security.mechanism, users={u: "svc-pw-" + "s" * 20
                                                                for u in render.service_users(t.spec)})


def _server(t, node):
    nb = render.build(t, _creds(t)).nodes[node]
    return props(nb.files[f"{nb.layout.conf_dir}/server.properties"])


def test_kraft_renders_the_standard_authorizer_and_mtls_between_the_nodes():
    t = topo(KRAFT + GOOD)
    p = _server(t, "kafka1")
    assert p["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    assert p["allow.everyone.if.no.acl.found"] == "false"
    assert p["super.users"] == "User:kops-admin;User:kops-node"
    assert p["listener.name.controller.ssl.client.auth"] == "required"
    assert p["ssl.client.auth"] == "none"   # clients: SCRAM, no certificate
    assert "kops-node" in p["ssl.principal.mapping.rules"]


def test_kraft_split_controllers_get_the_authorizer_too():
    t = topo(KRAFT.replace("brokers: {nodes: 1}", "brokers: {nodes: 1}\ncontrollers: {nodes: 1}") + GOOD)
    for node in ("kafka1", "controller1"):
        p = _server(t, node)
        assert p["authorizer.class.name"].endswith("StandardAuthorizer"), node
        assert p["listener.name.controller.ssl.client.auth"] == "required", node


def test_zookeeper_mode_renders_the_acl_authorizer_and_services_are_super_users():
    t = topo(ZK + "connect: {nodes: 1}\n" + GOOD)
    p = _server(t, "kafka1")
    assert p["authorizer.class.name"] == "kafka.security.authorizer.AclAuthorizer"
    assert p["super.users"] == "User:kops-admin;User:kops-connect"
    assert "listener.name.controller.ssl.client.auth" not in p


def test_no_acls_no_authorizer():
    p = _server(topo(KRAFT + SECURE), "kafka1")
    assert p["super.users"] == "User:kops-admin" and "authorizer.class.name" not in p


# -- the diffs ------------------------------------------------------------------------------------

A = acls.Acl


def test_acl_diff_adds_removes_and_leaves_other_principals_alone():
    want = {A("User:app", "topic", "orders-", "prefixed", "write"), A("User:app", "group", "billing", "literal", "read")}
    now = {A("User:app", "topic", "orders-", "prefixed", "write"),       # kept
           A("User:app", "topic", "orders", "literal", "write"),         # changed in the inventory: removed
           A("User:other", "topic", "x", "literal", "read"),             # not kops's: untouched
           A("User:ci", "group", "g", "literal", "read")}                # a listed user without acls: removed
    plan = acls.diff_acls(want, now, {"User:app", "User:ci"})
    assert plan.add == [A("User:app", "group", "billing", "literal", "read")]
    assert sorted(plan.remove) == sorted([A("User:app", "topic", "orders", "literal", "write"),
                                          A("User:ci", "group", "g", "literal", "read")])
    assert plan.unchanged == 1 and plan.pending
    lines = plan.lines()
    assert "add ACL User:app allow read on group billing" in lines
    assert "remove ACL User:app allow write on topic orders" in lines
    assert not any("User:other" in ln for ln in lines)
    same = acls.diff_acls(want, want, {"User:app"})
    assert not same.pending and same.unchanged == 2
    unread = acls.diff_acls(want, None, {"User:app"})
    assert len(unread.add) == 2 and "could not be read" in unread.lines()[-1]
    assert "on topic orders-*" in A("User:app", "topic", "orders-", "prefixed", "write").describe()


def test_quota_diff_sets_changes_and_deletes_keys_of_managed_entities():
    want = {("users", "app"): {"producer_byte_rate": 2048.0}, ("clients", "rep"): {"request_percentage": 50.0}}
    now = {("users", "app"): {"producer_byte_rate": 1024.0, "consumer_byte_rate": 99.0},
           ("users", "ci"): {"producer_byte_rate": 5.0},
           ("users", "stranger"): {"producer_byte_rate": 5.0}}
    plan = acls.diff_quotas(want, now, {("users", "app"), ("users", "ci"), ("clients", "rep")})
    by = {c.entity: c for c in plan.changes}
    assert by[("users", "app")].set == {"producer_byte_rate": 2048.0}
    assert by[("users", "app")].delete == ["consumer_byte_rate"]
    assert by[("users", "ci")].delete == ["producer_byte_rate"]
    assert by[("clients", "rep")].set == {"request_percentage": 50.0}
    assert ("users", "stranger") not in by
    assert "quota of user app: producer_byte_rate 1024 -> 2048, consumer_byte_rate 99 -> (none)" in plan.lines()
    assert not acls.diff_quotas(want, want, set(want)).pending


def test_kafka_configs_describe_output_is_parsed():
    out = """\
Quota configs for user-principal 'app' are producer_byte_rate=1048576.0, consumer_byte_rate=2048.0
SCRAM credential configs for user-principal 'app' are SCRAM-SHA-512=iterations=4096
Quota configs for client-id 'reporting' are request_percentage=12.5
Quota configs for user-principal 'app', client-id 'x' are producer_byte_rate=1.0
Quota configs for the default user-principal are producer_byte_rate=5.0
"""
    assert acls.parse_quotas(out) == {("users", "app"): {"producer_byte_rate": 1048576.0,
                                                         "consumer_byte_rate": 2048.0},
                                      ("clients", "reporting"): {"request_percentage": 12.5}}


def test_bindings_round_trip_through_confluent_kafka():
    import confluent_kafka  # noqa: F401 - a core dependency: its absence is a failure, never a skip
    for a in (A("User:app", "topic", "orders-", "prefixed", "write"), A("User:app", "cluster", "kafka-cluster",
                                                                         "literal", "idempotent_write", "deny"),
              A("User:app", "transactional_id", "tx", "literal", "describe", "allow", "10.0.0.1")):
        assert acls._from_binding(acls._binding(a)) == a
