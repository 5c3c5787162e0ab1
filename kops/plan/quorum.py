"""The KRaft controller quorum changed at run time (KIP-853, a dynamic quorum): the planner
policy for controllers added to or removed from a running cluster.

New KRaft clusters of Kafka 4.1+ are formatted for a dynamic quorum (kops.topology:
``controller.quorum.bootstrap.servers``, ``--initial-controllers`` with each controller's
directory id). Then a different ``controllers.nodes`` in the inventory and ``kops up``:

* **more controllers**: each new one is formatted with no initial voters (it joins as an
  observer), started, awaited until it has caught up with the leader, then added as a voter
  (``kafka-metadata-quorum add-controller``, run in that node with its own config), one at a
  time; the other nodes then roll onto the new bootstrap list, gated as every roll is;
* **fewer controllers**: each leaving one is removed from the voters first
  (``remove-controller`` with its directory id, the leader last), awaited until the quorum
  has a leader without it, then stopped and removed, one at a time, so the quorum never
  loses its majority; the rest roll onto the shorter list (over SSH too: the provider
  knows the nodes it placed from kops's record).

Both are typed, cluster-level actions in the plan (``--dry-run`` shows them), carried out by
kops with Kafka's own tool inside a node (no client library speaks these APIs), so both
providers run them the same way. A static quorum (``controller.quorum.voters``: clusters made
before Kafka 4.1 or before kops knew dynamic quorums) cannot change its voters: refused
before anything changes (exit 2), naming the way forward. An add that did not finish is
resumed by the next ``up`` (the pending voters are kept in kops's state).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from kops.core import paths
from kops.core import wait as waiting
from kops.core.errors import InputError, KopsError, NotYet, WaitTimeout
from kops.plan import ClusterAction, Observed, Plan, Remove, Stop, Wait

TOOL = "org.apache.kafka.tools.MetadataQuorumCommand"
CAUGHT_UP_LAG = 10   # records: an observer this close to the leader's end can become a voter


# -- talking to the quorum through Kafka's tool in a node ------------------------------------------

def _tool(nb, *args: str) -> list[str]:
    return [nb.argv[0], "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp",
            f"{nb.layout.home}/libs/*", TOOL, *args]


def describe(ctx, runner, bootstrap: str, *, replication: bool = False) -> dict:
    """{"leader": id, "voters": {id: directory id}, "observers": {id: directory id},
    "lag": {id: records}} as the quorum reports it (through ``runner``, a running node);
    the lag only with ``replication`` (a second call: the tool takes one of the two)."""
    out = ""
    for what in ("--status", "--replication") if replication else ("--status",):
        code, text = ctx.provider.exec(runner.name, _tool(runner, "--bootstrap-controller", bootstrap, "describe",
                                                          what))
        if code != 0:
            raise KopsError(f"the controller quorum did not answer through {runner.name}: {_last_line(text, code)}",
                            details=text[-1500:])
        out += text + "\n"
    return parse(out)


def parse(out: str) -> dict:
    """The output of ``describe --status --replication`` (pure)."""
    got: dict = {"leader": None, "voters": {}, "observers": {}, "lag": {}}
    for line in out.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "LeaderId" and value.lstrip("-").isdigit():
            got["leader"] = int(value)
        elif key in ("CurrentVoters", "CurrentObservers") and value.startswith("["):
            try:
                items = json.loads(value)
            except ValueError:
                continue
            got["voters" if key == "CurrentVoters" else "observers"] = {
                int(i["id"]): i.get("directoryId", "") for i in items if "id" in i}
        else:
            cols = line.split()
            if len(cols) >= 7 and cols[0].isdigit() and cols[3].lstrip("-").isdigit():
                got["lag"][int(cols[0])] = int(cols[3])
    return got


def _bootstrap(bundle) -> str:
    return bundle.topo.controller_bootstrap


def _pending_file(name: str):
    return paths.state_dir() / "clusters" / name / "pending-voters.json"


def _known_file(name: str):
    return paths.state_dir() / "clusters" / name / "controllers.json"


def known(name: str) -> list[str]:
    """The controllers of the cluster after its last finished `up` (kops's state)."""
    return paths.read_json(_known_file(name), "record of the cluster's controllers", [])


def note_known(name: str, nodes: list[str]) -> None:
    p = _known_file(name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(sorted(nodes)))


def pending(name: str) -> list[str]:
    return paths.read_json(_pending_file(name), "record of the controllers being added", [])


def note_pending(name: str, nodes: list[str]) -> None:
    p = _pending_file(name)
    if not nodes:
        p.unlink(missing_ok=True)
        return
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(sorted(set(nodes))))


@dataclass(frozen=True)
class AddController(ClusterAction):
    """A controller that runs as an observer of the quorum: awaited until caught up, then
    added as a voter (in that node, with its own config), awaited until the quorum lists it."""

    kind = "add-controller"
    voter: int = 0

    def describe(self) -> str:
        return (f"add-controller {self.node} (id {self.voter}) to the KRaft quorum: awaited until it has caught "
                "up as an observer, then added as a voter")

    def execute(self, ctx, bundle, deadline: float) -> None:
        nb = bundle.nodes[self.node]
        boot = _bootstrap(bundle)

        def step(q: dict) -> tuple[bool, str]:
            if self.voter in q["voters"]:
                ctx.log(f"{self.node}: a voter of the KRaft quorum")
                return True, ""
            lag = q["lag"].get(self.voter)
            if self.voter not in q["observers"] or lag is None:
                return False, f"{self.node} is not an observer of the quorum yet"
            if lag > CAUGHT_UP_LAG:
                return False, f"{self.node} is {lag} records behind the leader"
            code, out = ctx.provider.exec(nb.name, _tool(nb, "--command-config", f"{nb.layout.conf_dir}/server.properties",
                                                          "--bootstrap-controller", boot, "add-controller"))
            if code != 0:
                return False, _last_line(out, code)
            ctx.log(f"{self.node}: added to the KRaft quorum as a voter (it had caught up, lag {lag})")
            return False, "added; the quorum does not list it yet"   # confirmed by the next describe

        _until(ctx, nb, boot, deadline, step, replication=True, what=f"{self.node} to join the KRaft quorum's voters",
               failed=f"{self.node} did not join the KRaft quorum as a voter",
               hint=f"kops logs {self.node}; `kops up` again resumes (the node is kept)")
        note_pending(ctx.topo.name, [n for n in pending(ctx.topo.name) if n != self.node])


@dataclass(frozen=True)
class RemoveController(ClusterAction):
    """A leaving controller removed from the voters (by its directory id), awaited until the
    quorum has a leader without it; it is stopped and removed by the next steps."""

    kind = "remove-controller"
    voter: int = 0

    def describe(self) -> str:
        return (f"remove-controller {self.node} (id {self.voter}) from the KRaft quorum's voters, awaited until "
                "the quorum has a leader without it")

    def execute(self, ctx, bundle, deadline: float) -> None:
        runner = next(nb for nb in bundle if nb.node.is_controller)   # one that stays (and runs)
        boot = _bootstrap(bundle)

        def step(q: dict) -> tuple[bool, str]:
            if self.voter not in q["voters"]:
                if q["leader"] is not None and q["leader"] != self.voter:
                    ctx.log(f"{self.node}: no longer a voter; the quorum's leader is {q['leader']}")
                    return True, ""
                return False, "the quorum has no leader yet"
            code, out = ctx.provider.exec(runner.name, _tool(
                runner, "--bootstrap-controller", boot, "remove-controller", "--controller-id", str(self.voter),
                "--controller-directory-id", q["voters"][self.voter]))
            if code != 0:
                return False, _last_line(out, code)
            ctx.log(f"{self.node}: removed from the KRaft quorum's voters")
            return False, "removed; the quorum still lists it"

        _until(ctx, runner, boot, deadline, step, what=f"{self.node} to leave the KRaft quorum's voters",
               failed=f"{self.node} could not be removed from the KRaft quorum",
               hint="kops status; `kops up` again resumes (nothing was stopped)")


def _last_line(out: str, code: int) -> str:
    lines = [line for line in out.strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else f"exit code {code}"


def _until(ctx, runner, boot: str, deadline: float, step, *, replication: bool = False, what: str, failed: str,
           hint: str) -> None:
    """``step(quorum)`` each second until it says done; the quorum described through
    ``runner`` each time (a failure of the tool is retried for up to a minute: the same
    failure for longer is not transient)."""
    def probe():
        done, why = step(describe(ctx, runner, boot, replication=replication))
        if not done:
            raise NotYet(why)
        return True

    try:
        waiting.until(waiting.Strategy(probe, what, interval=1.0, patience=60.0, hint=hint), deadline,
                      log=ctx.log)
    except WaitTimeout as exc:
        raise KopsError(f"{failed}: {exc.message.split(': ', 1)[-1]}", hint=hint) from exc


# -- the policy ----------------------------------------------------------------------------------

def extend(plan: Plan, bundle, observed: Observed, info) -> Plan:
    """``plan`` with the quorum policy (pure but for the pending voters read from kops's state).
    ``info``: what the provider can do (kops.providers.base.ProviderInfo)."""
    topo = bundle.topo
    if topo.mode != "kraft":
        return plan
    controllers = {nb.name for nb in bundle if nb.node.is_controller}
    had = [o for o in observed.nodes.values() if o.role in ("controller", "combined") and o.exists]
    if not had:
        return plan   # a new cluster: formatted with its voters
    created = [a.node for a in plan.of("create") if a.node in controllers]
    leaving = sorted((o for o in observed.nodes.values() if o.role == "controller" and o.name not in bundle.nodes),
                     key=lambda o: (o.id == observed.controller, o.name))
    if not info.sees_unlisted_nodes:
        _refuse_unseen(topo.name, controllers)
    resumed = [n for n in pending(topo.name) if n in controllers and n not in created
               and observed.get(n).exists]
    if not created and not leaving and not resumed:
        return plan
    _refuse(topo, created, leaving, serving=any(o.running for o in had))
    out = Plan(summary=dict(plan.summary))
    for o in leaving:
        out.add(RemoveController(node=o.name, voter=o.id, reason="left the inventory"))
        out.add(Stop(node=o.name, host=o.where or None, grace=o.stop_grace or 30, reason="no longer a voter"))
        out.add(Remove(node=o.name, host=o.where or None, reason="left the inventory: container/unit, data and "
                                                                 "logs removed"))
        out.summary[o.name] = ("remove", "left the inventory: removed from the quorum's voters, stopped, removed")
    steps = list(plan.steps)
    at = _join_point(steps, created)
    for s in steps[:at]:
        out.add(*s)
    for n in created + resumed:
        out.add(AddController(node=n, voter=bundle.nodes[n].node.id, reason="new in the inventory"
                              if n in created else "an earlier add did not finish"))
        out.summary.setdefault(n, ("create", "joins the KRaft quorum"))
    for s in steps[at:]:
        out.add(*s)
    return out


def _refuse_unseen(cluster: str, controllers: set[str]) -> None:
    """A provider that sees the inventory's nodes only would not see a controller left out
    of the inventory; it is known from kops's state, and removing it is refused before
    anything. (Both providers see such nodes now: Docker by label, SSH from kops's record of
    the nodes it placed.)"""
    gone = sorted(set(known(cluster)) - controllers)
    if gone:
        raise InputError(f"controllers {', '.join(gone)} ran in cluster {cluster} and are not in the inventory, "
                         "and this provider cannot see them to remove them; nothing was changed",
                         hint=f"keep controllers.nodes at {len(controllers) + len(gone)}")


def _refuse(topo, created: list[str], leaving: list, *, serving: bool) -> None:
    """A static quorum cannot change its voters; voters cannot leave a quorum that is down."""
    if topo.quorum != "dynamic":
        what = "adding " + ", ".join(created) if created else "removing " + ", ".join(o.name for o in leaving)
        raise InputError(
            f"cluster {topo.name} has a static KRaft quorum (controller.quorum.voters): its voters cannot change "
            f"at run time, so {what} is refused; nothing was changed",
            hint="keep controllers.nodes as it is; a dynamic quorum (KIP-853) is what kops gives new KRaft clusters "
                 "of Kafka 4.1+: make a new cluster and move the data (e.g. MirrorMaker 2), or upgrade its "
                 "kraft.version with Kafka's own tools and rewrite its controller settings by hand")
    if leaving and not serving:
        raise InputError("controllers " + ", ".join(o.name for o in leaving) + " would leave a quorum that is not "
                         "running: they must be removed from the voters first; start the cluster with the "
                         "previous inventory, then change controllers.nodes")


def _join_point(steps: list, created: list[str]) -> int:
    """Where new controllers join: right after they started and were awaited (before the
    other nodes roll onto the new bootstrap list); without such a wait, at the end."""
    if not created:
        return len(steps)
    first = next(i for i, s in enumerate(steps) if any(a.kind == "create" and a.node in created for a in s))
    return next((i + 1 for i in range(first + 1, len(steps)) if isinstance(steps[i][0], Wait)), len(steps))


def pending_of(plan: Plan) -> list[str]:
    return [a.node for a in plan.actions if isinstance(a, AddController)]
