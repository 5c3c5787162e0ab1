"""Scaling a live cluster's brokers: the planner policy for brokers added or removed.

`kops up` with more brokers in the inventory creates them (kops.plan), then moves
partitions onto them; with fewer, it drains the leaving brokers first, then stops and
removes them. Both are steps of the same plan (shown by ``--dry-run`` with the
reassignment: ``topic-partition: old replicas -> new replicas``), so both providers run
them the same way: the reassignment is a cluster-level action that kops itself carries
out through the Admin API and Kafka's own tool (kops.reassign), not a provider's.

Refused before anything changes (exit 2): a topic whose replication factor exceeds the
brokers left, a KRaft combined node (a controller: it would shrink the quorum) leaving,
brokers leaving a cluster that is down. Dedicated controllers are not this policy's: the
controller quorum is changed elsewhere (a leaving controller stays an orphan here).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kops.core.errors import InputError, KopsError, NotYet
from kops.kafka import balance, health, reassign
from kops.plan import ClusterAction, Observed, Plan, Remove, Stop, Wait


@dataclass(frozen=True)
class Reassign(ClusterAction):
    """Move partitions (throttled), await the move, elect the preferred leaders (spread by
    the target: kops.reassign), remove the throttle; the log ends with the partitions each
    broker leads ("leaders: 1:2 2:2 3:2 4:2 5:1"). ``brokers``: the
    brokers the partitions end on; ``moves``: the plan as shown (recomputed from the live
    metadata when the step runs)."""

    kind = "reassign"
    brokers: tuple[int, ...] = ()
    moves: tuple[reassign.Move, ...] = ()
    rate: int = reassign.DEFAULT_RATE

    def describe(self) -> str:
        why = f" to {self.reason}" if self.reason else ""
        head = (f"reassign {len(self.moves)} partition(s) onto brokers {list(self.brokers)}{why} "
                f"(throttled to {self.rate // (1024 * 1024)} MiB/s, awaited, preferred leaders elected, "
                f"throttle removed)")
        if not self.moves:
            return f"reassign: nothing to move onto brokers {list(self.brokers)}{why}"
        return head + "".join(f"\n        {m.line()}" for m in self.moves)

    def as_dict(self) -> dict:
        return {"kind": self.kind, "reason": self.reason, "brokers": list(self.brokers), "rate": self.rate,
                "moves": [{"topic": m.topic, "partition": m.partition, "old": list(m.old), "new": list(m.new)}
                          for m in self.moves]}

    def execute(self, ctx, bundle, deadline: float) -> None:
        live, _current = reassign.plan_for(ctx.kafka(), list(self.brokers))
        reassign.execute(ctx, live, list(self.brokers), rate=self.rate, deadline=deadline, bundle=bundle)


@dataclass(frozen=True)
class Rebalance(Reassign):
    """`kops balance --execute` (and `kops up` with brokers.rebalance: auto): the Reassign
    that evens replicas and leaders over ``brokers`` (kops.kafka.balance), plus the
    preferred-leader elections of the partitions whose replicas stay. Computed again from
    the live metadata when the step runs: a second run after an interruption finishes it."""

    kind = "balance"
    elections: tuple[tuple[str, int], ...] = ()

    def describe(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        if not self.moves and not self.elections:
            return f"balance: nothing to move or elect on brokers {list(self.brokers)}{why}"
        head = (f"balance brokers {list(self.brokers)}{why}: reassign {len(self.moves)} partition(s) (throttled to "
                f"{self.rate // (1024 * 1024)} MiB/s, awaited, preferred leaders elected, throttle removed), "
                f"elect the preferred leader of {len(self.elections)} more")
        return head + "".join(f"\n        {m.line()}" for m in self.moves) + "".join(
            f"\n        {t}-{p}: elect the preferred leader" for t, p in self.elections)

    def as_dict(self) -> dict:
        return {**super().as_dict(), "kind": self.kind,
                "elections": [{"topic": t, "partition": p} for t, p in self.elections]}

    def execute(self, ctx, bundle, deadline: float) -> None:
        balance.execute(ctx, list(self.brokers), rate=self.rate, deadline=deadline, bundle=bundle)


def rebalance_of(proposal: balance.Proposal, brokers: list[int], rate: int, reason: str) -> Rebalance:
    return Rebalance(brokers=tuple(brokers), moves=tuple(proposal.moves), elections=tuple(proposal.elections),
                     rate=rate, reason=reason)


@dataclass(frozen=True)
class Unregister(ClusterAction):
    """KRaft: a removed broker's registration dropped from the metadata (ClusterTool)."""

    kind = "unregister"
    broker: int = 0

    def execute(self, ctx, bundle, deadline: float) -> None:
        runner = next(nb for nb in bundle if nb.node.is_broker)
        argv = [runner.argv[0], "-Xmx128m", "-cp", f"{runner.layout.home}/libs/*",
                "org.apache.kafka.tools.ClusterTool", "unregister", "--bootstrap-server",
                ctx.topo.internal_bootstrap, "--id", str(self.broker),
                *reassign.command_config(ctx.topo, runner, "--config")]
        code, out = ctx.provider.exec(runner.name, argv)
        if code != 0:   # the broker is stopped and holds nothing: a fenced registration is harmless
            ctx.log(f"warning: unregistering broker {self.broker} failed (exit code {code}): {out[-300:]}")
        else:
            ctx.log(f"broker {self.broker} unregistered from the KRaft metadata")


@dataclass
class Change:
    added: list[int] = field(default_factory=list)      # broker ids created by this plan
    leaving: list[tuple[str, int]] = field(default_factory=list)   # (node, broker id)
    problems: list[str] = field(default_factory=list)


def change(bundle, observed: Observed, plan: Plan) -> Change:
    """Which brokers this `up` adds to a serving cluster and which leave it (pure)."""
    ch = Change()
    serving = any(o.running and o.role in ("broker", "combined") for o in observed.nodes.values())
    if not serving and not any(o.exists for o in observed.nodes.values()):
        return ch
    for a in plan.of("create"):
        n = bundle.nodes[a.node].node
        if n.is_broker and serving:
            ch.added.append(n.id)
    for name, o in sorted(observed.nodes.items()):
        if name in bundle.nodes:
            continue
        if o.role == "broker":
            ch.leaving.append((name, o.id))
        elif o.role == "combined":
            ch.problems.append(f"{name} is a KRaft combined node (broker and controller): removing it would shrink "
                               "the controller quorum; the broker count of a combined cluster cannot go down here")
    if ch.leaving and not serving:
        ch.problems.append("brokers " + ", ".join(n for n, _ in ch.leaving) + " would leave a cluster that is not "
                           "running: their partitions cannot be moved away; start it first (kops up with the "
                           "previous inventory)")
    return ch


def extend(plan: Plan, bundle, observed: Observed, client, info, *, rate: int = reassign.DEFAULT_RATE) -> Plan:
    """``plan`` with the scale policy: drain and removal of leaving brokers before it, the
    move onto added brokers after it. Refusals raise InputError before anything changes.
    ``info``: what the provider can do (kops.providers.base.ProviderInfo). With
    ``brokers.rebalance: auto``, a cluster unbalanced beyond the threshold gets the balance
    step last (kops.kafka.balance)."""
    out = _extend(plan, bundle, observed, client, info, rate=rate)
    return _auto_balance(out, bundle, observed, client, rate)


def _auto_balance(plan: Plan, bundle, observed: Observed, client, rate: int) -> Plan:
    """``brokers.rebalance: auto``: the Rebalance appended when the serving cluster's
    replicas or leaders spread beyond the threshold (kops.kafka.balance.beyond) and no
    move of this plan evens them already."""
    if getattr(bundle.topo.spec.brokers, "rebalance", "off") != "auto":
        return plan
    if any(isinstance(a, Reassign) for a in plan.actions) or any(a.kind == "create" for a in plan.actions):
        return plan
    if not any(o.running and o.role in ("broker", "combined") for o in observed.nodes.values()):
        return plan
    final = sorted(n.id for n in bundle.topo.brokers)
    try:
        current, leaders = balance.read(client)
    except KopsError:
        return plan
    if not current or reassign.refusals(current, final):
        return plan
    prop = balance.propose(current, leaders, final)
    if prop.balanced or not balance.beyond(balance.skew(prop.before), prop.before):
        return plan
    sk = balance.skew(prop.before)
    out = Plan(steps=list(plan.steps), summary=dict(plan.summary))
    out.add(rebalance_of(prop, final, rate, f"brokers.rebalance: auto; replicas spread "
                                            f"{sk['replicas']['max_min']}, leaders spread {sk['leaders']['max_min']}"))
    return out


def _extend(plan: Plan, bundle, observed: Observed, client, info, *, rate: int = reassign.DEFAULT_RATE) -> Plan:
    ch = change(bundle, observed, plan)
    if not info.sees_unlisted_nodes:
        ch.problems += _unseen_brokers(bundle, observed, client)
    if not ch.added and not ch.leaving and not ch.problems:
        return _resume(plan, bundle, observed, client, rate)
    if ch.problems:
        raise InputError("this change of the node set is refused; nothing was changed:\n  - "
                         + "\n  - ".join(ch.problems),
                         hint="keep those nodes in the inventory (brokers.nodes / controllers.nodes)")
    final = sorted(n.id for n in bundle.topo.brokers)
    out = Plan(summary=dict(plan.summary))
    if ch.leaving:
        moves, _ = reassign.plan_for(client, final)
        names = ", ".join(n for n, _ in ch.leaving)
        out.add(Reassign(brokers=tuple(final), moves=tuple(moves), rate=rate,
                         reason=f"drain {names} first"))
        grace = {n: (observed.get(n).stop_grace or 120) for n, _ in ch.leaving}
        out.add(*[Stop(node=n, host=observed.get(n).where or None, grace=grace[n],
                       reason="drained: holds no replica") for n, _ in ch.leaving])
        if bundle.topo.mode == "kraft":
            out.add(*[Unregister(broker=b, node=n, reason="its registration dropped") for n, b in ch.leaving])
        out.add(*[Remove(node=n, host=observed.get(n).where or None, reason="left the inventory: container/unit, "
                                                                          "data and logs removed")
                  for n, _ in ch.leaving])
        for n, _ in ch.leaving:
            out.summary[n] = ("remove", "left the inventory: drained, stopped, removed")
    for step in plan.steps:
        out.add(*step)
    if ch.added:
        moves = _moves_onto(client, final)
        out.add(Reassign(brokers=tuple(final), moves=tuple(moves), rate=rate,
                         reason="spread partitions onto brokers " + ", ".join(map(str, ch.added))))
    if ch.leaving and not plan.steps:
        out.add(Wait(gate="kafka-ready"))
    return out


def _moves_onto(client, brokers: list[int]) -> list[reassign.Move]:
    """The moves onto the final broker set, from the metadata as it is now (the new brokers
    hold nothing yet)."""
    current = reassign.current_assignment(client)
    return reassign.moves(current, reassign.target(current, brokers))


def _resume(plan: Plan, bundle, observed: Observed, client, rate: int) -> Plan:
    """A broker of the inventory that holds no replica while others do: an earlier move onto
    it did not finish (kops stopped, a time-out). Moving onto it again makes `up` resumable."""

    if not any(o.running and o.role in ("broker", "combined") for o in observed.nodes.values()):
        return plan
    if any(a.kind == "create" for a in plan.actions):
        return plan
    final = sorted(n.id for n in bundle.topo.brokers)
    try:
        current = reassign.current_assignment(client)
    except NotYet:
        return plan
    holding = {b for reps in current.values() for b in reps}
    empty = [b for b in final if b not in holding]
    if not empty or not holding:
        return plan
    moves = reassign.moves(current, reassign.target(current, final))
    if not moves:
        return plan
    out = Plan(steps=list(plan.steps), summary=dict(plan.summary))
    out.add(Reassign(brokers=tuple(final), moves=tuple(moves), rate=rate,
                     reason="fill broker(s) " + ", ".join(map(str, empty)) + ", which hold no replica yet (a "
                            "move onto them did not finish)"))
    return out


def _unseen_brokers(bundle, observed: Observed, client) -> list[str]:
    """A provider that observes the inventory's nodes only would not see a broker left out
    of the inventory as leaving. Kafka still lists it: refuse rather than leave it running
    unmanaged. (Both providers see such nodes now: Docker by label, SSH from kops's record
    of the nodes it placed.)"""

    if not any(o.running and o.role in ("broker", "combined") for o in observed.nodes.values()):
        return []
    h = health.kafka_health(client, timeout=5)
    extra = sorted(set(h.brokers) - {n.id for n in bundle.topo.brokers}) if not h.error else []
    if not extra:
        return []
    return [f"broker id(s) {', '.join(map(str, extra))} are registered in the cluster but not in the inventory, "
            f"and this provider cannot see them to drain and remove them (keep brokers.nodes at "
            f"{len(bundle.topo.brokers) + len(extra)})"]
