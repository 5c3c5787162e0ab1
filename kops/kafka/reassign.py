"""Partition reassignment when brokers are added or drained: the target as a pure function,
then the throttled move through Kafka, awaited with a deadline.

* :func:`target` computes, from the current replica lists and the brokers that stay, a new
  assignment: every replica off the leaving brokers, each topic's replicas spread evenly
  over the brokers (per topic, ties broken by the whole cluster's load), as few replicas
  moved as that allows, and the preferred leaders (first replicas) of the partitions that
  move spread so that every broker leads its share. Pure data in, data out: unit-tested.
* :func:`throttles` gives the replication throttle Kafka's own tool would set: the rate on
  every broker that sends or receives, the moving partitions' existing replicas as
  ``leader.replication.throttled.replicas`` and the new ones as
  ``follower.replication.throttled.replicas`` of their topics.
* :func:`execute` sets the throttle (Admin API), starts the reassignment with Kafka's own
  ``ReassignPartitionsCommand`` run in one node through the provider (confluent-kafka has
  no AlterPartitionReassignments), waits until every moving partition has exactly its new
  replicas, all in sync (the deadline names the partitions still moving), elects the
  preferred leaders, and removes the throttle, also when the wait fails.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import TimeoutError as FutureTimeout
from collections import Counter
from dataclasses import dataclass

from kops.core import wait as waiting
from kops.core.errors import InputError, KopsError, NotYet
from kops.bundle.render import CLIENT_PROPERTIES
from kops.kafka import health
from kops.kafka.health import _quiet_conf
from kops.kafka.health import kafka_error

TP = tuple[str, int]
TOOL_MAIN = "org.apache.kafka.tools.reassign.ReassignPartitionsCommand"
DEFAULT_RATE = 50 * 1024 * 1024     # bytes/s per broker while partitions move
JSON_PATH = "/tmp/kops-reassignment.json"
BROKER_THROTTLES = ("leader.replication.throttled.rate", "follower.replication.throttled.rate")
TOPIC_THROTTLES = ("leader.replication.throttled.replicas", "follower.replication.throttled.replicas")


@dataclass(frozen=True)
class Move:
    topic: str
    partition: int
    old: tuple[int, ...]
    new: tuple[int, ...]

    def line(self) -> str:
        return f"{self.topic}-{self.partition}: {list(self.old)} -> {list(self.new)}"


def skipped(topic: str) -> bool:
    """kops's own throwaway topics are not moved (they are deleted after each check)."""
    return topic.startswith("__kops")


def refusals(current: dict[TP, list[int]], brokers: list[int]) -> list[str]:
    """Why ``current`` cannot be placed on ``brokers``: topics whose replication factor
    exceeds the brokers left (every such topic, once)."""
    out = {}
    for (topic, _p), replicas in sorted(current.items()):
        if len(replicas) > len(brokers) and topic not in out:
            out[topic] = (f"topic {topic} has replication factor {len(replicas)}, more than the "
                          f"{len(brokers)} broker(s) left ({', '.join(map(str, sorted(brokers)))})")
    return list(out.values())


def target(current: dict[TP, list[int]], brokers: list[int]) -> dict[TP, list[int]]:
    """The new replica list of every partition (unchanged ones included)."""
    brokers = sorted(set(brokers))
    if not brokers:
        raise ValueError("no brokers to place replicas on")
    bad = refusals(current, brokers)
    if bad:
        raise ValueError("; ".join(bad))
    keep = set(brokers)
    result: dict[TP, list[int]] = {}
    total: Counter = Counter()        # the whole cluster's replicas per broker, as placed so far
    by_topic: dict[str, list[TP]] = {}
    for tp in sorted(current):
        by_topic.setdefault(tp[0], []).append(tp)
    for tps in by_topic.values():     # topics in name order, partitions in number order
        for tp in tps:
            result[tp] = [b for b in current[tp] if b in keep]
    total.update(b for reps in result.values() for b in reps)

    for topic, tps in by_topic.items():
        load: Counter = Counter({b: 0 for b in brokers})
        load.update(b for tp in tps for b in result[tp])

        def least(exclude: list[int]) -> int:
            return min((b for b in brokers if b not in exclude), key=lambda b: (load[b], total[b], b))

        # 1. replicas that lost their broker go to the least loaded broker the partition lacks
        for tp in tps:
            while len(result[tp]) < len(current[tp]):
                b = least(result[tp])
                result[tp].append(b)
                load[b] += 1
                total[b] += 1
        # 2. even out: one replica at a time from the most to the least loaded broker,
        #    followers before leaders, so that as few partitions as possible change leader
        replicas = sum(load.values())
        hi = -(-replicas // len(brokers))
        lo = replicas // len(brokers)
        while True:
            src = max(brokers, key=lambda b: (load[b], total[b], -b))
            dst = min(brokers, key=lambda b: (load[b], total[b], b))
            if load[src] <= hi and load[dst] >= lo:
                break
            if load[src] - load[dst] <= 1:
                break
            candidates = [tp for tp in tps if src in result[tp] and dst not in result[tp]]
            if not candidates:
                break
            candidates.sort(key=lambda tp: (result[tp][0] == src, result[tp] != current[tp], tp[1]))
            tp = candidates[0]
            result[tp] = [dst if b == src else b for b in result[tp]]
            load[src] -= 1
            load[dst] += 1
            total[src] -= 1
            total[dst] += 1

    # 3. preferred leaders, per topic (its partitions' load is what spreads) with the whole
    #    cluster's count as the tie-break: a moved partition keeps its leader unless that
    #    broker already leads its share of the topic or of the cluster; then the replica
    #    leading the fewest takes the lead. Unmoved partitions keep theirs (no churn).
    leaders: Counter = Counter({b: 0 for b in brokers})
    changed = {tp for tp in result if sorted(result[tp]) != sorted(current[tp])}
    for tp in result:
        if tp not in changed and result[tp]:
            leaders[result[tp][0]] += 1
    share = -(-len(result) // len(brokers))
    for tps in by_topic.values():
        mine: Counter = Counter({b: 0 for b in brokers})
        for tp in tps:
            if tp not in changed and result[tp]:
                mine[result[tp][0]] += 1
        topic_share = -(-len(tps) // len(brokers))
        for tp in tps:
            if tp not in changed:
                continue
            reps = result[tp]
            first = current[tp][0] if current[tp] and current[tp][0] in reps else reps[0]
            if mine[first] >= topic_share or leaders[first] >= share:
                first = min(reps, key=lambda b: (mine[b], leaders[b], reps.index(b)))
            result[tp] = [first] + [b for b in reps if b != first]
            mine[first] += 1
            leaders[first] += 1
    return result


def moves(current: dict[TP, list[int]], new: dict[TP, list[int]]) -> list[Move]:
    """The partitions whose replica list changes, in topic/partition order."""
    return [Move(t, p, tuple(current[(t, p)]), tuple(new[(t, p)]))
            for (t, p) in sorted(new) if list(new[(t, p)]) != list(current[(t, p)])]


def throttles(todo: list[Move], rate: int) -> tuple[dict[int, dict[str, str]], dict[str, dict[str, str]]]:
    """(broker id -> configs, topic -> configs) of the replication throttle for ``todo``."""
    brokers: dict[int, dict[str, str]] = {}
    leader: dict[str, list[str]] = {}
    follower: dict[str, list[str]] = {}
    for m in todo:
        for b in sorted(set(m.old) | set(m.new)):
            brokers[b] = {k: str(rate) for k in BROKER_THROTTLES}
        leader.setdefault(m.topic, []).extend(f"{m.partition}:{b}" for b in m.old)
        follower.setdefault(m.topic, []).extend(f"{m.partition}:{b}" for b in m.new if b not in m.old)
    topics = {t: {TOPIC_THROTTLES[0]: ",".join(leader[t]), TOPIC_THROTTLES[1]: ",".join(follower.get(t, []))}
              for t in sorted(leader)}
    return dict(sorted(brokers.items())), topics


def reassignment_json(todo: list[Move]) -> str:
    """The file Kafka's ReassignPartitionsCommand reads (--reassignment-json-file)."""
    return json.dumps({"version": 1, "partitions": [
        {"topic": m.topic, "partition": m.partition, "replicas": list(m.new)} for m in todo]})


def still_moving(todo: list[Move], parts: dict[TP, tuple[list[int], list[int]]]) -> list[str]:
    """The moves not finished: replicas other than the new ones, or not all in sync.
    ``parts``: (topic, partition) -> (replicas, isr) as the metadata lists them."""
    out = []
    for m in todo:
        replicas, isr = parts.get((m.topic, m.partition), ([], []))
        if sorted(replicas) != sorted(m.new) or not set(m.new) <= set(isr):
            out.append(f"{m.topic}-{m.partition} (replicas {replicas}, in sync {isr}, target {list(m.new)})")
    return out


# -- against a cluster ------------------------------------------------------------------------------

def current_assignment(client) -> dict[TP, list[int]]:

    return {(t, p): list(replicas) for t, p, replicas, _isr, _leader in health.partitions(client, timeout=10)
            if not skipped(t)}


def plan_for(client, brokers: list[int]) -> tuple[list[Move], dict[TP, list[int]]]:
    """(moves, current) to place the cluster's partitions on ``brokers``; InputError (exit 2,
    nothing changed) when a topic's replication factor exceeds them."""

    try:
        current = current_assignment(client)
    except health.NotYet as exc:
        raise KopsError(f"cannot read the partitions' replicas: {exc}") from exc
    bad = refusals(current, brokers)
    if bad:
        raise InputError("the brokers left cannot hold every replica; nothing was changed:\n  - "
                         + "\n  - ".join(bad),
                         hint="lower those topics' replication factor first (kafka-reassign-partitions), "
                              "or keep more brokers")
    return moves(current, target(current, brokers)), current


def _admin(client):
    from confluent_kafka.admin import AdminClient


    return AdminClient(_quiet_conf(client, 10))


def _alter(client, resources: list, what: str) -> None:
    from confluent_kafka import KafkaException


    if not resources:
        return
    admin = _admin(client)
    topics = [r for r in resources if r.restype_int != 4]
    # librdkafka takes one BROKER resource per call
    batches = [[r] for r in resources if r.restype_int == 4] + ([topics] if topics else [])
    try:
        for batch in batches:
            for fut in admin.incremental_alter_configs(batch, request_timeout=30).values():
                fut.result(timeout=40)
    except KafkaException as exc:
        raise KopsError(f"could not {what}: {kafka_error(exc)}") from exc


def set_throttle(client, todo: list[Move], rate: int) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    bcfg, tcfg = throttles(todo, rate)
    res = [ConfigResource("BROKER", str(b), incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in cfg.items()])
        for b, cfg in bcfg.items()]
    res += [ConfigResource("TOPIC", t, incremental_configs=[
        ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in cfg.items() if v])
        for t, cfg in tcfg.items()]
    _alter(client, res, "set the replication throttle")


def clear_throttle(client, todo: list[Move], brokers: list[int]) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource

    res = [ConfigResource("BROKER", str(b), incremental_configs=[
        ConfigEntry(k, "", incremental_operation=AlterConfigOpType.DELETE) for k in BROKER_THROTTLES])
        for b in sorted(brokers)]
    res += [ConfigResource("TOPIC", t, incremental_configs=[
        ConfigEntry(k, "", incremental_operation=AlterConfigOpType.DELETE) for k in TOPIC_THROTTLES])
        for t in sorted({m.topic for m in todo})]
    _alter(client, res, "remove the replication throttle")


def throttle_left(client, brokers: list[int], topics: list[str]) -> list[str]:
    """Throttle configs still set (for tests and for the report): 'broker 1: x', 'topic t: y'."""
    from confluent_kafka.admin import ConfigResource

    admin = _admin(client)
    batches = [[ConfigResource("BROKER", str(b))] for b in brokers]   # one BROKER per call (librdkafka)
    batches += [[ConfigResource("TOPIC", t) for t in topics]] if topics else []
    out = []
    for batch in batches:
        for r, fut in admin.describe_configs(batch, request_timeout=20).items():
            for k, e in fut.result(timeout=30).items():
                if k in BROKER_THROTTLES + TOPIC_THROTTLES and e.value and not e.is_default:
                    out.append(f"{'broker' if r.restype_int == 4 else 'topic'} {r.name}: {k}={e.value}")
    return sorted(out)


def command_config(topo, nb, flag: str) -> list[str]:
    """A Kafka tool run in a node of a secure cluster reaches it with the node's own client
    config (kops's admin over TLS, and SCRAM: kops.render.client_properties); plaintext: none."""
    if not topo.spec.security.tls:
        return []
    return [flag, f"{nb.layout.conf_dir}/{CLIENT_PROPERTIES}"]


def tool_argv(nb, bootstrap: str, args: list[str]) -> list[str]:
    """A Kafka tool's main class run with the node's own JVM and distribution."""
    return [nb.argv[0], "-Xmx128m", "-cp", f"{nb.layout.home}/libs/*", TOOL_MAIN, "--bootstrap-server", bootstrap, *args]


def execute(ctx, todo: list[Move], brokers: list[int], *, rate: int, deadline: float, bundle) -> dict:
    """Move ``todo`` with the throttle on; returns timings. The throttle is removed in every case."""

    if not todo:
        return {"moved": 0, "seconds": 0.0}
    client = ctx.kafka()
    topo = ctx.topo
    runner = next(nb for nb in bundle if nb.node.is_broker and nb.node.id in brokers)
    t0 = time.monotonic()
    ctx.log(f"moving {len(todo)} partition(s), replication throttled to {rate // (1024 * 1024)} MiB/s per broker")
    involved = sorted({b for m in todo for b in (*m.old, *m.new)})
    try:
        set_throttle(client, todo, rate)
        argv = tool_argv(runner, topo.internal_bootstrap, ["--execute", "--reassignment-json-file", JSON_PATH,
                                                           *command_config(topo, runner, "--command-config")])
        code, out = ctx.provider.exec(runner.name, argv, files={JSON_PATH: reassignment_json(todo)})
        if code != 0:
            raise KopsError(f"Kafka's reassignment tool failed on {runner.name} (exit code {code})",
                            details=out[-3000:], hint="the lines above are Kafka's own")
        def moved():
            parts = {(t, p): (r, i) for t, p, r, i, _l in health.partitions(client, timeout=10)}
            left = still_moving(todo, parts)
            if left:
                raise NotYet(f"{len(todo) - len(left)}/{len(todo)} partition(s) moved; still moving: "
                             + "; ".join(left[:10]))
            return True

        waiting.until(waiting.Strategy(moved, "the reassignment", hint=(
            "the reassignment goes on inside Kafka; raise --timeout, or watch it with kafka-reassign-partitions "
            "--verify (kops up again resumes)")), deadline, log=ctx.log)
        moved_at = time.monotonic() - t0
        left = elect_preferred(client, todo, deadline=min(deadline, time.monotonic() + ELECTION_SECONDS))
    finally:
        clear_throttle(client, todo, involved)
    led = _settled_leaders(client, todo, brokers, left)
    unelected = (f"; {len(left)} partition(s) not led by their preferred replica yet ({', '.join(left[:5])}"
                 f"{', ...' if len(left) > 5 else ''}): auto.leader.rebalance.enable moves them later, or "
                 "kafka-leader-election --election-type preferred" if left else "")
    ctx.log(f"reassignment done: {len(todo)} partition(s) moved in {moved_at:.1f} s, throttle removed, preferred "
            f"leaders elected{unelected}; leaders: {leaders_line(led)}")
    return {"moved": len(todo), "seconds": round(moved_at, 1), "leaders": led, "not_elected": left}


# seconds the preferred-leader election may take after the move (replicas catching up included)
ELECTION_SECONDS = 60.0
# per-partition answers of an election that mean "nothing to do": already led by the preferred replica
ELECTION_DONE = ("ELECTION_NOT_NEEDED",)
# ... and those worth asking again (a replica still catching up, a controller moving)
ELECTION_RETRY = ("PREFERRED_LEADER_NOT_AVAILABLE", "ELIGIBLE_LEADERS_NOT_AVAILABLE", "LEADER_NOT_AVAILABLE",
                  "NOT_CONTROLLER", "NOT_LEADER_OR_FOLLOWER", "REQUEST_TIMED_OUT", "_TIMED_OUT", "_TRANSPORT",
                  "_ALL_BROKERS_DOWN", "UNKNOWN_TOPIC_OR_PART")


def election_left(results: dict[TP, str | None]) -> list[TP]:
    """The partitions an election did not settle (pure): ``results`` maps (topic, partition)
    to the error name of its answer (None: elected)."""
    return sorted(tp for tp, err in results.items() if err is not None and err not in ELECTION_DONE)


def elect_preferred(client, todo: list[Move], *, deadline: float) -> list[str]:
    """Leadership to the new first replicas now, not at the next auto-rebalance: Kafka's
    preferred-leader election for the moved partitions, again for those whose preferred
    replica is not eligible yet (not in sync) until ``deadline``. Returns the partitions
    still not led by their preferred replica ('topic-partition'), [] when all are."""
    from confluent_kafka import ElectionType, KafkaException, TopicPartition

    admin = _admin(client)        # kept until the answer: a collected client fails its futures (_DESTROY)
    want = sorted({(m.topic, m.partition) for m in todo})
    while want:
        results: dict[TP, str | None] = {}
        try:
            # no timeout keywords: confluent-kafka 2.16's elect_leaders fails on them (SystemError)
            fut = admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(t, p) for t, p in want])
            for tp, err in fut.result(timeout=40).items():
                results[(tp.topic, tp.partition)] = err.args[0].name() if isinstance(err, KafkaException) \
                    else (err.name() if err is not None and hasattr(err, "name") else None)
        except KafkaException as exc:
            err = exc.args[0] if exc.args else None
            results = {tp: err.name() if hasattr(err, "name") else kafka_error(exc) for tp in want}
        except FutureTimeout:
            results = {tp: "_TIMED_OUT" for tp in want}
        want = election_left(results)
        if not want or time.monotonic() >= deadline or not any(results[tp] in ELECTION_RETRY for tp in want):
            break
        time.sleep(1.0)
    return [f"{t}-{p}" for t, p in want]


def leader_counts(client, brokers: list[int], timeout: float = 10.0) -> dict[int, int]:
    """How many partitions each broker leads (kops's own check topic aside; every broker of
    ``brokers`` listed, 0 included; -1: partitions without a leader)."""
    out = {b: 0 for b in sorted(brokers)}
    try:
        parts = health.partitions(client, timeout=timeout)
    except NotYet:
        return out
    for t, _p, _r, _i, leader in parts:
        if not skipped(t):
            out[leader] = out.get(leader, 0) + 1
    return dict(sorted(out.items()))


def _settled_leaders(client, todo: list[Move], brokers: list[int], left: list[str],
                     seconds: float = 15.0) -> dict[int, int]:
    """leader_counts once the metadata shows the elected leaders (brokers learn an election
    a moment after it), or as it is after ``seconds``."""
    want = {(m.topic, m.partition): m.new[0] for m in todo if f"{m.topic}-{m.partition}" not in left}
    return settled_leaders(client, want, brokers, seconds)


def settled_leaders(client, want: dict[TP, int], brokers: list[int], seconds: float = 15.0) -> dict[int, int]:
    """leader_counts once the metadata shows ``want`` (partition -> leader), or as it is
    after ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            now = {(t, p): leader for t, p, _r, _i, leader in health.partitions(client, timeout=10)}
        except NotYet:
            now = {}
        if all(now.get(tp) == b for tp, b in want.items()):
            break
        time.sleep(0.5)
    return leader_counts(client, brokers)


def leaders_line(counts: dict[int, int]) -> str:
    """'1:2 2:2 3:2 4:2 5:1' (pure): partitions led per broker; 'none:N' for leaderless ones."""
    return " ".join(f"{'none' if b < 0 else b}:{n}" for b, n in sorted(counts.items())) or "-"
