"""The executor: the only code that runs a plan.

Every operation (`up`, `down`, `restart`, `upgrade`, scaling, quorum changes, each phase of
a migration and its rollback) makes a :class:`kops.plan.Plan` and hands it to :func:`run`.
Steps run in order; the actions of one step run at once:

* node actions (prepare, format, create, reconfigure, start, restart, stop, remove) go to
  the provider in one call per step (it runs them concurrently, each host or container in
  its own thread);
* cluster actions (:class:`kops.plan.ClusterAction`: reassign, unregister, add or remove a
  controller, the registry's topics, ZooKeeper znodes) are carried out by kops itself, each
  in its own thread beside the provider's;
* a ``Wait`` is a gate (kops.gates), awaited with the plan's deadline.

Every failure of a step is reported, not only the first. Nodes reconfigured by a step keep
their previous container or files until the next gate passes; when the step or that gate
fails they are put back, the cluster awaited, and the error says so, and says so too when
putting them back failed. The timeline (each step, when it began, how long it took) is kept
on the context for ``--output json``.
"""

from __future__ import annotations

import time

from kops.orchestration import gates
from kops.kafka import health
from kops.core.errors import KopsError, WaitTimeout, run_all
from kops.plan import ClusterAction, Create, Plan, Reconfigure, Restart, Start, Wait


def provider_side(action) -> bool:
    """Carried out by the provider (as opposed to a gate or kops's own cluster action)."""
    return not isinstance(action, (Wait, ClusterAction))


def run(plan: Plan, ctx: gates.Context, bundle, deadline: float):
    """Run ``plan`` to its end, or raise the step's error(s) (after a rollback of what the
    failed step reconfigured). Returns the last gate's result (a status, for a restart)."""
    pending: list[str] = []          # reconfigured nodes whose previous config is kept
    last_node_step_at = time.monotonic()
    result = None
    for i, step in enumerate(plan.steps):
        began = time.monotonic()
        try:
            waits = [a for a in step if isinstance(a, Wait)]
            acts = [a for a in step if not isinstance(a, Wait)]
            if acts:
                _announce(ctx, acts, bundle)
                if bundle is not None and any(
                        isinstance(a, (Create, Start, Reconfigure)) and a.node in bundle.nodes
                        and bundle.nodes[a.node].node.role == "zookeeper" for a in acts):
                    ctx.zk_started = time.time()
                pending += [a.node for a in acts if isinstance(a, Reconfigure)]
                _act(ctx, acts, bundle, deadline)
                last_node_step_at = time.monotonic()
            after = plan.steps[i + 1] if i + 1 < len(plan.steps) else []
            for w in waits:
                result = _gate(ctx, w, deadline, since=last_node_step_at, after=after)
            if waits and pending:
                ctx.provider.settle(pending)
                pending = []
        except KopsError as exc:
            if not pending:
                raise
            _roll_back(ctx, bundle, pending, exc, deadline)
        finally:
            ctx.timeline.append(("; ".join(a.describe() for a in step), began,
                                 round(time.monotonic() - began, 2)))
    return result


def _act(ctx: gates.Context, acts: list, bundle, deadline: float) -> None:
    """One step's actions at once: the provider's in one call, each cluster action in its
    own thread; every failure is collected and reported together."""
    node = [a for a in acts if provider_side(a)]
    cluster = [a for a in acts if isinstance(a, ClusterAction)]
    jobs = []
    if node:
        jobs.append((", ".join(a.node or a.host or a.kind for a in node),
                     lambda: ctx.provider.apply(node, bundle)))
    jobs += [(a.describe().split("\n")[0], (lambda a=a: a.execute(ctx, bundle, deadline))) for a in cluster]
    run_all([fn for _, fn in jobs])


def _announce(ctx: gates.Context, acts: list, bundle) -> None:
    """A rolling restart says what it restarts, and warns about partitions that go offline
    while it does (their only replica on that node)."""
    for a in acts:
        if isinstance(a, Restart):
            if ctx.topo is not None and any(n.name == a.node for n in ctx.topo.nodes):
                _warn_single_replicas(ctx, a.node)
            ctx.log(f"{a.node}: restarting")


def _gate(ctx: gates.Context, w: Wait, deadline: float, *, since: float, after: list):
    try:
        result = gates.wait(ctx, w, deadline)
    except WaitTimeout as exc:
        if w.gate != "safe-to-stop":
            raise
        verb = "restarting" if any(isinstance(a, Restart) for a in after) else "stopping"
        raise KopsError(f"not {verb} {w.nodes[0]}: {exc.message.split(': ', 1)[-1]}",
                        details=exc.details,
                        hint="wait for those partitions' ISR to catch up (kops status), or add replicas; "
                             "nothing from this step on was done") from exc
    if w.gate == "healthy" and w.nodes:
        ctx.log(f"{', '.join(w.nodes)}: back, cluster healthy ({time.monotonic() - since:.1f} s)")
    return result


def _warn_single_replicas(ctx: gates.Context, node: str) -> None:
    n = ctx.topo.node(node)
    if not n.is_broker:
        return
    try:
        parts = health.partitions(ctx.kafka())
    except health.NotYet:
        return
    alone = [f"{t}-{p}" for t, p, replicas, _isr, _leader in parts if replicas == [n.id]]
    if alone:
        ctx.log(f"warning: {node} holds the only replica of {len(alone)} partition(s), offline while it restarts: "
                + ", ".join(alone[:8]) + (" ..." if len(alone) > 8 else ""))


def _roll_back(ctx: gates.Context, bundle, nodes: list[str], exc: KopsError, deadline: float) -> None:
    what = ", ".join(nodes)
    cause = f"{exc.message}" + (f"\n{exc.details}" if exc.details else "")
    try:
        back = ctx.provider.rollback(nodes, bundle)
    except KopsError as failed:
        raise KopsError(f"{what} did not come up with the new config, and putting the previous config back "
                        f"failed too: {failed.message}",
                        details=f"the original error:\n{cause}\n--- the rollback:\n{failed.details or ''}",
                        hint=f"kops status{ctx.scope}; kops logs NODE{ctx.scope}; fix the cause, then "
                             f"`{ctx.resume}` again", exit_code=exc.exit_code) from exc
    if not back:
        raise exc
    zk = all(bundle.nodes[n].node.role == "zookeeper" for n in back)
    try:
        gates.wait(ctx, Wait(gate="zookeeper-quorum" if zk else "kafka-ready", quiet=True),
                   max(deadline, time.monotonic() + 120))
    except KopsError as again:
        raise KopsError(f"{what}: the new config did not come up, and after putting the previous one back "
                        f"the cluster is still not ready: {again.message}", details=cause,
                        hint=f"kops status{ctx.scope}; kops logs NODE{ctx.scope}") from exc
    raise KopsError(f"{what} did not come up with the new config, so the previous config was put back "
                    f"(data kept) and the cluster is ready again; nothing else was changed",
                    details=cause, hint=f"{health.known_cause(cause) or 'fix the value named in the log lines above'}, "
                                        f"then run `{ctx.resume}` again") from exc
