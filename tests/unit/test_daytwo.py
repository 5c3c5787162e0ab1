"""Upgrades and scaling as data: the reassignment target, the throttle, the scale policy
of the planner, and the pure parts of the upgrade preflight (no engine, no JVM)."""

from __future__ import annotations

from collections import Counter

import pytest

from kops.providers.docker import DockerProvider
from kops.providers.ssh import SSHProvider

DOCKER_INFO, SSH_INFO = DockerProvider.info, SSHProvider.info

from kops.model import inventory, topology
from kops.kafka import reassign
from kops.bundle import render
from kops.plan import scale
from kops.ops import upgrade
from kops.plan import NodeObs, Observed, Plan, plan_up
from kops.kafka.reassign import Move

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"


def spread(assignment, topic=None):
    return Counter(b for (t, _p), reps in assignment.items() if topic in (None, t) for b in reps)


def leaders(assignment):
    return Counter(reps[0] for reps in assignment.values())


def cluster(topics: dict[str, tuple[int, int]], brokers: list[int]) -> dict:
    """Kafka-like round-robin placement: topic -> (partitions, rf)."""
    out, k = {}, 0
    for t, (parts, rf) in sorted(topics.items()):
        for p in range(parts):
            out[(t, p)] = [brokers[(k + p + i) % len(brokers)] for i in range(rf)]
        k += 1
    return out


# -- the target assignment ----------------------------------------------------------------------

ADD_CASES = [
    # (topics, brokers before, brokers after)
    ({"orders": (6, 2)}, [1, 2], [1, 2, 3]),
    ({"orders": (6, 3), "events": (3, 1)}, [1, 2, 3], [1, 2, 3, 4, 5]),
    ({"a": (1, 1), "b": (12, 2), "__consumer_offsets": (50, 2)}, [1, 2], [1, 2, 3]),
]


@pytest.mark.parametrize("topics,before,after", ADD_CASES)
def test_adding_brokers_spreads_every_topic_evenly(topics, before, after):
    cur = cluster(topics, before)
    new = reassign.target(cur, after)
    for (t, p), reps in new.items():
        assert len(reps) == len(cur[(t, p)]) == len(set(reps)), (t, p, reps)
        assert set(reps) <= set(after)
    for t, (parts, rf) in topics.items():
        load = spread(new, t)
        counts = [load.get(b, 0) for b in after]
        assert max(counts) - min(counts) <= 1, (t, counts)
    total = [spread(new).get(b, 0) for b in after]
    assert max(total) - min(total) <= 1 + len(topics), total   # per-topic balance, globally close


def test_adding_a_broker_moves_only_what_balance_needs():
    cur = cluster({"orders": (6, 2)}, [1, 2])          # 12 replicas on 2 brokers: 6 + 6
    new = reassign.target(cur, [1, 2, 3])
    moved = sum(len(set(new[tp]) - set(cur[tp])) for tp in cur)
    assert moved == 4                                   # 12 / 3 = 4 replicas onto broker 3, no more
    assert spread(new) == Counter({1: 4, 2: 4, 3: 4})
    assert leaders(new)[3] >= 1                          # the new broker leads some partitions
    assert max(leaders(new).values()) - min(leaders(new).get(b, 0) for b in (1, 2, 3)) <= 1


def test_unchanged_cluster_gives_no_moves():
    cur = cluster({"orders": (6, 2), "x": (3, 3)}, [1, 2, 3])
    assert reassign.moves(cur, reassign.target(cur, [1, 2, 3])) == []


def test_draining_moves_everything_off_the_leaving_brokers():
    cur = cluster({"orders": (6, 2), "logs": (4, 3)}, [1, 2, 3, 4])
    new = reassign.target(cur, [1, 2, 3])
    assert all(4 not in reps for reps in new.values())
    for tp, reps in new.items():
        assert len(reps) == len(cur[tp]) == len(set(reps))
        kept = [b for b in cur[tp] if b != 4]
        assert set(kept) <= set(reps), "replicas on staying brokers stay where they are"
    counts = [spread(new, "orders")[b] for b in (1, 2, 3)]
    assert max(counts) - min(counts) <= 1


def test_replication_factor_above_the_brokers_left_is_refused_for_every_topic():
    cur = cluster({"three": (2, 3), "also": (1, 3), "fine": (2, 2)}, [1, 2, 3])
    found = reassign.refusals(cur, [1, 2])
    assert len(found) == 2 and "topic also has replication factor 3" in found[0] and "three" in found[1]
    with pytest.raises(ValueError, match="replication factor 3"):
        reassign.target(cur, [1, 2])


def test_target_is_deterministic():
    cur = cluster({"a": (7, 2), "b": (5, 3)}, [1, 2, 3])
    assert reassign.target(cur, [1, 2, 3, 4, 5]) == reassign.target(dict(reversed(list(cur.items()))),
                                                                    [5, 4, 3, 2, 1])


# -- the throttle and the tool's file ------------------------------------------------------------

def test_throttle_configs_name_sources_as_leaders_and_new_replicas_as_followers():
    todo = [Move("orders", 0, (1, 2), (3, 2)), Move("orders", 4, (2, 1), (2, 3)), Move("x", 1, (1,), (3,))]
    brokers, topics = reassign.throttles(todo, 1000)
    assert sorted(brokers) == [1, 2, 3]
    assert brokers[1] == {"leader.replication.throttled.rate": "1000", "follower.replication.throttled.rate": "1000"}
    assert topics["orders"] == {"leader.replication.throttled.replicas": "0:1,0:2,4:2,4:1",
                                "follower.replication.throttled.replicas": "0:3,4:3"}
    assert topics["x"]["follower.replication.throttled.replicas"] == "1:3"
    assert '"replicas": [3, 2]' in reassign.reassignment_json(todo)


def test_still_moving_names_partitions_until_replicas_and_isr_match():
    todo = [Move("orders", 0, (1, 2), (3, 2))]
    assert reassign.still_moving(todo, {("orders", 0): ([1, 2, 3], [1, 2])})[0].startswith("orders-0 (replicas")
    assert reassign.still_moving(todo, {("orders", 0): ([2, 3], [2])})
    assert reassign.still_moving(todo, {("orders", 0): ([3, 2], [2, 3])}) == []


def test_move_lines_for_the_dry_run():
    assert Move("orders", 3, (1, 2), (3, 1)).line() == "orders-3: [1, 2] -> [3, 1]"


# -- the scale policy in the planner ---------------------------------------------------------------

def bundle(brokers: int):
    spec = inventory.validate({"name": "t13-unit", "kafka": {"version": "3.9.2"}, "zookeeper": {"nodes": 1},
                               "brokers": {"nodes": brokers}})
    return render.build(topology.build(spec, CLUSTER_ID))


def observed_of(b, running=True, extra=()):
    nodes = {nb.name: NodeObs(nb.name, role=nb.node.role, id=nb.node.id, exists=True, running=running,
                              state="running", files=dict(nb.sums), digest=nb.digest, where=f"c-{nb.name}")
             for nb in b}
    for name, role, nid in extra:
        nodes[name] = NodeObs(name, role=role, id=nid, exists=True, running=running, state="running",
                              where=f"c-{name}", stop_grace=120)
    return Observed(nodes=nodes)


def test_scale_change_sees_added_and_leaving_brokers():
    b3 = bundle(3)
    obs = observed_of(bundle(2))
    ch = scale.change(b3, obs, plan_up(b3, obs))
    assert ch.added == [3] and not ch.leaving
    b2 = bundle(2)
    obs = observed_of(b2, extra=[("kafka3", "broker", 3)])
    ch = scale.change(b2, obs, plan_up(b2, obs))
    assert ch.leaving == [("kafka3", 3)] and not ch.added and not ch.problems


def test_a_fresh_cluster_is_not_reassigned():
    b = bundle(3)
    assert scale.change(b, Observed(), plan_up(b, Observed())).added == []


def test_a_combined_node_leaving_is_refused_and_controllers_are_not_this_policys():
    b = bundle(2)
    obs = observed_of(b, extra=[("kafka3", "combined", 3), ("controller1", "controller", 101)])
    ch = scale.change(b, obs, plan_up(b, obs))
    assert len(ch.problems) == 1 and ch.problems[0].startswith("kafka3 is a KRaft combined node")
    assert not ch.leaving


def test_leaving_brokers_of_a_stopped_cluster_are_refused():
    b = bundle(2)
    ch = scale.change(b, observed_of(b, running=False, extra=[("kafka3", "broker", 3)]), Plan())
    assert ch.problems and "not running" in ch.problems[0]


def test_scale_down_plan_drains_then_stops_then_removes(monkeypatch):
    b = bundle(2)
    obs = observed_of(b, extra=[("kafka3", "broker", 3)])
    cur = cluster({"orders": (6, 2)}, [1, 2, 3])
    monkeypatch.setattr(reassign, "current_assignment", lambda client: cur)
    p = scale.extend(plan_up(b, obs), b, obs, client="x", info=DOCKER_INFO)
    kinds = [[a.kind for a in step] for step in p.steps]
    assert kinds[:3] == [["reassign"], ["stop"], ["remove"]]
    drain = p.steps[0][0]
    assert drain.brokers == (1, 2) and all(3 not in m.new for m in drain.moves) and drain.moves
    assert "orders-" in "\n".join(p.lines()) and p.summary["kafka3"][0] == "remove"
    assert "to drain kafka3 first" in p.lines()[0]


def test_scale_down_refuses_rf_above_brokers_left(monkeypatch):
    from kops.core.errors import InputError

    b = bundle(2)
    obs = observed_of(b, extra=[("kafka3", "broker", 3)])
    monkeypatch.setattr(reassign, "current_assignment", lambda client: cluster({"rf3": (2, 3)}, [1, 2, 3]))
    with pytest.raises(InputError) as exc:
        scale.extend(plan_up(b, obs), b, obs, client="x", info=DOCKER_INFO)
    assert exc.value.exit_code == 2 and "topic rf3 has replication factor 3" in exc.value.message


def test_scale_up_plan_moves_after_the_new_broker_is_ready(monkeypatch):
    b3 = bundle(3)
    obs = observed_of(bundle(2))
    monkeypatch.setattr(reassign, "current_assignment", lambda client: cluster({"orders": (6, 2)}, [1, 2]))
    p = scale.extend(plan_up(b3, obs), b3, obs, client="x", info=DOCKER_INFO)
    kinds = [step[0].kind for step in p.steps]
    assert kinds.index("create") < kinds.index("reassign") and kinds[-1] == "reassign"
    assert all(m.new for m in p.steps[-1][0].moves) and p.as_dict()["steps"][-1][0]["moves"]


# -- the upgrade preflight's pure parts --------------------------------------------------------------

@pytest.mark.parametrize("text,major", [('openjdk version "17.0.15" 2025-04-15', 17),
                                        ('java version "1.8.0_392"', 8), ('openjdk version "21" 2023', 21),
                                        ("sh: java: not found", None), ("", None)])
def test_java_major(text, major):
    assert upgrade.java_major(text) == major


def test_java_needed():
    assert upgrade.java_needed("4.4.0") == 17 and upgrade.java_needed("3.9.2") == 8


def test_config_keys_removed_in_the_target_are_named():
    spec = inventory.validate({"name": "t13-unit", "kafka": {"version": "3.9.2", "config": {
        "log.message.format.version": "3.0", "num.io.threads": 4}}, "zookeeper": {"nodes": 1},
        "brokers": {"nodes": 1}})
    spec_to = spec.model_copy(update={"kafka": spec.kafka.model_copy(update={"version": "4.4.0"})})
    defs_from = {"log.message.format.version": {"type": "string"}, "num.io.threads": {"type": "int"}}
    defs_to = {"num.io.threads": {"type": "int"}, "log.dirs": {"type": "string"}}
    found = upgrade.config_problems(spec_to, "3.9.2", defs_from, defs_to)
    assert len(found) == 1
    assert found[0].startswith("kafka.config.log.message.format.version: defined in Kafka 3.9.2 but not in 4.4.0")


def test_target_spec_keeps_the_running_mode():
    spec = inventory.load(preset="zk-single-kafka-multiple")
    to = upgrade.target_spec(spec, "3.9.1", None)
    assert (to.kafka.version, to.mode, to.kafka.image_ref) == ("3.9.1", "zookeeper", "kops/kafka:3.9.1")


def test_feature_argv():
    nb = next(nb for nb in bundle(1) if nb.node.is_broker)
    assert upgrade.feature_argv(nb, "kafka1:19092", "3.9.2", "zookeeper") is None
    argv = upgrade.feature_argv(nb, "kafka1:19092", "4.4.0", "kraft")
    assert argv[-3:] == ["upgrade", "--release-version", "4.4"] and upgrade.FEATURE_MAIN in argv
    assert upgrade.feature_argv(nb, "k:1", "3.9.2", "kraft")[-2:] == ["--metadata", "3.9"]


def test_finalized_levels_parse():
    text = ("Feature: kraft.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 0\t\n"
            "Feature: metadata.version\tSupportedMinVersion: 3.3-IV3\tSupportedMaxVersion: 4.4-IV0\t"
            "FinalizedVersionLevel: 4.3-IV0\tEpoch: 12\n")
    assert upgrade.finalized_levels(text) == {"kraft.version": "0", "metadata.version": "4.3-IV0"}


INV = """\
name: dev   # mine
kafka:
  version: 3.9.1      # pinned
  config:
    version: 3.9.1
brokers: {nodes: 2}
"""


def test_rewrite_version_changes_only_kafka_version():
    out = upgrade.rewrite_version(INV, "3.9.1", "3.9.2")
    assert out == INV.replace("version: 3.9.1      # pinned", "version: 3.9.2      # pinned", 1)
    assert "    version: 3.9.1" in out
    assert upgrade.rewrite_version("kafka: {version: 3.9.1}\n", "3.9.1", "3.9.2") is None
    assert upgrade.rewrite_version('kafka:\n  version: "3.9.1"\n', "3.9.1", "3.9.2") == 'kafka:\n  version: "3.9.2"\n'


def test_preflight_lines_list_every_problem():
    pf = upgrade.Preflight("3.9.2", "4.4.0", "zookeeper", problems=["a", "b"], notes=["n"])
    assert pf.lines() == ["preflight 3.9.2 -> 4.4.0 (zookeeper mode):", "  ok: n", "  problem: a", "  problem: b"]
    with pytest.raises(Exception) as exc:
        pf.raise_if_bad()
    assert exc.value.exit_code == 2 and "2 problem(s)" in exc.value.message


def test_a_broker_left_empty_by_an_unfinished_move_is_filled_on_the_next_up(monkeypatch):
    b3 = bundle(3)
    obs = observed_of(b3)
    monkeypatch.setattr(reassign, "current_assignment", lambda client: cluster({"orders": (6, 2)}, [1, 2]))
    p = scale.extend(plan_up(b3, obs), b3, obs, client="x", info=DOCKER_INFO)
    assert [s[0].kind for s in p.steps] == ["reassign"] and "hold no replica yet" in p.steps[0][0].reason
    assert "to fill broker(s) 3" in p.lines()[0]
    monkeypatch.setattr(reassign, "current_assignment", lambda client: cluster({"orders": (6, 2)}, [1, 2, 3]))
    assert scale.extend(plan_up(b3, obs), b3, obs, client="x", info=DOCKER_INFO).steps == []


# -- hostile values ----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ["3.9.2; rm -rf /", "$(id)", "4.4", "../4.4.0", "4.4.0\n", "", "latest"])
def test_upgrade_to_a_hostile_version_is_refused_before_anything(bad):
    from click.testing import CliRunner

    from kops.cli.main import cli

    r = CliRunner().invoke(cli, ["upgrade", "--preset", "kraft-single", "--to", bad])
    assert r.exit_code == 2, r.output
    assert "is not of the form X.Y.Z" in r.output


@pytest.mark.parametrize("bad", ["0", "-5", "abc", "100001"])
def test_up_throttle_is_bounded(bad):
    from click.testing import CliRunner

    from kops.cli.main import cli

    r = CliRunner().invoke(cli, ["up", "--preset", "kraft-single", "--throttle", bad, "--dry-run"])
    assert r.exit_code == 2 and "--throttle" in r.output


def test_ssh_exec_places_any_file_content_as_data(tmp_path, monkeypatch):
    """The reassignment file reaches an SSH host as one quoted word: a real sh writes it
    byte for byte, whatever it holds, and runs nothing of it."""
    import subprocess

    from kops.providers.ssh import SSHProvider

    spec = inventory.load(preset="ssh-kraft-three-hosts")
    prov = SSHProvider.__new__(SSHProvider)
    prov._bundle = render.build(topology.build(spec, CLUSTER_ID))
    ran = []
    monkeypatch.setattr(prov, "run", lambda host, cmd: (ran.append(cmd) or (True, "")))
    hostile = "{\"a\": 1}'; touch " + str(tmp_path / "pwned") + "; echo '$(id) `id` \\\n\""
    target = tmp_path / "reassign.json"
    code, _ = prov.exec("kafka1", ["java", "-version"], files={str(target): hostile})
    assert code == 0 and isinstance(ran[0], str)
    subprocess.run(["sh", "-c", ran[0]], check=True)
    assert target.read_text() == hostile and not (tmp_path / "pwned").exists()
    assert ran[1] == ["runuser", "-u", "kafka", "--", "java", "-version"]


def test_brokers_left_out_of_the_inventory_are_refused_by_a_provider_that_cannot_see_them(monkeypatch):
    """A provider that sees only the inventory's nodes: Kafka's own broker list tells. (SSH
    sees them now, from kops's record of the nodes it placed: tests/unit/test_placed_nodes.py.)"""
    from dataclasses import replace

    from kops.kafka import health
    from kops.core.errors import InputError

    assert SSH_INFO.sees_unlisted_nodes
    blind = replace(SSH_INFO, sees_unlisted_nodes=False)
    b = render.build(topology.build(inventory.load(preset="ssh-zk-three-hosts"), CLUSTER_ID))
    obs = observed_of(b)
    monkeypatch.setattr(health, "kafka_health", lambda client, timeout=5: health.KafkaHealth(
        brokers={1: "a:1", 2: "b:1", 3: "c:1", 4: "d:1"}))
    with pytest.raises(InputError) as exc:
        scale.extend(plan_up(b, obs), b, obs, client="x", info=blind)
    assert "broker id(s) 4 are registered" in exc.value.message and exc.value.exit_code == 2
    monkeypatch.setattr(health, "kafka_health", lambda client, timeout=5: health.KafkaHealth(
        brokers={1: "a:1", 2: "b:1", 3: "c:1"}))
    monkeypatch.setattr(reassign, "current_assignment", lambda client: cluster({"orders": (6, 3)}, [1, 2, 3]))
    assert scale.extend(plan_up(b, obs), b, obs, client="x", info=blind).steps == []
