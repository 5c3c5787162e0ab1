"""`kops balance`: the report (per broker: leaders, replicas, bytes; the spread), the
proposal (kops.kafka.balance.propose) and, with ``execute``, the move through the one
executor (kops.orchestration.execute), as a Rebalance step (kops.plan.scale): throttled,
awaited, preferred leaders elected, throttle removed. A dry run changes nothing."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from kops.core.errors import KopsError, NotFoundError, NotYet, seconds
from kops.kafka import balance, health, reassign
from kops.orchestration import execute as executor, gates, lifecycle
from kops.plan import Plan
from kops.plan import scale


@dataclass
class Report:
    cluster: str
    brokers: list[int]
    proposal: balance.Proposal
    bytes: dict[int, int] | None = None
    bytes_error: str | None = None
    executed: bool = False
    result: dict | None = None
    after: dict[int, dict] | None = None      # counts as found after --execute
    seconds: float = 0.0
    plan: Plan | None = None
    notes: list[str] = field(default_factory=list)
    moving: list[str] = field(default_factory=list)   # partitions a reassignment under way moves now

    @property
    def balanced(self) -> bool:
        return self.proposal.balanced

    def rows(self, which: str = "before") -> list[dict]:
        counts = self.proposal.before if which == "before" else (self.after or self.proposal.after)
        return [{"broker": b, "leaders": c["leaders"], "replicas": c["replicas"],
                 "bytes": (self.bytes or {}).get(b) if which == "before" else None} for b, c in counts.items()]

    def as_dict(self) -> dict:
        p = self.proposal
        return {"cluster": self.cluster, "brokers": self.brokers, "balanced": p.balanced,
                "dry_run": not self.executed, "executed": self.executed,
                "per_broker": self.rows("before"), "bytes_error": self.bytes_error,
                "skew": balance.skew(p.before), "proposal": p.as_dict(),
                "data_moves": p.data_moves, "skew_after_proposal": balance.skew(p.after),
                "after": ([{"broker": b, **c} for b, c in self.after.items()] if self.after is not None else None),
                "skew_after": balance.skew(self.after) if self.after is not None else None,
                "moving_now": self.moving, "result": self.result, "notes": self.notes,
                "seconds": round(self.seconds, 1)}


def run(spec, provider, *, execute: bool = False, rate: int = reassign.DEFAULT_RATE, timeout: float = 600,
        log=print, scope: str = "") -> Report:
    t0 = time.monotonic()
    deadline = t0 + seconds(timeout, low=1)
    topo, bundle, observed = lifecycle.resolve(spec, provider, persist=False)
    if not observed.nodes:
        raise NotFoundError(f"cluster {spec.name} not found", hint=f"kops up{scope}; kops ls")
    if not any(o.running and o.role in ("broker", "combined") for o in observed.nodes.values()):
        raise NotFoundError(f"cluster {spec.name} is not running", hint=f"kops up{scope}")
    client = lifecycle.client_of(spec, provider, scope=scope)
    h = health.kafka_health(client, timeout=10)
    if h.error:
        raise KopsError(f"cluster {spec.name} does not answer: {h.error}", hint=f"kops status{scope}")
    brokers = sorted(n.id for n in topo.brokers if n.id in h.brokers)
    missing = sorted(n.name for n in topo.brokers if n.id not in h.brokers)
    current, leaders = balance.read(client)
    runner = balance.runner_of(bundle, observed)
    try:
        moving = balance.ongoing_targets(balance.list_reassignments(provider, topo, runner)) if runner else {}
    except NotYet as exc:   # the report goes on without it; --execute asks again (and waits)
        moving = {}
        notes_first = [f"reassignments under way not known: {exc}"]
    else:
        notes_first = []
    current.update({tp: r for tp, r in moving.items() if tp in current})   # as they will end
    bad = reassign.refusals(current, brokers)
    if bad:
        raise KopsError("the registered brokers cannot hold every replica: " + "; ".join(bad),
                        hint=f"start the missing broker(s) {', '.join(missing)} first (kops up{scope})"
                        if missing else "")
    rep = Report(spec.name, brokers, balance.propose(current, leaders, brokers))
    rep.notes += notes_first
    rep.moving = sorted(f"{t}-{p}" for t, p in moving)
    if moving:
        rep.notes.append(f"a reassignment is under way inside Kafka ({len(moving)} partition(s): "
                         f"{', '.join(rep.moving[:6])}{' ...' if len(moving) > 6 else ''}): counted as it will end; "
                         f"--execute awaits it first")
    if missing:
        rep.notes.append(f"broker(s) {', '.join(missing)} of the inventory are not registered: left out of the "
                         "proposal")
    try:
        rep.bytes = balance.sizes(balance.log_dirs(provider, topo, bundle, observed))
    except (KopsError, ValueError, KeyError) as exc:
        rep.bytes_error = getattr(exc, "message", None) or f"{exc.__class__.__name__}: {exc}"
    stale = _stale_throttle(client, brokers, current) if execute and rep.balanced and not moving else []
    if not execute or (rep.balanced and not moving and not stale):
        rep.seconds = time.monotonic() - t0
        return rep
    if h.offline:
        raise KopsError(f"{len(h.offline)} partition(s) have no leader ({', '.join(h.offline[:5])}): not moving "
                        "anything on a cluster that is missing data", hint=f"kops status{scope}")
    plan = Plan()
    plan.add(scale.rebalance_of(rep.proposal, brokers, rate, "kops balance"))
    rep.plan = plan
    ctx = gates.Context(topo, provider, log, scope, client=client, again=f"kops balance --execute{scope}")
    executor.run(plan, ctx, bundle, deadline)
    rep.executed = True
    now, led = balance.read(client)
    rep.after = balance.counts(now, led, brokers)
    rep.result = {"seconds": round(time.monotonic() - t0, 1)}
    rep.seconds = time.monotonic() - t0
    again = balance.propose(now, led, brokers)
    if not again.balanced:
        rep.notes.append(f"still to do after the run: {len(again.moves)} move(s), {len(again.elections)} election(s) "
                         f"(a leader not yet moved; `kops balance --execute{scope}` again)")
        rep.result["left"] = again.as_dict()
    return rep


def _stale_throttle(client, brokers: list[int], current: dict) -> list[str]:
    """A replication throttle an interrupted run left (none when it cannot be read)."""
    try:
        return reassign.throttle_left(client, brokers, sorted({t for t, _p in current}))
    except Exception:  # noqa: BLE001 - the Admin API's errors: a balanced cluster is reported all the same
        return []
