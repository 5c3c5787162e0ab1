"""`kops balance`: how evenly a cluster's brokers share its replicas and leaders, the fewest
moves that even them out, and the throttled move (the same one as scaling's, kops.reassign).

* :func:`propose` (pure): from the replica lists, the current leaders and the brokers, the
  new replica lists (kops.reassign.target: each topic's replicas spread evenly, as few
  replicas moved as that allows), then the preferred leaders (first replicas) evened out
  over the brokers, per topic first, then over the whole cluster, by reordering replica
  lists (no data moves for a reorder), the partitions already changing first. Partitions
  whose replica list stays but whose leader is not their preferred replica need only a
  preferred-leader election (``elections``).
* :func:`log_dirs` runs Kafka's own ``LogDirsCommand`` in a running broker (its JVM, its
  client config): each broker's log dirs with each partition's size (the bytes column of
  the report; `kops debug bundle` keeps the same JSON).
* :func:`execute` carries a proposal out, computed again from the live metadata (so that a
  second run after an interruption finishes what the first began): it waits for
  reassignments still under way inside Kafka, moves through :func:`kops.kafka.reassign.execute`
  (throttle, wait, preferred leaders elected, throttle removed), elects the leaders of the
  leader-only partitions, and removes any throttle an interrupted run left.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field

from kops.core import wait as waiting
from kops.core.errors import KopsError, NotYet
from kops.kafka import health, reassign
from kops.kafka.reassign import TP, Move

LOG_DIRS_MAIN = "org.apache.kafka.tools.LogDirsCommand"
# unbalanced "beyond the threshold" (`kops up` with brokers.rebalance: auto): the spread
# (most minus fewest) of replicas or leaders exceeds 1 and 10 % of the mean
THRESHOLD_SHARE = 0.10


# -- pure ----------------------------------------------------------------------------------------

def spread(values: dict[int, int]) -> dict:
    """{"max_min": most - fewest, "max_mean": most / mean} of per-broker counts (pure)."""
    if not values:
        return {"max_min": 0, "max_mean": 1.0}
    hi, lo = max(values.values()), min(values.values())
    mean = sum(values.values()) / len(values)
    return {"max_min": hi - lo, "max_mean": round(hi / mean, 2) if mean else 1.0}


def counts(assignment: dict[TP, list[int]], leaders: dict[TP, int], brokers: list[int]) -> dict[int, dict]:
    """broker -> {"replicas": n, "leaders": n}; every broker of ``brokers`` listed (0 included)."""
    out = {b: {"replicas": 0, "leaders": 0} for b in sorted(brokers)}
    for reps in assignment.values():
        for b in reps:
            out.setdefault(b, {"replicas": 0, "leaders": 0})["replicas"] += 1
    for tp, b in leaders.items():
        if tp in assignment and b is not None and b >= 0:
            out.setdefault(b, {"replicas": 0, "leaders": 0})["leaders"] += 1
    return dict(sorted(out.items()))


def skew(per_broker: dict[int, dict]) -> dict:
    """{"replicas": spread, "leaders": spread} of :func:`counts`."""
    return {k: spread({b: c[k] for b, c in per_broker.items()}) for k in ("replicas", "leaders")}


def beyond(sk: dict, per_broker: dict[int, dict]) -> bool:
    """The spread of replicas or leaders exceeds 1 and THRESHOLD_SHARE of the mean."""
    for k in ("replicas", "leaders"):
        total = sum(c[k] for c in per_broker.values())
        mean = total / len(per_broker) if per_broker else 0
        if sk[k]["max_min"] > max(1, THRESHOLD_SHARE * mean):
            return True
    return False


@dataclass
class Proposal:
    moves: list[Move] = field(default_factory=list)        # replica lists that change (reorders included)
    elections: list[TP] = field(default_factory=list)      # leader only: its preferred replica does not lead
    before: dict[int, dict] = field(default_factory=dict)   # counts now (replicas, actual leaders)
    after: dict[int, dict] = field(default_factory=dict)    # counts once done (preferred leaders lead)

    @property
    def balanced(self) -> bool:
        return not self.moves and not self.elections

    @property
    def data_moves(self) -> int:
        """Partitions whose replica set changes (the others are reordered: no data copied)."""
        return sum(1 for m in self.moves if sorted(m.old) != sorted(m.new))

    def lines(self) -> list[str]:
        out = [m.line() + ("" if sorted(m.old) != sorted(m.new) else "   (leader order only)") for m in self.moves]
        out += [f"{t}-{p}: elect the preferred leader" for t, p in self.elections]
        return out

    def as_dict(self) -> dict:
        return {"moves": [{"topic": m.topic, "partition": m.partition, "old": list(m.old), "new": list(m.new)}
                          for m in self.moves],
                "elections": [{"topic": t, "partition": p} for t, p in self.elections]}


def even_replicas(result: dict[TP, list[int]], current: dict[TP, list[int]], brokers: list[int]) -> None:
    """After kops.reassign.target (each topic even on its own), the cluster's totals evened
    too, in place: one replica at a time from the broker holding most to one holding fewer,
    only within a topic where the source holds more of it than the destination (the topic
    stays within one), followers and partitions that change anyway first. Each step lowers
    the sum of squares of the totals: it ends."""
    brokers = sorted(set(brokers))
    total: Counter = Counter({b: 0 for b in brokers})
    topics: dict[str, Counter] = {}
    for tp, r in result.items():
        total.update(r)
        topics.setdefault(tp[0], Counter({b: 0 for b in brokers})).update(r)
    while True:
        pairs = sorted(((total[s] - total[d], s, d) for s in brokers for d in brokers if total[s] - total[d] >= 2),
                       key=lambda x: (-x[0], x[1], x[2]))
        for _diff, src, dst in pairs:
            cands = [tp for tp, r in result.items()
                     if src in r and dst not in r and topics[tp[0]][src] > topics[tp[0]][dst]]
            if cands:
                break
        else:
            return
        tp = min(cands, key=lambda tp: (result[tp] == current.get(tp), result[tp][0] == src, tp))
        result[tp] = [dst if b == src else b for b in result[tp]]
        for c in (total, topics[tp[0]]):
            c[src] -= 1
            c[dst] += 1


def even_leaders(result: dict[TP, list[int]], current: dict[TP, list[int]], brokers: list[int]) -> None:
    """Reorder replica lists of ``result`` in place so that the preferred leaders (first
    replicas) spread evenly: within each topic first, then over the cluster. One partition's
    lead goes from the broker leading most to one leading fewer (a replica of it) at a time,
    partitions that change anyway first, then those whose topic the move evens most. Each
    step lowers the sum of squares of the counts: it ends."""
    brokers = sorted(set(brokers))
    by_topic: dict[str, list[TP]] = {}
    for tp in sorted(result):
        if result[tp]:
            by_topic.setdefault(tp[0], []).append(tp)

    def lead_of(tps) -> Counter:
        c: Counter = Counter({b: 0 for b in brokers})
        c.update(result[tp][0] for tp in tps)
        return c

    def step(tps, topic_counts) -> bool:
        lead = lead_of(tps)
        pairs = sorted(((lead[s] - lead[d], s, d) for s in lead for d in lead if lead[s] - lead[d] >= 2),
                       key=lambda x: (-x[0], x[1], x[2]))
        for _diff, src, dst in pairs:
            cands = [tp for tp in tps if result[tp][0] == src and dst in result[tp]]
            if not cands:
                continue
            cands.sort(key=lambda tp: (result[tp] == current.get(tp),
                                       -(topic_counts[tp[0]][src] - topic_counts[tp[0]][dst]), tp))
            tp = cands[0]
            result[tp] = [dst] + [b for b in result[tp] if b != dst]
            return True
        return False

    for topic, tps in by_topic.items():
        while step(tps, {topic: lead_of(tps)}):
            pass
    every = [tp for tps in by_topic.values() for tp in tps]
    while step(every, {t: lead_of(tps) for t, tps in by_topic.items()}):
        pass


def propose(current: dict[TP, list[int]], leaders: dict[TP, int], brokers: list[int]) -> Proposal:
    """The fewest moves that even ``current`` out over ``brokers``, and the leader-only
    elections (pure). ``leaders``: (topic, partition) -> the broker leading it now (-1: none)."""
    brokers = sorted(set(brokers))
    result = reassign.target(current, brokers)
    even_replicas(result, current, brokers)
    even_leaders(result, current, brokers)
    todo = reassign.moves(current, result)
    moving = {(m.topic, m.partition) for m in todo}
    elections = sorted(tp for tp, reps in result.items()
                       if tp not in moving and reps and leaders.get(tp, -1) >= 0 and leaders[tp] != reps[0])
    return Proposal(todo, elections, counts(current, leaders, brokers),
                    counts(result, {tp: reps[0] for tp, reps in result.items() if reps}, brokers))


def sizes(log_dirs_json: str) -> dict[int, int]:
    """Bytes on each broker (every log dir, every partition) from LogDirsCommand's JSON (pure)."""
    data = json.loads(log_dirs_json)
    out: dict[int, int] = {}
    for b in data.get("brokers", []):
        total = 0
        for d in b.get("logDirs", []):
            total += sum(int(p.get("size", 0)) for p in d.get("partitions", []) if not p.get("isFuture"))
        out[int(b["broker"])] = total
    return dict(sorted(out.items()))


def ongoing(list_output: str) -> list[str]:
    """The partitions ReassignPartitionsCommand --list names as still moving (pure)."""
    return [ln.split(":", 1)[0].strip() for ln in list_output.splitlines() if ": replicas:" in ln]


def ongoing_targets(list_output: str) -> dict[TP, list[int]]:
    """(topic, partition) -> the replicas a reassignment under way ends with: its replicas
    without those being removed (pure), from ``t-0: replicas: 3,1,2. adding: 3. removing: 2.``"""
    out: dict[TP, list[int]] = {}
    for ln in list_output.splitlines():
        if ": replicas:" not in ln:
            continue
        name, rest = ln.split(": replicas:", 1)
        topic, _, part = name.strip().rpartition("-")
        fields = {}
        for chunk in ("replicas:" + rest).split("."):
            key, _, val = chunk.partition(":")
            fields[key.strip()] = [int(x) for x in re.findall(r"\d+", val)]
        if topic and part.isdigit():
            gone = set(fields.get("removing", []))
            out[(topic, int(part))] = [b for b in fields.get("replicas", []) if b not in gone]
    return out


# -- against a cluster ----------------------------------------------------------------------------

def read(client) -> tuple[dict[TP, list[int]], dict[TP, int]]:
    """(replica lists, leaders) of the cluster's partitions (kops's own topics aside)."""
    try:
        parts = health.partitions(client, timeout=10)
    except NotYet as exc:
        raise KopsError(f"cannot read the partitions' replicas: {exc}") from exc
    parts = [p for p in parts if not reassign.skipped(p[0])]
    return {(t, p): list(r) for t, p, r, _i, _l in parts}, {(t, p): leader for t, p, _r, _i, leader in parts}


def runner_of(bundle, observed=None, brokers: list[int] | None = None):
    """A running broker of the inventory to run Kafka's tools in (None: none)."""
    if bundle is None:
        return None
    return next((nb for nb in bundle if nb.node.is_broker and (brokers is None or nb.node.id in brokers)
                 and (observed is None or observed.get(nb.name).running)), None)


def log_dirs(provider, topo, bundle, observed) -> str:
    """Kafka's own LogDirsCommand in a running broker: every broker's log dirs with each
    partition's size, as JSON text. KopsError when it cannot be run or fails."""
    runner = runner_of(bundle, observed)
    if runner is None:
        raise KopsError("no running broker of the inventory to ask from")
    argv = [runner.argv[0], "-Xmx128m", "-cp", f"{runner.layout.home}/libs/*", LOG_DIRS_MAIN,
            "--bootstrap-server", topo.internal_bootstrap, "--describe",
            *reassign.command_config(topo, runner, "--command-config")]
    code, text = provider.exec(runner.name, argv, timeout=120)
    if code != 0:
        raise KopsError(f"LogDirsCommand exit code {code}: {text[-300:]}")
    return next((ln for ln in text.splitlines() if ln.startswith("{")), text)


def list_reassignments(provider, topo, runner) -> str:
    """ReassignPartitionsCommand --list run in ``runner``: the reassignments under way
    inside Kafka (an interrupted run's), as the tool prints them. NotYet when it fails."""
    argv = reassign.tool_argv(runner, topo.internal_bootstrap,
                              ["--list", *reassign.command_config(topo, runner, "--command-config")])
    code, out = provider.exec(runner.name, argv)
    if code != 0:
        raise NotYet(f"kafka-reassign-partitions --list: exit code {code}: {out[-200:]}")
    return out


def execute(ctx, brokers: list[int], *, rate: int, deadline: float, bundle) -> dict:
    """Balance the cluster now: the proposal computed again from the live metadata, the
    moves through kops.reassign.execute, the leader-only elections, leftover throttles removed."""
    client = ctx.kafka()
    runner = runner_of(bundle, brokers=brokers)
    if runner is None:
        raise KopsError("no broker of the inventory to run Kafka's reassignment tool in")
    t0 = time.monotonic()

    said = []

    def settled():   # an interrupted run's reassignment finishes inside Kafka: await it, then look
        left = ongoing(list_reassignments(ctx.provider, ctx.topo, runner))
        if left:
            msg = f"{len(left)} partition(s) still moving from an earlier reassignment: {', '.join(left[:8])}"
            if not said:
                ctx.log(msg + "; awaiting them first")
                said.append(msg)
            raise NotYet(msg)
        return True

    waiting.until(waiting.Strategy(settled, "the earlier reassignment to finish", interval=2.0), deadline, log=ctx.log)
    current, leaders = read(client)
    prop = propose(current, leaders, brokers)
    res = reassign.execute(ctx, prop.moves, brokers, rate=rate, deadline=deadline, bundle=bundle) \
        if prop.moves else {"moved": 0, "seconds": 0.0, "not_elected": []}
    left = res.get("not_elected", [])
    if prop.elections:
        ctx.log(f"electing the preferred leader of {len(prop.elections)} partition(s)")
        left += reassign.elect_preferred(client, [Move(t, p, (), ()) for t, p in prop.elections],
                                         deadline=min(deadline, time.monotonic() + reassign.ELECTION_SECONDS))
    topics = sorted({t for t, _p in current})
    stale = reassign.throttle_left(client, brokers, topics)
    if stale:   # an interrupted run's throttle
        ctx.log(f"removing a replication throttle left behind: {'; '.join(stale[:4])}")
        reassign.clear_throttle(client, [Move(t, 0, (), ()) for t in topics
                                         if any(s.startswith(f"topic {t}:") for s in stale)], brokers)
    want = {(m.topic, m.partition): m.new[0] for m in prop.moves}
    want.update({tp: current[tp][0] for tp in prop.elections})
    led = _leaders_settled(client, brokers, {tp: b for tp, b in want.items() if f"{tp[0]}-{tp[1]}" not in left})
    ctx.log(f"balance done: {len(prop.moves)} partition(s) reassigned ({prop.data_moves} with data copied), "
            f"{len(prop.elections)} leader(s) elected in {time.monotonic() - t0:.1f} s"
            + (f"; not led by their preferred replica yet: {', '.join(left[:5])}" if left else "")
            + f"; leaders: {reassign.leaders_line(led)}")
    return {"moved": len(prop.moves), "elected": len(prop.elections), "not_elected": left,
            "seconds": round(time.monotonic() - t0, 1), "leaders": led}


def _leaders_settled(client, brokers: list[int], want: dict[TP, int], seconds: float = 15.0) -> dict[int, int]:
    """Leader counts once the metadata shows ``want`` (brokers learn an election a moment later)."""
    return reassign.settled_leaders(client, want, brokers, seconds)
