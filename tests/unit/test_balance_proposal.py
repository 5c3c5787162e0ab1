"""`kops balance` as data: the proposal (fewest moves, leaders evened, leader-only
elections), the spread, the log-dir sizes, the Rebalance step and `up`'s
brokers.rebalance: auto (no engine, no JVM)."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from kops.bundle import render
from kops.kafka import balance
from kops.model import inventory, topology
from kops.plan import NodeObs, Observed, plan_up
from kops.plan import scale
from kops.providers.docker import DockerProvider

CLUSTER_ID = "MkU3OEVBNTcwNTJENDM2Qk"


def applied(current, prop):
    out = {tp: list(r) for tp, r in current.items()}
    for m in prop.moves:
        out[(m.topic, m.partition)] = list(m.new)
    return out


def lead_of(assignment):
    return {tp: r[0] for tp, r in assignment.items()}


def test_all_leaders_on_one_broker_is_evened_by_reordering_only():
    cur = {("a", p): [1, 2, 3] for p in range(6)} | {("b", p): [1, 2, 3] for p in range(3)}
    prop = balance.propose(cur, lead_of(cur), [1, 2, 3])
    assert prop.data_moves == 0 and prop.moves and not prop.elections
    assert all(sorted(m.old) == sorted(m.new) for m in prop.moves)
    assert {b: c["leaders"] for b, c in prop.after.items()} == {1: 3, 2: 3, 3: 3}
    # per topic too: topic a's 6 leaders 2 each, b's 3 one each
    new = applied(cur, prop)
    for t, want in (("a", 2), ("b", 1)):
        assert set(Counter(r[0] for (tt, _), r in new.items() if tt == t).values()) == {want}
    assert "   (leader order only)" in prop.lines()[0]
    assert balance.skew(prop.before)["leaders"] == {"max_min": 9, "max_mean": 3.0}
    assert balance.skew(prop.after)["leaders"]["max_min"] == 0


def test_replicas_are_evened_with_the_fewest_moves():
    cur = {("t", p): [1, 2] for p in range(6)}       # 6, 6, 0 replicas
    prop = balance.propose(cur, lead_of(cur), [1, 2, 3])
    new = applied(cur, prop)
    moved = sum(len(set(r) - set(cur[tp])) for tp, r in new.items())
    assert moved == 4          # 12 replicas over 3 brokers: 4 must reach broker 3, no more
    assert {b: c["replicas"] for b, c in prop.after.items()} == {1: 4, 2: 4, 3: 4}
    assert balance.skew(prop.after)["leaders"]["max_min"] == 0
    assert all(len(set(r)) == 2 for r in new.values())
    assert prop.lines()[0].startswith("t-0: [1, 2] -> [")


def test_a_balanced_cluster_has_an_empty_proposal():
    cur = {("t", p): [[1, 2, 3], [2, 3, 1], [3, 1, 2]][p % 3] for p in range(9)}
    prop = balance.propose(cur, lead_of(cur), [1, 2, 3])
    assert prop.balanced and prop.lines() == [] and prop.as_dict() == {"moves": [], "elections": []}


def test_leaders_away_from_their_preferred_replica_need_an_election_only():
    cur = {("t", p): [[1, 2, 3], [2, 3, 1], [3, 1, 2]][p % 3] for p in range(9)}
    now = {tp: 1 for tp in cur}                   # broker 1 took every lead (2 and 3 restarted)
    now[("t", 4)] = -1                            # offline: nothing to elect
    prop = balance.propose(cur, now, [1, 2, 3])
    assert not prop.moves
    assert prop.elections == [("t", p) for p in (1, 2, 5, 7, 8)]
    assert prop.lines()[0] == "t-1: elect the preferred leader"
    assert prop.before[1]["leaders"] == 8 and prop.after[1]["leaders"] == 3


@pytest.mark.parametrize("seed", range(30))
def test_random_clusters_end_even_and_a_second_proposal_is_empty(seed):
    rnd = random.Random(seed)
    brokers = list(range(1, rnd.randint(3, 6) + 1))
    cur = {}
    for t in range(rnd.randint(1, 5)):
        rf = rnd.randint(1, min(3, len(brokers)))
        skewed = rnd.sample(brokers, rf)
        for p in range(rnd.randint(1, 12)):
            cur[(f"t{t}", p)] = list(skewed) if rnd.random() < 0.7 else rnd.sample(brokers, rf)
    prop = balance.propose(cur, lead_of(cur), brokers)
    new = applied(cur, prop)
    for tp, r in new.items():
        assert len(r) == len(set(r)) == len(cur[tp]) and set(r) <= set(brokers)
    after = balance.skew(prop.after)
    assert after["leaders"]["max_min"] <= max(1, balance.skew(prop.before)["leaders"]["max_min"])
    assert after["replicas"]["max_min"] <= max(1, balance.skew(prop.before)["replicas"]["max_min"])
    again = balance.propose(new, lead_of(new), brokers)
    assert again.balanced, again.lines()


def test_random_clusters_of_replicated_topics_spread_leaders_within_one():
    for seed in range(20):
        rnd = random.Random(seed)
        brokers = [1, 2, 3, 4]
        cur = {}
        for t in range(3):
            for p in range(rnd.randint(4, 16)):
                cur[(f"t{t}", p)] = [1, 2, 3]
        prop = balance.propose(cur, lead_of(cur), brokers)
        assert balance.skew(prop.after)["leaders"]["max_min"] <= 1, (seed, prop.after)
        assert balance.skew(prop.after)["replicas"]["max_min"] <= 1, (seed, prop.after)
        new = applied(cur, prop)
        for t in ("t0", "t1", "t2"):   # each topic even on its own too
            per = Counter(b for (tt, _p), r in new.items() if tt == t for b in r)
            assert max(per[b] for b in brokers) - min(per[b] for b in brokers) <= 1, (seed, t, per)


def test_spread_and_the_threshold():
    assert balance.spread({1: 4, 2: 2, 3: 0}) == {"max_min": 4, "max_mean": 2.0}
    assert balance.spread({}) == {"max_min": 0, "max_mean": 1.0}
    even = {1: {"replicas": 10, "leaders": 4}, 2: {"replicas": 10, "leaders": 3}, 3: {"replicas": 10, "leaders": 3}}
    assert not balance.beyond(balance.skew(even), even)
    off = {**even, 3: {"replicas": 10, "leaders": 0}}
    assert balance.beyond(balance.skew(off), off)
    big = {b: {"replicas": 100 + b, "leaders": 40} for b in (1, 2, 3)}   # spread 2 of a mean of 102: within
    assert not balance.beyond(balance.skew(big), big)


def test_log_dir_sizes_and_ongoing_moves_are_parsed():
    text = json.dumps({"version": 1, "brokers": [
        {"broker": 2, "logDirs": [{"logDir": "/d", "error": None, "partitions": [
            {"partition": "t-0", "size": 100, "offsetLag": 0, "isFuture": False},
            {"partition": "t-1", "size": 50, "offsetLag": 0, "isFuture": True}]}]},
        {"broker": 1, "logDirs": [{"logDir": "/d", "error": None, "partitions": []}]}]})
    assert balance.sizes(text) == {1: 0, 2: 100}
    listed = ("Current partition reassignments:\nt-0: replicas: 1,2,3. adding: 3. removing: .\n"
              "orders-12: replicas: 2,3,4,1. adding: 4. removing: 1.\n")
    assert balance.ongoing(listed) == ["t-0", "orders-12"]
    assert balance.ongoing("No partition reassignments found.\n") == []
    assert balance.ongoing_targets(listed) == {("t", 0): [1, 2, 3], ("orders", 12): [2, 3, 4]}
    assert balance.ongoing_targets("my-topic-3: replicas: 3,1,2. adding: 3. removing: 2.") == {("my-topic", 3): [3, 1]}


# -- the step and `up` ---------------------------------------------------------------------------------

def bundle(rebalance: str = "off"):
    spec = inventory.validate({"name": "bal-unit", "kafka": {"version": "3.9.2"}, "zookeeper": {"nodes": 1},
                               "brokers": {"nodes": 3, "rebalance": rebalance}})
    return render.build(topology.build(spec, CLUSTER_ID))


def observed_of(b):
    return Observed(nodes={nb.name: NodeObs(nb.name, role=nb.node.role, id=nb.node.id, exists=True, running=True,
                                            state="running", files=dict(nb.sums), digest=nb.digest,
                                            where=f"c-{nb.name}") for nb in b})


SKEWED = {("t", p): [1, 2] for p in range(6)}


def test_the_rebalance_field_is_validated():
    from kops.model.spec import SpecError

    assert bundle().topo.spec.brokers.rebalance == "off"
    with pytest.raises((SpecError, ValueError)) as exc:
        bundle("yes")
    assert "rebalance" in str(exc.value)


def test_up_appends_the_balance_step_when_auto_and_unbalanced(monkeypatch):
    monkeypatch.setattr(balance, "read", lambda client: (SKEWED, lead_of(SKEWED)))
    b = bundle("auto")
    obs = observed_of(b)
    p = scale.extend(plan_up(b, obs), b, obs, client="x", info=DockerProvider.info)
    assert [s[0].kind for s in p.steps] == ["balance"] and p.changes
    step = p.steps[0][0]
    assert isinstance(step, scale.Reassign) and step.brokers == (1, 2, 3) and step.moves
    text = "\n".join(p.lines())
    assert "balance brokers [1, 2, 3] (brokers.rebalance: auto; replicas spread 6, leaders spread 6)" in text
    assert "t-0: [1, 2] -> [" in text
    d = p.as_dict()["steps"][0][0]
    assert d["kind"] == "balance" and d["moves"] and d["elections"] == []


def test_up_leaves_a_balanced_cluster_or_rebalance_off_alone(monkeypatch):
    even = {("t", p): [[1, 2, 3], [2, 3, 1], [3, 1, 2]][p % 3] for p in range(9)}
    monkeypatch.setattr(balance, "read", lambda client: (even, lead_of(even)))
    b = bundle("auto")
    obs = observed_of(b)
    assert scale.extend(plan_up(b, obs), b, obs, client="x", info=DockerProvider.info).steps == []

    def boom(client):
        raise AssertionError("rebalance: off reads nothing")

    monkeypatch.setattr(balance, "read", boom)
    b = bundle("off")
    assert scale.extend(plan_up(b, observed_of(b)), b, observed_of(b), client="x",
                        info=DockerProvider.info).steps == []


def test_a_fresh_cluster_is_not_balanced_by_up(monkeypatch):
    monkeypatch.setattr(balance, "read", lambda client: (_ for _ in ()).throw(AssertionError("not read")))
    b = bundle("auto")
    assert [s[0].kind for s in scale.extend(plan_up(b, Observed()), b, Observed(), client="x",
                                            info=DockerProvider.info).steps][-1] == "wait"


def test_the_debug_bundle_and_balance_share_the_log_dirs_runner():
    from kops.ops import debug

    b = bundle()
    obs = observed_of(b)
    calls = []

    class Prov:
        def exec(self, node, argv, timeout=None):
            calls.append((node, argv))
            return 0, 'noise\n{"version":1,"brokers":[{"broker":1,"logDirs":[]}]}\n'

    missing: list[str] = []
    out = debug._log_dirs(missing, Prov(), b.topo, b, obs)
    assert missing == [] and json.loads(out)["brokers"][0]["broker"] == 1
    assert calls[0][0] == "kafka1" and balance.LOG_DIRS_MAIN in calls[0][1]
    assert balance.sizes(balance.log_dirs(Prov(), b.topo, b, obs)) == {1: 0}

    class Failing:
        def exec(self, node, argv, timeout=None):
            return 1, "boom"

    missing = []
    assert debug._log_dirs(missing, Failing(), b.topo, b, obs) is None
    assert missing and "LogDirsCommand exit code 1" in missing[0]
