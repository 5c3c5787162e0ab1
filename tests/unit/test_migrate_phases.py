"""The ZooKeeper-to-KRaft migration's pure parts (kops.migrate): the KRaft inventory made
from a ZooKeeper one, what every node has in every phase (rendered server.properties),
the plan of each phase against the state the previous one leaves, the refusals, and the
checkpoint's words (status, guard, rollback window)."""

from __future__ import annotations

import json

import pytest

from kops.model import inventory as speclib
from kops.ops import migrate
from kops.core import paths
from kops.core.errors import InputError
from kops.plan import Observed, plan_up

from specs import CID, props

ZK = """
name: mig
profile: fast
kafka: {version: 3.9.2, config: {min.insync.replicas: 2, zookeeper.session.timeout.ms: 12000}}
zookeeper: {nodes: 3}
brokers: {nodes: 3}
nodes: {zoo2: {heap: 96m}, kafka2: {config: {num.io.threads: 3}}}
"""

SSH = """
name: vms
driver: ssh
kafka: {version: 3.9.2}
hosts:
  vm1: {address: 10.0.0.11, roles: [zookeeper, broker]}
  vm2: {address: 10.0.0.12, roles: [zookeeper, broker]}
  vm3: {address: 10.0.0.13, roles: [zookeeper, broker]}
"""


def spec(text=ZK):
    return speclib.loads(text, "t")


def server(view, node):
    return props(view.bundle.nodes[node].files["/etc/kafka/server.properties"])


@pytest.fixture(autouse=True)
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("KOPS_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_kraft_inventory_keeps_brokers_and_drops_what_only_zookeeper_had():
    kr = migrate.kraft_spec(spec())
    assert kr.mode == "kraft" and kr.controller_nodes == 3 and kr.zookeeper is None
    assert "zookeeper.session.timeout.ms" not in kr.kafka.config and kr.kafka.config["min.insync.replicas"] == 2
    assert set(kr.nodes) == {"kafka2"}, "the ZooKeeper nodes' overrides go, the brokers' stay"
    assert migrate.kraft_spec(spec(), 1).controller_nodes == 1
    text = migrate.inventory_text(kr)
    again = speclib.loads(text, "rewritten")
    assert again.mode == "kraft" and again.controller_nodes == 3 and again.broker_nodes == 3


def test_over_ssh_the_zookeeper_hosts_become_the_controller_hosts():
    kr = migrate.kraft_spec(spec(SSH))
    assert kr.controller_nodes == 3
    assert all(h.roles == ["controller", "broker"] for h in kr.hosts.values())


@pytest.mark.parametrize("text, controllers, fragment", [
    (ZK.replace("3.9.2", "3.8.1"), None, "upgrade to 3.9.2 first"),
    ("name: k\nkafka: {version: 3.9.2, mode: kraft}\nbrokers: {nodes: 3}\n", None, "only a ZooKeeper-mode cluster"),
    (ZK, 2, "odd number of voters"),
    (ZK + "security: {tls: true}\n", None, "TLS/SASL cluster is not supported yet"),
], ids=["not-3.9", "kraft-already", "even-quorum", "tls"])
def test_what_cannot_be_migrated_is_refused_before_anything(text, controllers, fragment):
    with pytest.raises(InputError) as ei:
        migrate.check_source(spec(text), controllers)
    assert fragment in ei.value.message and "nothing was changed" in ei.value.hint


def test_each_phase_gives_each_node_its_settings():
    zk, kr = spec(), migrate.kraft_spec(spec())
    v = migrate.phase_topology(zk, kr, CID, "controllers")
    c1, k1 = server(v, "controller1"), server(v, "kafka1")
    assert c1["process.roles"] == "controller" and c1["node.id"] == "101"
    assert c1["zookeeper.metadata.migration.enable"] == "true" and c1["zookeeper.connect"] == "zoo1:2181,zoo2:2182,zoo3:2183"
    assert "INTERNAL:PLAINTEXT" in c1["listener.security.protocol.map"] and c1["inter.broker.listener.name"] == "INTERNAL"
    assert c1["controller.quorum.voters"] == "101@controller1:19192,102@controller2:19193,103@controller3:19194"
    assert "zookeeper.metadata.migration.enable" not in k1 and k1["broker.id"] == "1", "brokers untouched"
    plain = migrate.phase_topology(zk, kr, CID, "controllers").bundle.nodes["kafka1"].digest
    from kops.bundle import render
    from kops.model import topology

    assert plain == render.build(topology.build(zk, "n/a")).nodes["kafka1"].digest, "no broker roll in phase 1"

    v = migrate.phase_topology(zk, kr, CID, "brokers-migrating")
    k2 = server(v, "kafka2")
    assert k2["broker.id"] == "2" and k2["zookeeper.metadata.migration.enable"] == "true"
    assert k2["controller.quorum.voters"] == c1["controller.quorum.voters"]
    assert k2["controller.listener.names"] == "CONTROLLER" and k2["inter.broker.protocol.version"] == "3.9"
    assert k2["listener.security.protocol.map"].endswith(",CONTROLLER:PLAINTEXT") and k2["num.io.threads"] == "3"
    assert list(k2).count("listener.security.protocol.map") == 1
    text = v.bundle.nodes["kafka2"].files["/etc/kafka/server.properties"]
    assert text.count("listener.security.protocol.map=") == 1, "one value for each key"

    v = migrate.phase_topology(zk, kr, CID, "brokers-kraft")
    k3 = server(v, "kafka3")
    assert k3["process.roles"] == "broker" and k3["node.id"] == "3" and "broker.id" not in k3
    assert "zookeeper.connect" not in k3 and "zookeeper.metadata.migration.enable" not in k3
    assert server(v, "controller2")["zookeeper.metadata.migration.enable"] == "true", "controllers still migrating"
    assert v.bundle.nodes["kafka3"].format_argv is not None and v.topo.mode == "kraft"

    v = migrate.phase_topology(zk, kr, CID, "controllers-kraft")
    assert "zookeeper.metadata.migration.enable" not in server(v, "controller3")
    assert "zoo1" in v.bundle.nodes, "ZooKeeper runs until the last phase"
    end = migrate.phase_topology(zk, kr, CID, "zookeeper-stopped")
    assert "zoo1" not in end.bundle.nodes and end.bundle.nodes["kafka1"].digest == v.bundle.nodes["kafka1"].digest


def test_rollback_brokers_drop_their_metadata_log_before_they_start():
    zk, kr = spec(), migrate.kraft_spec(spec())
    v = migrate.phase_topology(zk, kr, CID, "controllers", rollback=True)
    assert not v.topo.controllers
    nb = v.bundle.nodes["kafka1"]
    assert ["/bin/rm", "-rf", "/var/lib/kafka/data/__cluster_metadata-0"] in nb.prestart
    assert "__cluster_metadata-0" in " ".join(nb.container["command"])
    assert "zookeeper.metadata.migration.enable" not in server(v, "kafka1")


def test_controllers_metrics_ports_do_not_take_zookeepers_while_it_runs():
    zk = spec(ZK + "metrics: {prometheus: true}\n")
    kr = migrate.kraft_spec(zk)
    v = migrate.phase_topology(zk, kr, CID, "controllers")
    ports = [n.ports["metrics"] for n in v.topo.nodes]
    assert len(ports) == len(set(ports)), ports


def test_every_phase_is_planned_against_what_the_one_before_leaves():
    zk, kr = spec(), migrate.kraft_spec(spec())
    from kops.bundle import render
    from kops.model import topology

    running = migrate.assumed(render.build(topology.build(zk, "n/a")))
    kinds = []
    observed = running
    for p in ("controllers", "brokers-migrating", "brokers-kraft", "controllers-kraft"):
        v = migrate.phase_topology(zk, kr, CID, p)
        plan = plan_up(v.bundle, observed)
        kinds.append(sorted({(a.kind, a.node) for a in plan.actions if a.kind != "wait"}))
        observed = migrate.assumed(v.bundle, observed)
    assert kinds[0] == sorted({(k, f"controller{i}") for k in ("create", "format") for i in (1, 2, 3)})
    assert kinds[1] == [("reconfigure", f"kafka{i}") for i in (1, 2, 3)]
    assert kinds[2] == [("reconfigure", f"kafka{i}") for i in (1, 2, 3)]
    assert kinds[3] == [("reconfigure", f"controller{i}") for i in (1, 2, 3)]
    v = migrate.phase_topology(zk, kr, CID, "brokers-migrating")
    plan = plan_up(v.bundle, migrate.assumed(migrate.phase_topology(zk, kr, CID, "controllers").bundle))
    order = [a.kind for a in plan.actions]
    assert order[:2] == ["wait", "reconfigure"] and plan.actions[0].gate == "safe-to-stop", "the roll is gated"


def _record(state_dir, **cp):
    path = state_dir / "clusters" / "mig" / "migration.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(cp))


def test_a_migration_under_way_blocks_up_and_says_where_it_is(state_dir):
    assert migrate.describe("mig")["state"] == "not-started"
    migrate.guard(spec())   # nothing recorded: no refusal
    _record(state_dir, state="migrating", done="brokers-migrating", current="metadata-migrated", controllers=3,
            cluster_id=CID, history=[{"phase": "controllers", "seconds": 11.0}])
    with pytest.raises(InputError) as ei:
        migrate.guard(spec(), " -i mig.yaml")
    assert "phase: metadata-migrated" in ei.value.message and "--rollback" in ei.value.hint
    d = migrate.describe("mig")
    assert [r["status"] for r in d["phases"]][:4] == ["done", "done", "under way (interrupted or failed)", "to do"]
    assert d["rollback_possible"] and d["phases"][0]["seconds"] == 11.0
    _record(state_dir, state="migrating", done="brokers-kraft", current="controllers-kraft", controllers=3,
            cluster_id=CID)
    assert not migrate.describe("mig")["rollback_possible"]
    with pytest.raises(InputError) as ei:
        migrate.rollback(spec(), provider=None)
    assert "cannot go back to ZooKeeper" in ei.value.message
    _record(state_dir, state="migrated", done="zookeeper-stopped", controllers=3, cluster_id=CID)
    migrate.guard(spec())   # finished: `up` of the KRaft inventory is fine
    with pytest.raises(InputError):
        migrate.rollback(spec(), provider=None)


def test_a_broken_checkpoint_is_an_error_not_a_fresh_start(state_dir):
    path = state_dir / "clusters" / "mig" / "migration.json"
    path.parent.mkdir(parents=True)
    path.write_text("{half")
    with pytest.raises(Exception) as ei:
        migrate.guard(spec())
    assert "migration record cannot be read" in str(ei.value)
    assert paths.state_dir() == state_dir
    assert Observed().nodes == {}


class _Observer:
    """A provider that only observes: every node of ``bundle`` running as rendered."""

    def __init__(self, bundle):
        self.bundle = bundle

    def observe(self, bundle):
        return migrate.assumed(self.bundle)


def test_a_stopped_rollback_runs_again_from_the_step_it_stopped_at(state_dir):
    zk = spec()
    kr = migrate.kraft_spec(zk)
    prov = _Observer(migrate.phase_topology(zk, kr, CID, "brokers-migrating").bundle)
    record = dict(state="migrating", cluster="mig", done="metadata-migrated", controllers=3, cluster_id=CID,
                  zk_inventory=zk.model_dump(mode="json", exclude_unset=True, by_alias=True))
    _record(state_dir, **record, current="brokers-kraft")
    steps = [r["phase"] for r in migrate.rollback(zk, prov, dry_run=True).phases]
    assert steps == ["brokers-back-to-migration", "controllers-removed", "brokers-zookeeper", "converged"]
    # stopped at the znodes, its controllers removed: the brokers' step is not run again (it
    # would bring the controllers back, a new empty quorum the migrating brokers fail on)
    _record(state_dir, **record, current="rollback", rollback_from=4, rollback_done=["brokers-back-to-migration"],
            error="rollback, controllers-removed: zoo1 is not running")
    steps = [r["phase"] for r in migrate.rollback(zk, prov, dry_run=True).phases]
    assert steps == ["controllers-removed", "brokers-zookeeper", "converged"]
    # and the migration does not "resume" from a rollback under way: exit 2, the way on named
    with pytest.raises(InputError) as ei:
        migrate.migrate(zk, provider=None)
    assert "rollback of this migration to ZooKeeper is under way" in ei.value.message
    assert "--rollback finishes the rollback" in ei.value.hint
