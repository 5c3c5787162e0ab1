"""ZooKeeper to KRaft on Kafka 3.9 (KIP-866): `kops migrate --to-kraft`.

The migration is a list of phases; each is a topology (spec -> nodes -> bundle), so the
planner and the gates of `kops up` do the work: new nodes created and awaited, changed
nodes rolled one at a time behind safe-to-stop and kafka-ready, the active controller
last. What is particular to a migration is only which settings each node has in which
phase (:func:`phase_topology`) and two observations (:func:`metadata_migrated`, the
ZooKeeper znodes of a rollback).

=====================  ==========================================================  ========
phase                  what changes                                                 rollback
=====================  ==========================================================  ========
controllers            dedicated KRaft controllers (static quorum, the cluster's   yes
                       id) join with ``zookeeper.metadata.migration.enable``
brokers-migrating      brokers rolled into migration mode (ZooKeeper mode, plus     yes
                       the controllers' quorum and IBP pinned)
metadata-migrated      the active controller has copied the metadata from          yes
                       ZooKeeper (its ``/migration`` znode holds a KRaft offset)
brokers-kraft          brokers rolled to KRaft (process.roles=broker, their data    yes
                       and meta.properties kept)
controllers-kraft      controllers rolled out of migration mode: the end of         no
                       dual writes (finalization: no way back to ZooKeeper)
zookeeper-stopped      ZooKeeper stopped (removed with ``--purge-zookeeper``), the  no
                       cluster converged onto the KRaft inventory
=====================  ==========================================================  ========

Every phase is a checkpoint in ``<state>/clusters/NAME/migration.json`` (the ZooKeeper
inventory, the controller count, the cluster id, the phases done and the one under
way): a failure stops at a named phase, and running the command again resumes there
(a phase re-planned against what the nodes run now changes only what is left).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

from kops.kafka import health
from kops.bundle import render
from kops.store import state
from kops.model import topology
from kops.core.errors import InputError, KopsError, NotFoundError, seconds
from kops.store.migration_record import FINAL, PHASES, WORDS, _file, _save, checkpoint, done_count, guard, in_progress
from kops.kafka.zookeeper import metadata_migrated, migration_znode, zk_shell  # noqa: F401 - kops.migrate's API
from kops.plan import ClusterAction, NodeObs, Observed, Plan, Remove, Stop, Wait, plan_up
from kops.model.spec import ClusterSpec
from kops.model.topology import Topology
from kops.model import inventory
from kops.orchestration import gates
from kops.orchestration import lifecycle
from kops.orchestration import execute
from kops.orchestration import preflight as upgrade
from kops.plan import quorum

def kraft_spec(zk: ClusterSpec, controllers: int | None = None) -> ClusterSpec:
    """The inventory of the cluster after the migration: KRaft, dedicated controllers (on
    SSH: on the ZooKeeper hosts, which get the controller role instead), no ZooKeeper;
    ZooKeeper-only settings (``zookeeper.*``, the pinned inter-broker protocol) left out."""

    data = zk.model_dump(mode="json", exclude_unset=True, by_alias=True)
    data.setdefault("kafka", {})["mode"] = "kraft"
    zsec = data.pop("zookeeper", None) or {}
    for section in (data.get("kafka", {}), data.get("brokers", {})):
        cfg = section.get("config") or {}
        for key in [k for k in cfg if k.startswith("zookeeper.") or k == "inter.broker.protocol.version"]:
            del cfg[key]
    data["nodes"] = {n: o for n, o in (data.get("nodes") or {}).items() if not n.startswith("zoo")}
    if not data["nodes"]:
        del data["nodes"]
    ctl: dict = {}
    if zk.hosts:   # hosts of their own (SSH): the controllers go where ZooKeeper was
        hosts = data.get("hosts") or {}
        for h in hosts.values():
            roles = h.get("roles") or []
            if "zookeeper" in roles:
                h["roles"] = [("controller" if r == "zookeeper" else r) for r in roles]
        count = sum(1 for h in hosts.values() if "controller" in (h.get("roles") or []))
        ctl["nodes"] = controllers or count
    else:
        ctl["nodes"] = controllers or 3
    if "heap" in zsec and zk.profile != "fast":
        ctl["heap"] = "256m"
    data["controllers"] = ctl
    return inventory.validate(data, f"cluster {zk.name} after the migration to KRaft")


def check_source(zk: ClusterSpec, controllers: int | None) -> None:
    """What kops can migrate: a ZooKeeper-mode 3.9 cluster, plain listeners."""
    p = []
    if zk.mode != "zookeeper":
        p.append(f"kafka.mode: cluster {zk.name}'s inventory is in {zk.mode} mode: only a ZooKeeper-mode cluster "
                 "is migrated to KRaft")
    elif not zk.kafka.version.startswith("3.9."):
        p.append(f"kafka.version: {zk.kafka.version}: the migration runs on Kafka 3.9 (the last version with "
                 "ZooKeeper and the migration's bridge release); upgrade to 3.9.2 first (kops upgrade --to 3.9.2)")
    if zk.security.tls:
        p.append("security: migrating a TLS/SASL cluster is not supported yet (the controllers would need the "
                 "brokers' listener security and SCRAM credentials in ZooKeeper); migrate a plaintext cluster")
    if controllers is not None and controllers % 2 == 0:
        p.append(f"--controllers {controllers}: a KRaft quorum needs an odd number of voters (1, 3 or 5)")
    if p:
        raise InputError(f"cluster {zk.name} cannot be migrated to KRaft:\n  - " + "\n  - ".join(p),
                         hint="nothing was changed")


@dataclass
class PhaseView:
    """One phase's desired cluster: the merged topology (ZooKeeper, controllers, brokers and
    the rest), which topology renders each node, and the bundle."""

    topo: Topology
    bundle: render.Bundle
    owners: dict[str, Topology] = field(default_factory=dict)


def _protocols(topo: Topology, node) -> str:
    return ",".join(f"{n}:PLAINTEXT" for n in topo.listeners(node))


def phase_topology(zk: ClusterSpec, kr: ClusterSpec, cid: str, phase: str, *,
                   published: dict | None = None, rollback: bool = False) -> PhaseView:
    """The cluster as ``phase`` wants it. ``rollback``: the way back to ZooKeeper, with no
    controllers and the brokers in plain ZooKeeper mode, their metadata log removed before
    they start (Kafka's rollback procedure)."""
    i = PHASES.index(phase)
    zk_t = topology.build(zk, "n/a", published)
    kr_t = topology.build(kr, cid, published, quorum="static")
    if i == len(PHASES) - 1:   # converged: the KRaft inventory itself
        return PhaseView(kr_t, render.build(kr_t), {n.name: kr_t for n in kr_t.nodes})
    brokers_kraft = i >= PHASES.index("brokers-kraft") and not rollback
    brokers_migrating = PHASES.index("brokers-migrating") <= i and not brokers_kraft and not rollback
    ctl_migrating = i < FINAL
    taken = {p for n in zk_t.nodes for p in n.ports.values()}
    ctls = []
    for c in ([] if rollback else kr_t.controllers):
        c = replace(c, ports=dict(c.ports))
        if c.ports.get("metrics") in taken:   # the metrics ports of ZooKeeper's nodes until it stops
            c.ports["metrics"] = max(taken | {p for n in kr_t.nodes for p in n.ports.values()}) + 1
        taken.add(c.ports.get("metrics", 0))
        ctls.append(c)
    owner_brokers = kr_t if brokers_kraft else zk_t
    nodes = zk_t.zookeepers + ctls + owner_brokers.brokers + [n for n in owner_brokers.nodes
                                                              if n.role in ("connect", "registry")]
    migration: dict[str, dict] = {}
    if ctl_migrating:
        for c in ctls:
            migration[c.name] = {"zookeeper.metadata.migration.enable": True,
                                 "zookeeper.connect": zk_t.zookeeper_connect,
                                 "listener.security.protocol.map":
                                     "CONTROLLER:PLAINTEXT," + _protocols(zk_t, zk_t.brokers[0]),
                                 "inter.broker.listener.name": "INTERNAL"}
    if brokers_migrating:
        for b in zk_t.brokers:
            migration[b.name] = {"zookeeper.metadata.migration.enable": True,
                                 "controller.quorum.voters": kr_t.quorum_voters,
                                 "controller.listener.names": "CONTROLLER",
                                 "listener.security.protocol.map": _protocols(zk_t, b) + ",CONTROLLER:PLAINTEXT",
                                 "inter.broker.protocol.version": ".".join(zk.kafka.version.split(".")[:2])}
    drop = frozenset(b.name for b in zk_t.brokers) if rollback else frozenset()
    merged = Topology(kr if brokers_kraft else zk, cid, nodes, quorum="static" if brokers_kraft else "",
                      migration=migration, drop_metadata_log=drop)
    found = topology.check(merged)
    if found:
        raise InputError(f"cluster {zk.name}: the controllers do not fit beside ZooKeeper and the brokers "
                         "during the migration:\n  - " + "\n  - ".join(found),
                         hint="give the controllers other ports (controllers.port) or other hosts")
    owners = {n.name: (kr_t if n.is_controller or (brokers_kraft and n.role != "zookeeper") else zk_t)
              for n in nodes}
    nbs = {}
    for n in nodes:
        view = replace(owners[n.name], migration=migration, drop_metadata_log=drop)
        nbs[n.name] = render.node_bundle(view, n)
    return PhaseView(merged, render.Bundle(merged, nbs), owners)


def assumed(bundle: render.Bundle, observed: Observed | None = None) -> Observed:
    """What the nodes run once ``bundle`` is applied (for planning later phases in a dry run)."""
    nodes = {nb.name: NodeObs(nb.name, nb.node.role, nb.node.id, exists=True, running=True, state="running",
                              files=dict(nb.sums), digest=nb.digest, formatted=True)
             for nb in bundle}
    return Observed(nodes=nodes, hosts={}, meta=dict(observed.meta) if observed else {})


# -- observations --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeleteZnode(ClusterAction):
    """A znode deleted with ZooKeeper's own shell in the first ZooKeeper node (a rollback's
    /controller and /migration); one that is gone already is fine."""

    kind = "delete-znode"
    path: str = ""
    recursive: bool = False

    def describe(self) -> str:
        return f"delete znode {self.path}" + (" and its children" if self.recursive else "") + " in ZooKeeper"

    def execute(self, ctx, bundle, deadline: float) -> None:
        words = ("deleteall" if self.recursive else "delete", self.path)
        code, text = zk_shell(ctx.provider, ctx.topo, *words)
        if code != 0 and "does not exist" not in text.lower():
            raise KopsError(f"ZooKeeper refused `{' '.join(words)}` (exit code {code})", details=text[-2000:],
                            hint=f"kops migrate{ctx.scope} --rollback again")


def cluster_id_of(client: health.Client) -> str:
    """The id of a running ZooKeeper-mode cluster (the controllers are formatted with it)."""
    from confluent_kafka.admin import AdminClient

    try:
        admin = AdminClient(health._quiet_conf(client, 10))   # kept: a collected client cancels its requests
        cid = admin.list_topics(timeout=20).cluster_id
    except Exception as exc:   # noqa: BLE001 - the client's own error is the message
        raise KopsError(f"the cluster's id could not be read from {client.bootstrap}: {exc}",
                        hint="the cluster must be running and healthy to be migrated (kops status)") from exc
    if not cid:
        raise KopsError("the cluster reported no id", hint="kops status")
    return cid


# -- the operation -----------------------------------------------------------------------------------

@dataclass
class Outcome:
    cluster: str
    phases: list[dict] = field(default_factory=list)   # {phase, words, status, seconds, plan}
    dry_run: bool = False
    rolled_back: bool = False
    seconds: float = 0.0
    inventory: str | None = None      # the KRaft inventory (YAML)
    status: object = None

    def as_dict(self) -> dict:
        return {"cluster": self.cluster, "dry_run": self.dry_run, "rolled_back": self.rolled_back,
                "seconds": round(self.seconds, 1), "phases": self.phases, "inventory": self.inventory,
                "status": self.status.as_dict() if self.status is not None else None}


def describe(name: str) -> dict:
    """`kops migrate --status`: where the migration stands."""
    cp = checkpoint(name)
    if not cp:
        return {"cluster": name, "state": "not-started", "phases": [
            {"phase": p, "words": WORDS[p], "status": "to do"} for p in PHASES]}
    n = done_count(cp)
    hist = {h["phase"]: h for h in cp.get("history", [])}
    rows = []
    for i, p in enumerate(PHASES):
        st = "done" if i < n else ("under way (interrupted or failed)" if cp.get("current") == p else "to do")
        rows.append({"phase": p, "words": WORDS[p], "status": st,
                     **({"seconds": hist[p]["seconds"]} if p in hist else {})})
    can_roll_back = cp.get("state") == "migrating" and n <= FINAL and cp.get("current") != PHASES[FINAL]
    return {"cluster": name, "state": cp.get("state"), "done": cp.get("done"), "current": cp.get("current"),
            "controllers": cp.get("controllers"), "cluster_id": cp.get("cluster_id"),
            "rollback_possible": can_roll_back, "error": cp.get("error"), "phases": rows}


def _context(spec, view: PhaseView, provider, log, scope, again: str = "--to-kraft"):

    return gates.Context(view.topo, provider, log, scope, client=lifecycle._client(spec, view.topo),
                         again=f"kops migrate{scope} {again}")


def _run(spec, view: PhaseView, plan: Plan, provider, deadline: float, log, scope: str,
         again: str = "--to-kraft") -> None:
    """One phase's own plan (stops, removals, znodes, a gate) through the executor."""

    execute.run(plan, _context(spec, view, provider, log, scope, again), view.bundle, deadline)


def _apply_view(spec, view: PhaseView, provider, deadline: float, log, scope: str,
                again: str = "--to-kraft") -> Plan:
    """Converge the nodes onto one phase's bundle with the planner and its gates."""

    observed = provider.observe(view.bundle)
    plan = plan_up(view.bundle, observed)
    if sum(1 for a in plan.of("reconfigure") if view.bundle.nodes[a.node].node.is_kafka) > 1:
        observed.controller = lifecycle.active_controller(provider, view.topo, observed)
        plan = plan_up(view.bundle, observed)
    if plan.changes:
        provider.preflight(plan, view.bundle, observed)
        _run(spec, view, plan, provider, deadline, log, scope, again)
    return plan


def _stop_zookeeper(view: PhaseView, observed: Observed, purge: bool) -> Plan:
    plan = Plan()
    zoo = [o for o in observed.nodes.values() if o.role == "zookeeper"]
    plan.add(*[Stop(node=o.name, host=o.where or None, grace=o.stop_grace or 30,
                    reason="ZooKeeper is not used any more") for o in zoo if o.running])
    if purge:
        plan.add(*[Remove(node=o.name, host=o.where or None, reason="--purge-zookeeper: its data removed")
                   for o in zoo if o.exists])
    return plan


def migrate(spec: ClusterSpec, provider, *, controllers: int | None = None, purge_zookeeper: bool = False,
            dry_run: bool = False, timeout: float = 1800, log=print, scope: str = "") -> Outcome:
    """Migrate (or resume migrating) ``spec``'s ZooKeeper-mode cluster to KRaft."""

    t0 = time.monotonic()
    deadline = t0 + seconds(timeout, low=1)
    cp = checkpoint(spec.name)
    out = Outcome(spec.name, dry_run=dry_run)
    if cp.get("state") == "migrated":
        return _after(spec, cp, provider, purge_zookeeper, dry_run, out, log, t0)
    if spec.mode == "kraft" and cp.get("zk_inventory"):
        zk = _zk_of(cp)
    else:
        zk = spec
    check_source(zk, controllers)
    if cp.get("state") == "migrating" and cp.get("current") == "rollback":
        raise InputError(f"cluster {zk.name}: a rollback of this migration to ZooKeeper is under way (it stopped"
                         + (f": {cp['error']}" if cp.get("error") else "") + "); the migration cannot resume from "
                         "there (its controllers may be gone)",
                         hint=f"kops migrate{scope} --rollback finishes the rollback; then --to-kraft starts the "
                              "migration again")
    if cp.get("state") == "migrating":
        if controllers is not None and controllers != cp["controllers"]:
            raise InputError(f"--controllers {controllers}: the migration under way deploys {cp['controllers']} "
                             "controllers", hint=f"resume without --controllers, or roll back first")
        controllers = cp["controllers"]
    kr = kraft_spec(zk, controllers)
    published = lifecycle.published_ports(kr, provider, persist=not dry_run)
    plain = topology.build(zk, "n/a", published)
    if cp.get("state") != "migrating":
        observed = provider.observe(render.build(plain))
        if not any(o.running for o in observed.nodes.values()):
            raise NotFoundError(f"cluster {zk.name} is not running: nothing to migrate",
                                hint=f"kops up{scope} first (the migration moves a running cluster)")
        running_mode = upgrade.running_mode(zk, observed)
        if running_mode == "kraft" or any(o.cluster_id for o in observed.nodes.values()):
            raise InputError(f"cluster {zk.name} runs in KRaft mode already", hint=f"kops status{scope}")
        st = lifecycle._probe_status(provider, plain, observed, "zookeeper", zk.kafka.version, zk.name, scope)
        if st.state != "healthy":
            raise KopsError(f"cluster {zk.name} is {st.state}: " + "; ".join(st.problems),
                            hint="a migration starts from a healthy cluster: fix it first (kops up, kops status)")
        cid = cluster_id_of(lifecycle._client(zk, plain))
        cp = {"state": "migrating", "cluster": zk.name, "cluster_id": cid, "controllers": kr.controller_nodes,
              "zk_inventory": zk.model_dump(mode="json", exclude_unset=True, by_alias=True),
              "done": "", "current": "", "history": [], "started_at": time.time()}
    cid = cp["cluster_id"]
    start = done_count(cp)
    # every phase's plan, each against what the one before leaves (the first against the nodes)
    observed = None
    for p in PHASES[start:]:
        view = phase_topology(zk, kr, cid, p, published=published)
        if p == "metadata-migrated":
            plan = Plan()
            plan.add(Wait(gate="zk-migration"))
        elif p == "zookeeper-stopped":
            prev = phase_topology(zk, kr, cid, PHASES[FINAL], published=published)
            obs = observed or provider.observe(prev.bundle)
            plan = _stop_zookeeper(prev, obs, purge_zookeeper)
            plan.steps += plan_up(view.bundle, _without_zk(assumed(prev.bundle, obs))).steps
        else:
            plan = plan_up(view.bundle, observed or provider.observe(view.bundle))
        observed = assumed(view.bundle, observed)
        out.phases.append({"phase": p, "words": WORDS[p], "status": "to do", "plan": plan.lines()})
    if dry_run:
        out.seconds = time.monotonic() - t0
        out.inventory = inventory_text(kr)
        return out
    state.cluster_id(kr, cid, persist=True)
    _save(zk.name, cp)
    for row in out.phases:
        p = row["phase"]
        began = time.monotonic()
        cp["current"] = p
        _save(zk.name, cp)
        log(f"phase {PHASES.index(p) + 1}/{len(PHASES)} {p}: {WORDS[p]}")
        view = phase_topology(zk, kr, cid, p, published=published)
        try:
            if p == "metadata-migrated":
                wait = Plan()
                wait.add(Wait(gate="zk-migration"))
                _run(zk, view, wait, provider, deadline, log, scope)
            elif p == "zookeeper-stopped":
                prev = phase_topology(zk, kr, cid, PHASES[FINAL], published=published)
                stop = _stop_zookeeper(prev, provider.observe(prev.bundle), purge_zookeeper)
                _run(kr, prev, stop, provider, deadline, log, scope)
                _apply_view(kr, view, provider, deadline, log, scope)
            else:
                _apply_view(zk if p in PHASES[:3] else kr, view, provider, deadline, log, scope)
        except KopsError as exc:
            cp["error"] = f"{p}: {exc.message}"
            _save(zk.name, cp)
            raise type(exc)(f"the migration stopped in phase {p} ({WORDS[p]}): {exc.message}",
                            details=exc.details,
                            hint=(exc.hint + "; then " if exc.hint else "") + f"`kops migrate{scope} --to-kraft` "
                                 "resumes from this phase" + (f" (or --rollback goes back to ZooKeeper)"
                                                              if PHASES.index(p) < FINAL else ""),
                            exit_code=exc.exit_code) from exc
        secs = round(time.monotonic() - began, 1)
        cp.update(done=p, current="", error=None)
        cp["history"] = [h for h in cp.get("history", []) if h["phase"] != p] + [
            {"phase": p, "seconds": secs, "at": time.time()}]
        _save(zk.name, cp)
        row.update(status="done", seconds=secs)
        log(f"phase {p} done ({secs:.1f} s)")
    cp.update(state="migrated", zookeeper="removed" if purge_zookeeper else "stopped", finished_at=time.time())
    _save(zk.name, cp)
    upgrade.note(zk.name, version=kr.kafka.version, mode="kraft")
    quorum.note_known(zk.name, [n.name for n in kr_topology(kr, cid, published).controllers])
    state.note_started(zk.name)
    out.inventory = inventory_text(kr)
    out.status = lifecycle.get_status(kr, provider, scope=scope)
    out.seconds = time.monotonic() - t0
    return out


def kr_topology(kr: ClusterSpec, cid: str, published) -> Topology:
    return topology.build(kr, cid, published, quorum="static")


def _without_zk(observed: Observed) -> Observed:
    return Observed(nodes={n: o for n, o in observed.nodes.items() if o.role != "zookeeper"},
                    hosts=observed.hosts, meta=observed.meta)


def _zk_of(cp: dict) -> ClusterSpec:

    return inventory.validate(cp["zk_inventory"], f"cluster {cp['cluster']} before the migration (kops's record)")


def _after(spec, cp, provider, purge_zookeeper, dry_run, out: Outcome, log, t0) -> Outcome:
    """A finished migration: nothing to do, except removing a ZooKeeper left stopped."""
    zk = _zk_of(cp)
    kr = kraft_spec(zk, cp["controllers"])
    out.inventory = inventory_text(kr)
    out.phases = [{"phase": p, "words": WORDS[p], "status": "done"} for p in PHASES]
    if purge_zookeeper and cp.get("zookeeper") != "removed":
        observed = provider.observe(None)
        plan = _stop_zookeeper(None, observed, True)
        out.phases[-1]["plan"] = plan.lines()
        if not dry_run:
            view = phase_topology(zk, kr, cp["cluster_id"], PHASES[FINAL])
            _run(kr, view, plan, provider, time.monotonic() + 600, log, "")
            cp["zookeeper"] = "removed"
            _save(zk.name, cp)
            log(f"ZooKeeper of cluster {zk.name} removed (its nodes and data)")
    else:
        log(f"cluster {zk.name} was migrated to KRaft already; nothing to do"
            + ("" if cp.get("zookeeper") == "removed" else " (its ZooKeeper is stopped, data kept: "
               "--purge-zookeeper removes it)"))
    out.seconds = time.monotonic() - t0
    return out


def rollback(spec: ClusterSpec, provider, *, dry_run: bool = False, timeout: float = 1800, log=print,
             scope: str = "") -> Outcome:
    """Back to ZooKeeper mode, for as long as Kafka allows it (the controllers still in
    migration mode): brokers in KRaft go back to migration mode, the controllers are
    removed, the ZooKeeper controller and migration znodes deleted, then the brokers roll
    into plain ZooKeeper mode with their metadata log removed (Kafka's own procedure)."""
    t0 = time.monotonic()
    deadline = t0 + seconds(timeout, low=1)
    cp = checkpoint(spec.name)
    if cp.get("state") != "migrating":
        raise InputError(f"cluster {spec.name} has no migration under way to roll back"
                         + (f" (it was migrated to KRaft: that cannot be undone)" if cp.get("state") == "migrated"
                            else ""), hint=f"kops migrate{scope} --status")
    n = done_count(cp)
    if n > FINAL or cp.get("current") == PHASES[FINAL]:
        raise InputError(f"cluster {spec.name}: the controllers have left migration mode (phase "
                         f"{PHASES[FINAL]}), and Kafka cannot go back to ZooKeeper after that",
                         hint=f"finish the migration: kops migrate{scope} --to-kraft")
    zk = _zk_of(cp)
    kr = kraft_spec(zk, cp["controllers"])
    cid = cp["cluster_id"]

    published = lifecycle.published_ports(kr, provider, persist=False)
    out = Outcome(zk.name, dry_run=dry_run, rolled_back=not dry_run)
    if cp.get("current") == "rollback":   # a rollback that stopped: run again from where the migration was
        reached = int(cp.get("rollback_from") or n)
        finished = list(cp.get("rollback_done") or [])   # its steps that ended: never run twice
    else:
        reached = max(n, PHASES.index(cp["current"]) + 1 if cp.get("current") in PHASES else 0)
        finished = []
    brokers_touched = reached > PHASES.index("brokers-migrating")
    steps = []
    if reached > PHASES.index("brokers-kraft"):
        steps.append(("brokers-back-to-migration", "roll the brokers back to ZooKeeper mode (still migrating)",
                      phase_topology(zk, kr, cid, "brokers-migrating", published=published)))
    steps.append(("controllers-removed", "stop and remove the KRaft controllers, delete ZooKeeper's /controller "
                  "and /migration znodes", None))
    if brokers_touched:
        steps.append(("brokers-zookeeper", "roll the brokers out of migration mode, their metadata log removed",
                      phase_topology(zk, kr, cid, "controllers", published=published, rollback=True)))
    plain = topology.build(zk, "n/a", published)
    steps.append(("converged", "converge onto the ZooKeeper inventory",
                  PhaseView(plain, render.build(plain), {})))
    # A step that ended is not run again: the controllers it removed would come back (a new,
    # empty quorum that the brokers still in migration mode follow, and fail on: "truncation
    # below the high watermark"), the brokers it rolled out of migration mode would roll back in.
    steps = [s for s in steps if s[0] not in finished]
    observed = None
    for name, words, view in steps:
        if view is None:
            obs = observed or provider.observe(None)
            plan = _remove_controllers(obs)
            observed = Observed({k: o for k, o in obs.nodes.items() if o.role != "controller"}, obs.hosts, obs.meta)
        else:
            plan = plan_up(view.bundle, observed or provider.observe(view.bundle))
            observed = assumed(view.bundle, observed)
        out.phases.append({"phase": name, "words": words, "status": "to do", "plan": plan.lines()})
    if dry_run:
        out.seconds = time.monotonic() - t0
        return out
    cp.update(current="rollback", rollback_from=reached, rollback_done=finished)
    _save(zk.name, cp)
    last = phase_topology(zk, kr, cid, "controllers", published=published)
    for (name, words, view), row in zip(steps, out.phases):
        began = time.monotonic()
        log(f"rollback: {words}")
        try:
            if view is None:
                _run(zk, last, _remove_controllers(provider.observe(last.bundle)), provider, deadline, log, scope,
                     "--rollback")
            else:
                _apply_view(zk, view, provider, deadline, log, scope, "--rollback")
        except KopsError as exc:
            cp["error"] = f"rollback, {name}: {exc.message}"
            _save(zk.name, cp)
            raise type(exc)(f"the rollback stopped at {name} ({words}): {exc.message}", details=exc.details,
                            hint=(exc.hint + "; then " if exc.hint else "") + f"`kops migrate{scope} --rollback` "
                                 "runs it again from there", exit_code=exc.exit_code) from exc
        row.update(status="done", seconds=round(time.monotonic() - began, 1))
        cp["rollback_done"] = finished = finished + [name]
        _save(zk.name, cp)
    cp.update(state="rolled-back", current="", error=None, rolled_back_at=time.time())
    _save(zk.name, cp)

    upgrade.note(zk.name, version=zk.kafka.version, mode="zookeeper")
    out.status = lifecycle.get_status(zk, provider, scope=scope)
    out.seconds = time.monotonic() - t0
    return out


def _remove_controllers(obs: Observed) -> Plan:
    """The rollback's middle: the migration's controllers stopped and removed, then
    ZooKeeper's /controller and /migration znodes deleted (Kafka's own procedure)."""
    plan = Plan()
    ctl = sorted((o for o in obs.nodes.values() if o.role == "controller"), key=lambda o: o.name)
    plan.add(*[Stop(node=o.name, host=o.where or None, grace=o.stop_grace or 30) for o in ctl if o.running])
    plan.add(*[Remove(node=o.name, host=o.where or None, reason="the migration's controller")
               for o in ctl if o.exists])
    plan.add(DeleteZnode(path="/controller", recursive=True), DeleteZnode(path="/migration"))
    return plan


def inventory_text(kr: ClusterSpec) -> str:
    import yaml

    data = kr.model_dump(mode="json", exclude_unset=True, by_alias=True)
    head = (f"# cluster {kr.name} after `kops migrate --to-kraft` (KRaft, {kr.controller_nodes} controllers, "
            f"static quorum); written by kops\n")
    return head + yaml.safe_dump(data, sort_keys=False)
