"""The library behind `kops up/down/status/restart/logs/check`, the same for every provider.

Each operation follows one path: spec -> topology -> bundle -> observe (provider) ->
plan (pure) -> apply step by step (provider) with gates between steps -> status. Library
callers use these functions directly; the CLI only parses flags and prints.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from kops.model import configdef, topology
from kops.orchestration import execute, gates, status
from kops.kafka import health
from kops.bundle import diff, render
from kops.store import secrets, state
from kops.core import wait as waiting
from kops.core.errors import InputError, KopsError, NotFoundError, NotYet, WaitTimeout, seconds
from kops.plan import ClusterAction, Observed, Plan, plan_down, plan_restart, plan_up
from kops.model.spec import ClusterSpec, SpecError
from kops.orchestration.status import ClusterStatus
from kops.store import migration_record
from kops.orchestration import preflight as upgrade
from kops.plan import quorum
from kops.plan import scale
from kops.kafka import data
from kops.kafka import acls


@dataclass
class Result:
    plan: Plan
    status: ClusterStatus | None
    seconds: float
    changed: bool
    dry_run: bool = False
    topics: "data.TopicPlan | None" = None     # `up`: the inventory's topics (kops.data)
    timeline: list | None = None   # `up`: each step as it ran ({step, at, seconds}), for --output json
    security: "acls.SecurityPlan | None" = None   # `up`: the inventory's ACLs and quotas (kops.kafka.acls)

    def as_dict(self) -> dict:
        d = self.plan.as_dict()
        return {"changed": self.changed, "dry_run": self.dry_run, "seconds": round(self.seconds, 1),
                "actions": d["nodes"], "plan": d["steps"],
                "topics": self.topics.as_dict() if self.topics else [],
                "security": self.security.as_dict() if self.security else None,
                "timeline": self.timeline or [],
                "status": self.status.as_dict() if self.status else None}


# -- shared steps ------------------------------------------------------------------------------

def _cluster_id(spec: ClusterSpec, observed: Observed, persist: bool) -> str:
    """KRaft: the id the nodes hold wins; a conflicting one is bad input on every provider."""
    if spec.mode != "kraft":
        return "n/a"
    found = sorted({o.cluster_id for o in observed.nodes.values() if o.cluster_id})
    if len(found) > 1:
        raise InputError(f"the nodes of {spec.name} hold data of different Kafka clusters: {', '.join(found)}",
                         hint="another cluster used these data folders: purge it (kops down --purge) or "
                              "give this one another name")
    if found and spec.kafka.cluster_id and spec.kafka.cluster_id != found[0]:
        raise InputError(f"kafka.cluster_id: {spec.kafka.cluster_id!r} differs from the id of the existing "
                         f"cluster {spec.name!r} ({found[0]})",
                         hint="an existing cluster keeps its id: remove kafka.cluster_id, or "
                              "`kops down --purge` first (deletes its data)")
    return state.cluster_id(spec, found[0] if found else None, persist=persist)


def credentials(spec: ClusterSpec, topo, *, persist: bool = True) -> render.Credentials | None:
    """A secure cluster's CA, node certificates and admin password (made once, kept)."""
    if not spec.security.tls:
        return None
    users = {u: us.password for u, us in spec.security.users.items()}
    services = render.service_users(spec)   # the Connect workers' and the registry's own SCRAM users
    pw = secrets.passwords(spec.name, {**users, **dict.fromkeys(services)}, persist=persist)
    nodes = {}
    for n in topo.nodes:
        if n.is_kafka:
            c = secrets.node_cert(spec.name, n.name, topo.tls_names(n), persist=persist)
            nodes[n.name] = (c.key_pem, c.cert_pem)
    return render.Credentials(secrets.ca_pem(spec.name), nodes, pw[secrets.ADMIN], spec.security.mechanism,
                              users={u: pw[u] for u in services})


@dataclasses.dataclass(frozen=True)
class ServiceUsers(ClusterAction):
    """The SCRAM users of the Connect workers and the schema registry (kops-connect,
    kops-registry), made where missing once Kafka is ready and before those nodes start:
    they authenticate as these from their first start. An existing user is left alone."""

    kind = "users"
    users: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"create the SCRAM users {', '.join(self.users)} where missing (the Connect workers' and the registry's)"

    def execute(self, ctx, bundle, deadline: float) -> None:
        spec = ctx.topo.spec
        made = health.ensure_scram_users(ctx.kafka(), spec.security.mechanism,
                                         secrets.passwords(spec.name, dict.fromkeys(self.users), persist=False))
        if made:
            ctx.log(f"SCRAM user(s) {', '.join(made)} created ({spec.security.mechanism})")


def _with_service_users(plan: Plan, bundle) -> Plan:
    """Before the first step that starts a Connect worker or a registry node on a SASL
    cluster: a step that makes their SCRAM users (Kafka is ready by then)."""
    users = tuple(render.service_users(bundle.topo.spec))
    if not users:
        return plan
    for i, step in enumerate(plan.steps):
        if any(a.kind in ("create", "start", "reconfigure", "restart") and a.node in bundle.nodes
               and bundle.nodes[a.node].node.role in ("connect", "registry") for a in step):
            plan.steps.insert(i, [ServiceUsers(users=users, reason="the services' own users")])
            break
    return plan


def client_for(cluster: str, bootstrap: str, security: str | None) -> health.Client:
    """kops's own client of a cluster: plain, or with its TLS (and SASL) settings from the
    secrets kept on this machine. ``security``: "tls" or "tls,scram-sha-512" (a label's
    words) or None."""
    if not security:
        return health.Client(bootstrap)
    words = security.split(",")
    ca = secrets.folder(cluster) / "ca.pem"
    if not ca.is_file():
        raise KopsError(f"cluster {cluster} is secure and this machine has no CA of it ({ca})",
                        hint="run kops from the machine (or KOPS_STATE_DIR) that created the cluster")
    settings = {"ssl.ca.location": str(ca), "ssl.endpoint.identification.algorithm": "https"}
    if len(words) > 1:
        pw = secrets.passwords(cluster, {}, persist=False)[secrets.ADMIN]
        settings.update({"security.protocol": "SASL_SSL", "sasl.mechanism": words[1].upper(),
                         "sasl.username": secrets.ADMIN, "sasl.password": pw})
    else:
        settings["security.protocol"] = "SSL"
    return health.Client(bootstrap, tuple(sorted(settings.items())))


def _client(spec: ClusterSpec, topo) -> health.Client:
    sec = spec.security
    return client_for(spec.name, topo.bootstrap_servers,
                      ("tls" + (f",{sec.sasl}" if sec.sasl else "")) if sec.tls else None)


def published_ports(spec: ClusterSpec, provider, *, persist: bool) -> dict[str, dict[str, int]] | None:
    """``ports: auto``: the host ports of every node, picked free once and kept (in kops's
    state, or read back from the cluster's containers), so a cluster keeps its addresses."""
    if spec.ports != "auto":
        return None
    kept = state.ports(spec.name)
    if kept is None:
        kept = _ports_from_nodes(provider.observe(None)) if provider.info.sees_unlisted_nodes else {}
    taken = {p for ports in kept.values() for p in ports.values()}
    picked = {n: dict(v) for n, v in kept.items()}
    for n in topology.build(spec, "AAAAAAAAAAAAAAAAAAAAAA").nodes:
        for kind in topology.PUBLISHED:
            if kind in n.ports and kind not in picked.get(n.name, {}):
                port = _free_port(taken)
                taken.add(port)
                picked.setdefault(n.name, {})[kind] = port
    if persist and picked != kept:
        state.note_ports(spec.name, picked)
    return picked


def _ports_from_nodes(observed: Observed) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for o in observed.nodes.values():
        host_kind = {"zookeeper": "client", "connect": "rest", "registry": "rest"}.get(o.role, "external")
        for key, kind in (("host", host_kind), ("containers", "docker"),
                          ("jmx", "jmx"), ("metrics", "metrics")):
            addr = o.addresses.get(key, "")
            if ":" in addr and addr.rsplit(":", 1)[1].isdigit():
                out.setdefault(o.name, {})[kind] = int(addr.rsplit(":", 1)[1])
    return out


def _free_port(taken: set[int]) -> int:
    import socket

    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("0.0.0.0", 0))
            port = s.getsockname()[1]
        if port not in taken:
            return port
    raise KopsError("could not find a free host port")


def resolve(spec: ClusterSpec, provider, *, persist: bool):
    """(topology, bundle, observed) with the cluster id the nodes already hold."""
    provisional = spec.kafka.cluster_id or (state.cluster_id(spec, persist=False) if spec.mode == "kraft"
                                            else "n/a")
    published = published_ports(spec, provider, persist=persist)
    topo = topology.build(spec, provisional, published)
    creds = credentials(spec, topo, persist=persist)
    bundle = render.build(topo, creds)
    observed = provider.observe(bundle)
    cid = _cluster_id(spec, observed, persist)
    quorum = quorum_of(spec, observed)
    if cid != provisional or quorum != topo.quorum:
        topo = topology.build(spec, cid, published, quorum=quorum)
        bundle = render.build(topo, creds)
    return topo, bundle, observed


def quorum_of(spec: ClusterSpec, observed: Observed) -> str:
    """KRaft: the quorum the cluster's nodes run with (an existing static quorum stays
    static: it cannot become dynamic by a config change); a new cluster's by its version."""
    if spec.mode != "kraft":
        return ""
    kinds = {o.quorum for o in observed.nodes.values() if o.quorum}
    if "static" in kinds:
        return "static"
    return "dynamic" if kinds else topology.default_quorum(spec)


def _with_stops(observed: Observed, name: str) -> Observed:
    """Nodes `kops down` stopped did not crash, whatever their exit code says."""
    from dataclasses import replace

    kops_stopped = state.stopped(name)
    observed.nodes = {n: (replace(o, crashed=False, stopped_by_kops=True) if n in kops_stopped and not o.running
                          else o) for n, o in observed.nodes.items()}
    return observed


def _probe_status(provider, topo, observed, mode: str, version: str, name: str, scope: str) -> ClusterStatus:
    observed = _with_stops(observed, name)
    probes = None
    if observed.nodes:
        probes = status.collect(provider, topo, observed, mode, client=_observed_client(name, topo, observed))
    return status.build(name, provider.name, mode, version, topo, observed, probes, scope=scope)


MAX_WAIT = 86400      # the longest a status may look again at a degraded cluster (seconds)
SETTLE_SECONDS = 30   # how long `up` looks again at a cluster that is degraded for a moment


def _settled_status(spec: ClusterSpec, provider, scope: str, deadline: float, log) -> ClusterStatus:
    """The status `up` ends with: a cluster degraded for a moment (a KRaft election, a
    follower catching up on a loaded machine) is looked at again, within the deadline."""
    wait = max(0.0, min(SETTLE_SECONDS, deadline - time.monotonic()))
    return get_status(spec, provider, scope=scope, wait=wait, log=log)


def _with_files_read(bundle, observed: Observed, provider, log) -> Observed:
    """``observed`` with each running node's file sums taken from the files it holds now
    (read back through the provider): a file edited or removed on a node is then a change
    of the plan, named with its keys. A node whose files cannot be read keeps the noted sums."""
    nodes = dict(observed.nodes)
    for name, obs in observed.nodes.items():
        if not obs.running or name not in bundle.nodes:
            continue
        nb = bundle.nodes[name]
        try:
            got = provider.read_files(name, sorted(nb.files))
        except KopsError as exc:
            got = {}
            log(f"{name}: its files could not be read back ({exc.message}); compared by the sums kops noted")
        if not got:
            continue
        nodes[name] = dataclasses.replace(obs, files={p: render.sha(got[p]) if p in got else "(missing)"
                                                      for p in nb.files})
    return dataclasses.replace(observed, nodes=nodes)


def _name_changed_keys(plan: Plan, bundle, observed: Observed, provider) -> None:
    """A reconfigured node's reason names the keys that change (read from the node), not
    only the file: ``server.properties (log.retention.hours 168 -> 24)``."""
    for node, (action, reason) in list(plan.summary.items()):
        obs = observed.get(node)
        if action != "reconfigure" or node not in bundle.nodes or obs.files is None:
            continue
        nb = bundle.nodes[node]
        changed = nb.changed_files(obs.files)
        props = [p for p in changed if p.endswith(diff.PROPERTIES)]
        if not props:
            continue
        try:
            old = provider.read_files(node, props)
        except KopsError:
            continue
        # a file holding credentials (a secure node's server.properties): keys named, values not
        what = "rendered " + ", ".join(diff.words(p, old.get(p), nb.files[p], values=p not in nb.secret)
                                       for p in changed) + " changed; data kept"
        plan.summary[node] = (action, what)
        plan.steps = [[dataclasses.replace(a, reason=what) if a.kind == "reconfigure" and a.node == node else a
                       for a in step] for step in plan.steps]


def _ensure_users(spec: ClusterSpec, client, scope: str, log) -> None:
    """The inventory's SCRAM users exist in the cluster (made where missing)."""
    if not (spec.security.sasl and spec.security.users):
        return
    made = health.ensure_scram_users(client, spec.security.mechanism, {
        u: pw for u, pw in secrets.passwords(spec.name, {u: us.password for u, us in
                                                        spec.security.users.items()}).items()
        if u in spec.security.users})
    for u in made:
        log(f"user {u} created ({spec.security.mechanism}); `kops client-config {u}{scope}` writes its settings")


def _drop_kept_aside(provider, observed: Observed, st: ClusterStatus, log) -> None:
    """A node's previous container kept aside by a roll that was interrupted (Ctrl-C) is
    dropped once the cluster is healthy on the running ones: a rollback no longer needs it."""
    kept = [n for n in (observed.meta.get("kept_aside") or "").split(",") if n]
    if kept and st.state == "healthy":
        provider.settle(kept)
        log(f"removed the previous container of {', '.join(kept)} kept aside by an interrupted run "
            "(the cluster is healthy on the running ones)")


def _observed_client(name: str, topo, observed: Observed) -> health.Client:
    bootstrap = status.bootstrap(topo, observed)
    if topo is not None:
        return _client(topo.spec, topo)
    return client_for(name, bootstrap, observed.meta.get("security"))


def active_controller(provider, topo, observed) -> int | None:
    running = [o for o in observed.nodes.values() if o.running]
    if not running:
        return None
    st = _probe_status(provider, topo, observed, topo.mode, topo.version, topo.name, "")
    return st.controller


# -- operations --------------------------------------------------------------------------------

def check_config(spec: ClusterSpec, log=print) -> None:
    """Every Kafka config key and value of the inventory against that version's own
    definitions (SpecError, exit 2, before anything changes)."""
    image = None if spec.hosts else spec.kafka.image_ref   # hosts (SSH) run no image
    defs = configdef.catalogue(spec.kafka.version, image=image, log=log)
    if defs is None:
        log(f"warning: Kafka {spec.kafka.version}'s config definitions are not at hand (no local JVM with the "
            "distribution, no image yet): config keys and values were not checked")
        return
    found = configdef.problems(spec, defs)
    if found:
        raise SpecError(f"cluster {spec.name}", found)
    unchecked = configdef.unchecked_sections(spec)
    if unchecked:
        log("note: " + ", ".join(unchecked) + " passed as written (ZooKeeper, Connect and the registry have no "
            "definitions kops reads; only the keys kops sets itself are refused there)")


def _guard_reshape(spec: ClusterSpec, plan: Plan, observed: Observed, source: str | None) -> None:
    """An inventory that shares its name with a cluster made from another inventory must
    not reshape that cluster without being told to (the default cluster taken over by an
    edited copy of its preset, say)."""
    before = state.source_of(spec.name)
    if not source or not before or before == source or not observed.nodes:
        return
    changes = {n: a for n, (a, _) in plan.summary.items() if a in ("create", "orphan")}
    mode = observed.meta.get("mode")
    if not changes and (not mode or mode == spec.mode):
        return
    words = [f"{n} would be {'added' if a == 'create' else 'left without an inventory (orphan)'}"
             for n, a in sorted(changes.items())]
    if mode and mode != spec.mode:
        words.insert(0, f"it runs in {mode} mode and this inventory says {spec.mode}")
    raise InputError(f"cluster {spec.name} exists and was made from {before}; this inventory ({source}) has "
                     f"the same name and would reshape it: {'; '.join(words)}",
                     details="the plan it would run:\n" + "\n".join(plan.lines()),
                     hint="give this inventory another `name:` for a cluster of its own, or pass --reshape "
                          "to let it change that cluster")


def up(spec: ClusterSpec, provider, *, timeout: float = 300, dry_run: bool = False, log=print,
       scope: str = "", source: str | None = None, reshape: bool = False, upgrade_checked: bool = False,
       throttle: int | None = None, deep: bool = False) -> Result:

    t0 = time.monotonic()
    deadline = t0 + seconds(timeout, low=1)
    migration_record.guard(spec, scope)   # a ZooKeeper-to-KRaft migration under way: only `kops migrate` changes it
    check_config(spec, log)
    topo, bundle, observed = resolve(spec, provider, persist=not dry_run)
    if deep:   # drift: what the nodes hold now, not what kops noted when it placed them
        observed = _with_files_read(bundle, observed, provider, log)
    if not upgrade_checked:   # a version change in the inventory: the upgrade preflight (kops.upgrade)
        upgrade.check_up(spec, observed, provider, log=log, scope=scope)
    plan = plan_up(bundle, observed)
    if sum(1 for a in plan.of("reconfigure") if bundle.nodes[a.node].node.is_kafka) > 1:
        # several Kafka nodes change: in a live roll the active controller goes last, so find it
        observed.controller = active_controller(provider, topo, observed)
        plan = plan_up(bundle, observed)
    if not reshape:
        _guard_reshape(spec, plan, observed, source)
    plan = scale.extend(plan, bundle, observed, _client(spec, topo), provider.info,
                        rate=throttle or scale.reassign.DEFAULT_RATE)
    plan = quorum.extend(plan, bundle, observed, provider.info)   # controllers added or removed (KIP-853)
    plan = _with_service_users(plan, bundle)   # a SASL cluster's workers and registry: their users first
    _name_changed_keys(plan, bundle, observed, provider)
    if plan.changes:
        provider.preflight(plan, bundle, observed)
    topics = _topics_before(spec, topo, observed, log)   # a change Kafka cannot make: exit 2 here
    granted = _security_before(spec, topo, bundle, provider, observed, log)   # ACLs, quotas
    if dry_run:
        return Result(plan, None, time.monotonic() - t0, plan.changes or bool(topics and topics.pending)
                      or bool(granted and granted.pending), dry_run=True, topics=topics, security=granted)
    if not plan.changes:
        log(f"cluster {spec.name}: every node is running with its current config; nothing to change")
        if observed.nodes:
            upgrade.note(spec.name, version=spec.kafka.version, mode=spec.mode)
        if observed.nodes:   # a user added to the inventory changes no node's files: made here
            _ensure_users(spec, _client(spec, topo), scope, log)
        topics = _topics_after(spec, topo, log)
        granted = _security_after(spec, topo, bundle, provider, log)
        st = _settled_status(spec, provider, scope, deadline, log)
        _drop_kept_aside(provider, observed, st, log)
        return Result(plan, st, time.monotonic() - t0, bool(topics and topics.pending)
                      or bool(granted and granted.pending), topics=topics, security=granted)
    ctx = gates.Context(topo, provider, log, scope, client=_client(spec, topo))
    state.note_source(spec.name, source)
    if quorum.pending_of(plan):   # an add interrupted before it finished is resumed by the next `up`
        quorum.note_pending(spec.name, quorum.pending(spec.name) + quorum.pending_of(plan))
    execute.run(plan, ctx, bundle, deadline)
    state.note_started(spec.name)
    if topo.mode == "kraft":
        quorum.note_known(spec.name, [n.name for n in topo.controllers])
    upgrade.note(spec.name, version=spec.kafka.version, mode=spec.mode)
    # the deletion is accepted by the controller; the brokers' metadata follows on its own
    # (a later round trip that still sees the topic retries until it is gone)
    try:
        health.drop_topics(ctx.kafka(), [health.CHECK_TOPIC], listed=False)
    except KopsError as exc:   # tidying kops's own topic: the cluster is ready all the same
        log(f"note: {exc.message}; the next `kops up` or `kops check` removes it")
    _ensure_users(spec, ctx.kafka(), scope, log)
    topics = _topics_after(spec, topo, log)
    granted = _security_after(spec, topo, bundle, provider, log)
    after = time.monotonic()
    st = _settled_status(spec, provider, scope, deadline, log)
    _drop_kept_aside(provider, observed, st, log)
    timeline = [("load, observe and plan", t0, ctx.timeline[0][1] - t0 if ctx.timeline else 0.0),
                *ctx.timeline, ("status", after, time.monotonic() - after)]
    return Result(plan, st, time.monotonic() - t0, True, topics=topics, security=granted,
                  timeline=[{"step": d, "at": round(b - t0, 2), "seconds": round(s, 2)} for d, b, s in timeline])


def _session(spec: ClusterSpec, topo):

    c = _client(spec, topo)
    return data.Session(c.bootstrap, dict(c.settings))


def _topics_before(spec: ClusterSpec, topo, observed: Observed, log):
    """The inventory's topics against a running cluster's, before any node changes: a change
    Kafka cannot make (fewer partitions, another replication factor) or refuses (a config
    value) is exit 2 naming the topic. A cluster that is not running: every topic is new
    for the plan, and the comparison happens once it is ready."""

    if not spec.topics:
        return None
    if not any(o.running and o.role in ("broker", "combined") for o in observed.nodes.values()):
        return data.diff_topics(spec.topics, None)
    try:
        return data.plan_topics(_session(spec, topo), spec.topics)
    except InputError:
        raise
    except KopsError as exc:   # a cluster `up` is about to repair: compared once it is ready
        log(f"warning: the cluster's topics could not be read ({exc.message}); they are compared once it is ready")
        return data.diff_topics(spec.topics, None)


def _topics_after(spec: ClusterSpec, topo, log):
    """After the final gate: create and alter the inventory's topics (never delete or shrink)."""

    if not spec.topics:
        return None
    plan = data.sync_topics(_session(spec, topo), spec.topics, log)
    if not plan.pending:
        log(f"topics: {len(plan.changes)} as in the inventory; nothing to change")
    return plan


def _access(spec: ClusterSpec, topo) -> dict:
    """The status's users and ACLs: {users, authorizer, acls} (acls None: not readable)."""
    out = {"users": sorted(spec.security.users), "authorizer": spec.security.authorizer, "acls": None}
    if spec.security.authorizer:
        try:
            session = _session(spec, topo)
            session.timeout = 5
            out["acls"] = len(acls.observe_acls(session))
        except KopsError:
            pass
    return out


def _security_before(spec: ClusterSpec, topo, bundle, provider, observed: Observed, log):
    """The inventory's ACLs and quotas against a running cluster's, before any node changes
    (the spec's rules refused impossible ones already); a cluster that is not running, or
    whose authorizer is not on yet: everything is new for the plan."""
    do_acls, do_quotas = acls.manages(spec)
    if not (do_acls or do_quotas):
        return None
    running = [nb for nb in bundle if nb.node.is_broker and observed.nodes.get(nb.node.name)
               and observed.nodes[nb.node.name].running]
    if not running:
        return acls.plan(spec, None)
    try:
        return acls.plan(spec, _session(spec, topo), lambda: acls.observe_quotas(provider, topo, running[0]))
    except KopsError as exc:   # no authorizer yet (the roll turns it on), or a cluster `up` is about to repair
        log(f"note: the cluster's ACLs/quotas could not be read ({exc.message.splitlines()[0][:200]}); "
            "they are compared once it is ready")
        return acls.plan(spec, None)


def _security_after(spec: ClusterSpec, topo, bundle, provider, log):
    """After the final gate: make the managed principals' ACLs and the quotas the inventory's."""
    do_acls, do_quotas = acls.manages(spec)
    if not (do_acls or do_quotas):
        return None
    runner = next(nb for nb in bundle if nb.node.is_broker)
    session = _session(spec, topo)
    got = acls.plan(spec, session, lambda: acls.observe_quotas(provider, topo, runner))
    if got.acls:
        acls.apply_acls(session, got.acls, log)
    if got.quotas:
        acls.apply_quotas(provider, topo, runner, got.quotas, log)
    if not got.pending:
        log(f"acls: {got.acls.unchanged if got.acls else 0} and quotas: "
            f"{got.quotas.unchanged if got.quotas else 0} as in the inventory; nothing to change")
    return got


def client_of(spec: ClusterSpec | None, provider, *, name: str | None = None, scope: str = "") -> health.Client:
    """kops's own client of an existing cluster (the data commands): its bootstrap servers
    and security settings. NotFoundError when no Kafka node of it runs."""
    topo, _bundle, observed = _observe(spec, provider)
    cluster = spec.name if spec else name
    if not observed.nodes:
        raise NotFoundError(f"cluster {cluster} not found", hint=f"kops up{scope}; kops ls")
    if not any(o.running and o.role in ("broker", "combined") for o in observed.nodes.values()):
        raise NotFoundError(f"cluster {cluster} is not running", hint=f"kops up{scope}")
    return _observed_client(cluster, topo, observed).at(status.bootstrap(topo, observed))


def _observe(spec: ClusterSpec | None, provider):
    """(topology or None, bundle or None, observed) for a command that changes nothing."""
    if spec is None:
        return None, None, provider.observe(None)
    return resolve(spec, provider, persist=False)


def get_status(spec: ClusterSpec | None, provider, *, name: str | None = None, scope: str = "",
               wait: float = 0, log=None) -> ClusterStatus:
    """The cluster's status; with ``wait``, a degraded cluster is looked at again every 2 s
    for up to that many seconds. Returned at once: a stopped or missing cluster, and one
    with a node of the inventory not running (waiting does not bring it back)."""
    if not isinstance(wait, (int, float)) or not 0 <= wait <= MAX_WAIT:   # nan and inf fail too
        raise InputError(f"wait: {wait!r} is not a number of seconds from 0 to {MAX_WAIT}",
                         hint="e.g. --wait 60")
    cluster = spec.name if spec else name
    seen: list[ClusterStatus] = []

    def settled() -> ClusterStatus:
        topo, _bundle, observed = _observe(spec, provider)
        mode = spec.mode if spec else observed.meta.get("mode", "?")
        version = spec.kafka.version if spec else observed.meta.get("version", "?")
        st = _probe_status(provider, topo, observed, mode, version, cluster, scope)
        if spec is not None and spec.security.sasl and st.state in ("healthy", "degraded"):
            st.access = _access(spec, topo)
        down = topo is not None and not all(observed.get(n.name).running for n in topo.nodes)
        if st.state != "degraded" or down or not wait:
            return st
        if log and not seen:
            log(f"cluster {cluster} is degraded ({'; '.join(st.problems[:2])}); looking again for up to {wait:.0f} s")
        seen.append(st)
        raise NotYet("; ".join(st.problems[:2]))

    clock = waiting.Clock()
    try:
        return waiting.until(waiting.Strategy(settled, f"cluster {cluster} to be healthy", interval=2.0),
                             clock.now() + wait, clock=clock)
    except WaitTimeout:
        return seen[-1]   # still degraded: the status says why


def down(spec: ClusterSpec | None, provider, *, name: str | None = None, purge: bool = False,
         dry_run: bool = False, log=print) -> Result:
    t0 = time.monotonic()
    topo, bundle, observed = _observe(spec, provider)
    plan = plan_down(observed, purge=purge)
    if dry_run:
        return Result(plan, None, time.monotonic() - t0, plan.changes, dry_run=True)
    cluster = spec.name if spec else name
    execute.run(plan, gates.Context(topo, provider, log), bundle, time.monotonic() + 3600)
    if purge:
        state.forget(cluster)
    else:
        state.note_stopped(cluster, list(observed.nodes))   # crashed ones too: the cluster is meant to be down
    return Result(plan, None, time.monotonic() - t0, plan.changes)


def restart(spec: ClusterSpec, provider, *, nodes: list[str] | None = None, timeout: float = 600,
            force: bool = False, dry_run: bool = False, log=print, scope: str = "") -> Result:
    t0 = time.monotonic()
    deadline = t0 + seconds(timeout, low=1)
    topo, bundle, observed = resolve(spec, provider, persist=False)
    st = _probe_status(provider, topo, observed, topo.mode, topo.version, spec.name, scope)
    if st.state == "not-found":
        raise NotFoundError(f"cluster {spec.name} not found", hint=f"kops up{scope} first")
    known = {n.name for n in topo.nodes}
    unknown = sorted(set(nodes or []) - known)
    if unknown:
        raise InputError(f"no node named {', '.join(unknown)} in cluster {spec.name}",
                         hint="nodes: " + ", ".join(n.name for n in topo.nodes))
    if st.state != "healthy" and not force:
        raise KopsError(f"cluster {spec.name} is {st.state}: " + "; ".join(st.problems),
                        hint="a rolling restart of an unhealthy cluster risks availability: fix it first "
                             f"(kops up{scope}), or pass --force")
    plan = plan_restart([observed.get(n.name) for n in topo.nodes if observed.get(n.name).exists],
                        st.controller, nodes)
    if dry_run:
        return Result(plan, st, time.monotonic() - t0, plan.changes, dry_run=True)
    ctx = gates.Context(topo, provider, log, scope, client=_client(spec, topo))
    last = execute.run(plan, ctx, bundle, deadline)
    st = last if isinstance(last, ClusterStatus) else get_status(spec, provider, scope=scope)
    return Result(plan, st, time.monotonic() - t0, True)


def logs(spec: ClusterSpec | None, provider, node: str | None, *, name: str | None = None, lines: int = 100,
         since: float | None = None, follow: bool = False):
    """The log lines of one node, or of every node prefixed with its name (a generator)."""
    topo, _bundle, observed = _observe(spec, provider)
    known = sorted(set(observed.nodes) | ({n.name for n in topo.nodes} if topo else set()))
    cluster = spec.name if spec else name
    if not observed.nodes:
        raise NotFoundError(f"cluster {cluster} not found")
    if node is not None and node not in known:
        raise InputError(f"cluster {cluster} has no node {node!r}", hint="nodes: " + ", ".join(known))
    if node is not None and node not in observed.nodes:
        raise NotFoundError(f"{node} of cluster {cluster} does not exist (yet)")
    nodes = [node] if node else sorted(observed.nodes, key=lambda n: (observed.nodes[n].role != "zookeeper", n))
    yield from provider.logs(nodes, lines=lines, since=since, follow=follow, prefix=node is None)


def check(st: ClusterStatus, *, messages: int = 100, timeout: float = 60,
          client: health.Client | None = None) -> dict:
    """The CI smoke test: ``messages`` through a new replicated topic, acks=all, all read back."""
    brokers = st.kafka.get("brokers_expected") or len(st.kafka.get("brokers") or {}) or 1
    result = {"cluster": st.name, "state": st.state, "bootstrap_servers": st.bootstrap, "passed": False}
    from concurrent.futures import TimeoutError as FutureTimeout

    from confluent_kafka import KafkaException

    try:
        target = client.at(st.bootstrap) if client else st.bootstrap
        result.update(health.smoke(target, min(3, brokers), messages, timeout))
        result["passed"] = True
    except KopsError as exc:
        result["error"] = exc.message
    except KafkaException as exc:  # the client's own error is the check's answer, said plainly
        result["error"] = health.kafka_error(exc)
    except FutureTimeout:
        result["error"] = f"the check topic was not created within {timeout:.0f} s"
    return result


def worker_addresses(spec, provider, name: str | None = None) -> list[str]:
    """The REST addresses of the cluster's running workers: from the topology with an
    inventory (both providers), else as the Docker labels record them. NotFoundError
    (exit 3) when no worker runs."""
    if spec is not None:
        topo, _bundle, observed = resolve(spec, provider, persist=False)
        where = {n.name: topo.rest_address(n) for n in topo.connects}
    else:
        observed = provider.observe(None)
        where = {o.name: o.addresses.get("host", "") for o in observed.nodes.values() if o.role == "connect"}
    running = sorted(n for n, o in observed.nodes.items() if n in where and o.running and where[n])
    if not running:
        raise NotFoundError(f"cluster {spec.name if spec is not None else name} has no running Kafka Connect worker",
                            hint="add connect: {nodes: 1} to the inventory and run kops up (kops status shows "
                                 "the workers)")
    return [where[n] for n in running]
