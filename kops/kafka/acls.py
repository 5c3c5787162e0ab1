"""The inventory's ``security.acls`` and ``security.quotas`` against a running cluster: what
`kops up` adds, changes and removes, the same way as the inventory's topics
(:mod:`kops.kafka.data`).

Which ACLs kops manages: those of the principals the inventory names, that is every user
of ``security.users`` (``User:<name>``) and every key of ``security.acls`` (a user or a
``User:...`` principal). Their ACLs are made to be exactly the inventory's: missing ones
are created, others of theirs are deleted (an entry of the inventory that changed is one
deleted and one created). ACLs of any other principal (made with kafka-acls, by another
tool, or of a user since removed from the inventory) are never touched. kops's own users
(kops-admin, kops-connect, kops-registry) and the nodes are super users and have none.

Quotas the same way: the users of ``security.users`` and ``security.quotas.users``, and
the client ids of ``security.quotas.clients``; a quota key of theirs the inventory does not
give is deleted. confluent-kafka has no client-quota API, so quotas go through Kafka's own
ConfigCommand (kafka-configs) run in a broker with the node's client config.

The diffs are functions of data (unit-tested); observing and applying take a
:class:`kops.kafka.data.Session` (ACLs) or a runner (quotas).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from kops.core.errors import KopsError
from kops.kafka import data

KOPS_OWN = ("kops-admin", "kops-connect", "kops-registry", "kops-node")


# -- ACLs ------------------------------------------------------------------------------------------

@dataclass(frozen=True, order=True)
class Acl:
    principal: str        # User:app
    resource: str         # topic | group | transactional_id | cluster
    name: str             # orders- (prefixed), billing, kafka-cluster, *
    pattern: str          # literal | prefixed
    operation: str        # read, write, ... (the inventory's words)
    permission: str = "allow"
    host: str = "*"

    def describe(self) -> str:
        on = "the cluster" if self.resource == "cluster" else \
            f"{self.resource} {self.name}{'*' if self.pattern == 'prefixed' else ''}"
        return f"{self.principal} {self.permission} {self.operation} on {on}" + \
            (f" from {self.host}" if self.host != "*" else "")

    def as_dict(self) -> dict:
        return {"principal": self.principal, "resource": self.resource, "name": self.name, "pattern": self.pattern,
                "operation": self.operation, "permission": self.permission, "host": self.host}


def principal_of(who: str) -> str:
    return who if who.startswith("User:") else f"User:{who}"


def managed_principals(sec) -> set[str]:
    """The principals whose ACLs kops keeps as the inventory says (``sec``: a SecuritySpec)."""
    out = {principal_of(u) for u in sec.users} | {principal_of(w) for w in sec.acls}
    return {p for p in out if p.split(":", 1)[1] not in KOPS_OWN}


def wanted_acls(sec) -> set[Acl]:
    out = set()
    for who, entries in sec.acls.items():
        for a in entries:
            kind, name, pattern = a.resolved
            for op in a.operations:
                out.add(Acl(principal_of(who), kind, name, pattern, op, a.permission, a.host))
    return out


@dataclass
class AclPlan:
    add: list[Acl] = field(default_factory=list)
    remove: list[Acl] = field(default_factory=list)
    unchanged: int = 0
    observed: bool = True       # False: the cluster's ACLs could not be read (not running yet)

    @property
    def pending(self) -> bool:
        return bool(self.add or self.remove)

    def lines(self) -> list[str]:
        out = [f"remove ACL {a.describe()}" for a in self.remove] + [f"add ACL {a.describe()}" for a in self.add]
        if not self.observed and out:
            out.append("(the cluster's ACLs could not be read (not running yet): compared once it is ready)")
        return out

    def as_dict(self) -> dict:
        return {"add": [a.as_dict() for a in self.add], "remove": [a.as_dict() for a in self.remove],
                "unchanged": self.unchanged}


def diff_acls(wanted: set[Acl], now: set[Acl] | None, managed: set[str]) -> AclPlan:
    """What `up` does: create the missing, delete the managed principals' others (None: not
    readable, every wanted ACL is new)."""
    have = {a for a in (now or set()) if a.principal in managed}
    return AclPlan(sorted(wanted - have), sorted(have - wanted), len(wanted & have), observed=now is not None)


_RES = {"topic": "TOPIC", "group": "GROUP", "transactional_id": "TRANSACTIONAL_ID", "cluster": "BROKER"}


def _binding(a: Acl):
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)

    return AclBinding(getattr(ResourceType, _RES[a.resource]), a.name, getattr(ResourcePatternType, a.pattern.upper()),
                      a.principal, a.host, getattr(AclOperation, a.operation.upper()),
                      getattr(AclPermissionType, a.permission.upper()))


def _from_binding(b) -> Acl | None:
    kinds = {v: k for k, v in _RES.items()}
    kind = kinds.get(b.restype.name)
    pattern = b.resource_pattern_type.name.lower()
    if kind is None or pattern not in ("literal", "prefixed"):
        return None
    return Acl(b.principal, kind, b.name, pattern, b.operation.name.lower(), b.permission_type.name.lower(), b.host)


def observe_acls(session: data.Session) -> set[Acl]:
    """Every ACL of the cluster (those of the kinds kops writes)."""
    from confluent_kafka.admin import (AclBindingFilter, AclOperation, AclPermissionType, ResourcePatternType,
                                       ResourceType)

    flt = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None, AclOperation.ANY,
                           AclPermissionType.ANY)
    fut = session.admin().describe_acls(flt, request_timeout=session.timeout)
    got = data._result(fut, session, "list the cluster's ACLs")
    return {a for a in (_from_binding(b) for b in got) if a is not None}


def apply_acls(session: data.Session, plan: AclPlan, log=lambda m: None) -> None:
    admin = session.admin()
    if plan.remove:
        from confluent_kafka.admin import AclBindingFilter

        filters = []
        for a in plan.remove:
            b = _binding(a)
            filters.append(AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host,
                                            b.operation, b.permission_type))
        for flt, fut in admin.delete_acls(filters, request_timeout=session.timeout).items():
            data._result(fut, session, f"delete the ACL {_from_binding(flt).describe()}")
        for a in plan.remove:
            log(f"ACL removed: {a.describe()}")
    if plan.add:
        futs = admin.create_acls([_binding(a) for a in plan.add], request_timeout=session.timeout)
        for b, fut in futs.items():
            data._result(fut, session, f"create the ACL {_from_binding(b).describe()}")
        for a in plan.add:
            log(f"ACL added: {a.describe()}")


# -- quotas ----------------------------------------------------------------------------------------

QUOTA_KEYS = ("producer_byte_rate", "consumer_byte_rate", "request_percentage")
Entity = tuple[str, str]   # ("users" | "clients", name)


def wanted_quotas(sec) -> dict[Entity, dict[str, float]]:
    out: dict[Entity, dict[str, float]] = {}
    for u, q in sec.quotas.users.items():
        out[("users", u)] = {k: float(v) for k, v in q.values().items()}
    for c, q in sec.quotas.clients.items():
        out[("clients", c)] = {k: float(v) for k, v in q.values().items()}
    return out


def managed_entities(sec) -> set[Entity]:
    return {("users", u) for u in sec.users} | {("users", u) for u in sec.quotas.users} | \
        {("clients", c) for c in sec.quotas.clients}


@dataclass
class QuotaChange:
    entity: Entity
    now: dict[str, float]
    wanted: dict[str, float]

    @property
    def set(self) -> dict[str, float]:
        return {k: v for k, v in self.wanted.items() if self.now.get(k) != v}

    @property
    def delete(self) -> list[str]:
        return sorted(k for k in self.now if k not in self.wanted)

    def describe(self) -> str:
        kind = "user" if self.entity[0] == "users" else "client id"
        parts = [f"{k} {_num(self.now[k]) if k in self.now else '(none)'} -> {_num(v)}" for k, v in self.set.items()]
        parts += [f"{k} {_num(self.now[k])} -> (none)" for k in self.delete]
        return f"quota of {kind} {self.entity[1]}: " + ", ".join(parts)

    def as_dict(self) -> dict:
        return {"entity": self.entity[0], "name": self.entity[1], "now": self.now, "wanted": self.wanted}


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


@dataclass
class QuotaPlan:
    changes: list[QuotaChange] = field(default_factory=list)
    unchanged: int = 0
    observed: bool = True

    @property
    def pending(self) -> bool:
        return bool(self.changes)

    def lines(self) -> list[str]:
        out = [c.describe() for c in self.changes]
        if not self.observed and out:
            out.append("(the cluster's quotas could not be read (not running yet): compared once it is ready)")
        return out

    def as_dict(self) -> dict:
        return {"changes": [c.as_dict() for c in self.changes], "unchanged": self.unchanged}


def diff_quotas(wanted: dict[Entity, dict[str, float]], now: dict[Entity, dict[str, float]] | None,
                managed: set[Entity]) -> QuotaPlan:
    plan = QuotaPlan(observed=now is not None)
    for ent in sorted(managed | set(wanted)):
        have = (now or {}).get(ent, {})
        want = wanted.get(ent, {})
        c = QuotaChange(ent, dict(have), dict(want))
        if c.set or c.delete:
            plan.changes.append(c)
        elif ent in wanted:
            plan.unchanged += 1
    return plan


_QUOTA_LINE = re.compile(r"Quota configs for (user-principal|client-id) '([^']*)' are (.*)$")


def parse_quotas(out: str) -> dict[Entity, dict[str, float]]:
    """kafka-configs --describe output: "Quota configs for user-principal 'app' are
    producer_byte_rate=1024.0, consumer_byte_rate=2048.0" (pure)."""
    got: dict[Entity, dict[str, float]] = {}
    for line in out.splitlines():
        m = _QUOTA_LINE.match(line.strip())
        if not m:
            continue
        ent = ("users" if m.group(1) == "user-principal" else "clients", m.group(2))
        vals = {}
        for part in m.group(3).split(","):
            k, _, v = part.strip().partition("=")
            if k in QUOTA_KEYS:
                try:
                    vals[k] = float(v)
                except ValueError:
                    continue
        if vals:
            got[ent] = vals
    return got


def _config_tool(topo, nb, args: list[str]) -> list[str]:
    from kops.kafka.reassign import command_config

    main = "kafka.admin.ConfigCommand" if topo.spec.kafka.major < 4 else "org.apache.kafka.tools.ConfigCommand"
    return [nb.argv[0], "-Xmx128m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-cp", f"{nb.layout.home}/libs/*",
            main, "--bootstrap-server", topo.internal_bootstrap,
            *command_config(topo, nb, "--command-config"), *args]


def _run(provider, topo, nb, args: list[str], what: str) -> str:
    code, out = provider.exec(nb.node.name, _config_tool(topo, nb, args))
    if code != 0:
        last = next((ln for ln in reversed(out.strip().splitlines()) if ln.strip()), f"exit code {code}")
        raise KopsError(f"{what}: Kafka's kafka-configs failed on {nb.node.name}: {last[:300]}", details=out[-1500:])
    return out


def observe_quotas(provider, topo, nb) -> dict[Entity, dict[str, float]]:
    """Every user and client-id quota of the cluster (through ``nb``, a running broker):
    of the kinds kops manages here (one JVM each)."""
    got: dict[Entity, dict[str, float]] = {}
    for kind in sorted({k for k, _ in managed_entities(topo.spec.security)}):
        got.update(parse_quotas(_run(provider, topo, nb, ["--describe", "--entity-type", kind],
                                     f"describe the {kind}' quotas")))
    return got


def apply_quotas(provider, topo, nb, plan: QuotaPlan, log=lambda m: None) -> None:
    for c in plan.changes:
        args = ["--alter", "--entity-type", c.entity[0], "--entity-name", c.entity[1]]
        if c.set:
            args += ["--add-config", ",".join(f"{k}={_num(v)}" for k, v in c.set.items())]
        if c.delete:
            args += ["--delete-config", ",".join(c.delete)]
        _run(provider, topo, nb, args, f"set the {c.describe()}")
        log(c.describe())


# -- both, for `up` --------------------------------------------------------------------------------

@dataclass
class SecurityPlan:
    acls: AclPlan | None = None
    quotas: QuotaPlan | None = None

    @property
    def pending(self) -> bool:
        return bool((self.acls and self.acls.pending) or (self.quotas and self.quotas.pending))

    def lines(self) -> list[str]:
        return (self.acls.lines() if self.acls else []) + (self.quotas.lines() if self.quotas else [])

    def as_dict(self) -> dict:
        return {"acls": self.acls.as_dict() if self.acls else None,
                "quotas": self.quotas.as_dict() if self.quotas else None}


def manages(spec) -> tuple[bool, bool]:
    """(ACLs, quotas): whether `up` converges them for this spec at all."""
    sec = spec.security
    return sec.authorizer, bool(sec.quotas.users or sec.quotas.clients)


def plan(spec, session: data.Session | None, quota_reader=None) -> SecurityPlan:
    """The diff against the running cluster (``session`` None / ``quota_reader`` None: not
    readable, everything is new). ``quota_reader()`` returns the cluster's quotas."""
    sec = spec.security
    do_acls, do_quotas = manages(spec)
    out = SecurityPlan()
    if do_acls:
        out.acls = diff_acls(wanted_acls(sec), observe_acls(session) if session else None, managed_principals(sec))
    if do_quotas:
        out.quotas = diff_quotas(wanted_quotas(sec), quota_reader() if quota_reader else None, managed_entities(sec))
    return out
