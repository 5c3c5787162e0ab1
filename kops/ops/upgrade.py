"""Upgrades: the preflight of a version change, the roll (the planner's own), and the
finalization of the feature / metadata version.

* :func:`preflight` lists every problem at once (InputError, exit 2, nothing changed):
  a version no source has, a downgrade across majors (or below a finalized version),
  ZooKeeper mode onto Kafka 4 ("migrate first"), a ZooKeeper-mode change of the
  inter-broker protocol (3.8 -> 3.9) without a pinned ``inter.broker.protocol.version``,
  the Java each version needs (4.x: 17+) as the target image or each host has it, and
  every inventory config key the target version does not define (removed or renamed).
  log4j -> log4j2 (4.x) is not a problem: kops renders each version's log config itself.
* The roll is :func:`kops.lifecycle.up` with the new version: the planner rolls the
  version change one node at a time behind the readiness gates, brokers first, the
  active controller last. Nothing here orders nodes.
* :func:`finalize` raises the finalized feature level once every node runs the new
  version: KRaft through Kafka's own ``FeatureCommand`` run in one node (confluent-kafka
  has no UpdateFeatures); ZooKeeper mode within 3.9.x has nothing to raise (the
  inter-broker protocol of every 3.9.x is 3.9), which is said, not hidden.

What kops knows of a cluster's running and finalized version is kept in
``<state>/clusters/NAME/version.json`` (Docker also labels every container with it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field  # noqa: F401

from kops.artifacts import dist
from kops.core.errors import InputError, KopsError
from kops.orchestration.preflight import FEATURE_MAIN, Preflight, check_up, finalized_levels, config_problems, java_major, java_needed, minor, note, preflight, recorded, running_mode, running_version, target_spec, vtuple
from kops.model.spec import ClusterSpec
from kops.orchestration import gates
from kops.orchestration import lifecycle
from kops.core.errors import NotFoundError
from kops.plan import node_action
from kops.kafka import reassign


# -- finalization ------------------------------------------------------------------------------------

def feature_argv(nb, bootstrap: str, version: str, mode: str, *, dry_run: bool = False,
                 secure: list[str] = ()) -> list[str] | None:
    """FeatureCommand's upgrade to ``version``'s level, or None when there is nothing to raise
    (ZooKeeper mode: the inter-broker protocol is the version's own). ``secure``: the tool's
    --command-config words on a TLS/SASL cluster (the node's own client.properties)."""
    if mode != "kraft":
        return None
    level = ["--release-version", minor(version)] if vtuple(version)[0] >= 4 else ["--metadata", minor(version)]
    return [nb.argv[0], "-Xmx128m", "-cp", f"{nb.layout.home}/libs/*", FEATURE_MAIN,
            "--bootstrap-server", bootstrap, *secure, "upgrade", *level, *(["--dry-run"] if dry_run else [])]


def describe_argv(nb, bootstrap: str, secure: list[str] = ()) -> list[str]:
    return [nb.argv[0], "-Xmx128m", "-cp", f"{nb.layout.home}/libs/*", FEATURE_MAIN,
            "--bootstrap-server", bootstrap, *secure, "describe"]


def finalize(ctx, bundle, version: str, mode: str, log=print) -> dict:
    """Raise the finalized feature level to ``version``'s (cannot be undone)."""
    topo = ctx.topo
    nb = next(nb for nb in bundle if nb.node.is_broker)
    secure = reassign.command_config(topo, nb, "--command-config")   # TLS/SASL: kops's admin, from the node
    argv = feature_argv(nb, topo.internal_bootstrap, version, mode, secure=secure)
    if argv is None:
        log(f"ZooKeeper mode: the inter-broker protocol of Kafka {version} is {minor(version)}, which the brokers "
            "use already; there is no feature level to finalize")
        note(topo.name, finalized=minor(version))
        return {"finalized": minor(version), "changed": False}
    code, out = ctx.provider.exec(nb.name, argv)
    if code != 0 and argv[-2] == "--release-version":
        log(f"--release-version {minor(version)} was refused; raising metadata.version alone")
        argv = [*argv[:-2], "--metadata", minor(version)]
        code, out = ctx.provider.exec(nb.name, argv)
    if code != 0:
        raise KopsError(f"finalizing Kafka {version}'s feature level failed on {nb.name} (exit code {code})",
                        details=_quiet(out), hint="the lines above are kafka-features'; the cluster runs "
                                                  f"{version} unfinalized, which is safe")
    code, described = ctx.provider.exec(nb.name, describe_argv(nb, topo.internal_bootstrap, secure))
    levels = finalized_levels(described) if code == 0 else {}
    note(topo.name, finalized=minor(version))
    log(f"feature level finalized at {minor(version)}: " + ", ".join(f"{k}={v}" for k, v in sorted(levels.items())))
    return {"finalized": minor(version), "changed": True, "levels": levels}


def _quiet(out: str) -> str:
    return "\n".join(line for line in out.splitlines() if "log4j" not in line.lower())[-3000:]


# -- the whole operation ---------------------------------------------------------------------------

@dataclass
class Outcome:
    preflight: Preflight
    plan: object = None              # kops.plan.Plan of the roll (None: refused before planning)
    dry_run: bool = False
    rolled: bool = False
    finalized: dict | None = None
    seconds: float = 0.0
    status: object = None

    def as_dict(self) -> dict:
        return {"preflight": self.preflight.as_dict(), "dry_run": self.dry_run, "rolled": self.rolled,
                "plan": self.plan.as_dict()["steps"] if self.plan is not None else None,
                "finalized": self.finalized, "seconds": round(self.seconds, 1),
                "status": self.status.as_dict() if self.status is not None else None}


def upgrade(spec: ClusterSpec, provider, to: str, *, finalize_now: bool = False, confirm=None,
            dry_run: bool = False, timeout: float = 900, log=print, scope: str = "",
            source: str | None = None) -> Outcome:
    """Preflight, then the roll onto ``to`` (the planner's), then, when every node runs it
    and ``finalize_now`` (or ``confirm(question)`` says yes), the feature level finalized."""
    import time


    t0 = time.monotonic()
    dist.check_version(to)
    _topo, _bundle, observed = lifecycle.resolve(spec, provider, persist=False)
    if not any(o.exists for o in observed.nodes.values()):
        raise NotFoundError(f"cluster {spec.name} not found: nothing to upgrade", hint=f"kops up{scope} first")
    pf = preflight(spec, to, observed, provider, log=log)
    out = Outcome(pf, dry_run=dry_run)
    spec_to = None
    if not pf.problems:
        spec_to = target_spec(spec, to, pf.mode)
        out.plan = lifecycle.up(spec_to, provider, dry_run=True, log=log, scope=scope, source=source,
                                upgrade_checked=True).plan
    if dry_run:
        out.seconds = time.monotonic() - t0
        return out
    pf.raise_if_bad(scope)
    res = lifecycle.up(spec_to, provider, timeout=timeout, log=log, scope=scope, source=source,
                       upgrade_checked=True)
    out.rolled, out.status, out.plan = res.changed, res.status, res.plan
    topo, bundle, observed = lifecycle.resolve(spec_to, provider, persist=False)
    behind = [f"{nb.name}: {why[1]}" for nb in bundle if nb.node.is_kafka
              and (why := node_action(nb, observed.get(nb.name)))[0] != "unchanged"]
    if behind:
        raise KopsError(f"not every node runs Kafka {to} yet ({'; '.join(behind)}): the feature level was not "
                        "finalized", hint=f"kops status{scope}; kops upgrade{scope} --to {to} again")
    note(spec.name, version=to, mode=pf.mode)
    log(f"every node runs Kafka {to}")
    if finalize_now or (confirm is not None and confirm(
            f"Finalize the feature level at {minor(to)}? This cannot be undone (no downgrade below "
            f"{minor(to)} afterwards)")):
        ctx = gates.Context(topo, provider, log, scope, client=lifecycle._client(spec_to, topo))
        out.finalized = finalize(ctx, bundle, to, pf.mode, log)
    else:
        log(f"feature level not finalized: the cluster can still go back to {pf.source}; "
            f"`kops upgrade{scope} --to {to} --finalize` when you are sure")
    out.seconds = time.monotonic() - t0
    return out


def rewrite_version(text: str, old: str, new: str) -> str | None:
    """The inventory text with ``kafka.version`` changed from ``old`` to ``new`` (comments and
    layout kept), or None when the line is not found exactly once under ``kafka:``."""
    lines = text.splitlines(keepends=True)
    hits, in_kafka, indent = [], False, None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        lead = len(line) - len(line.lstrip(" "))
        if lead == 0:
            in_kafka = re.match(r"kafka:\s*(#.*)?$", stripped) is not None
            indent = None
            continue
        if in_kafka:
            indent = lead if indent is None else indent
            m = re.fullmatch(rf"(\s*version:\s*)(['\"]?){re.escape(old)}\2(\s*(#.*)?)", line.rstrip("\n"))
            if m and lead == indent:
                hits.append((i, m))
    if len(hits) != 1:
        return None
    i, m = hits[0]
    end = "\n" if lines[i].endswith("\n") else ""
    lines[i] = f"{m.group(1)}{m.group(2)}{new}{m.group(2)}{m.group(3)}{end}"
    return "".join(lines)
