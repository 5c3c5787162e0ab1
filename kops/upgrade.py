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

import json
import re
from dataclasses import dataclass, field

from . import configdef, dist, paths
from .errors import InputError, KopsError
from .spec import ClusterSpec, SpecError

FEATURE_MAIN = "org.apache.kafka.tools.FeatureCommand"


def java_needed(version: str) -> int:
    """The oldest Java a Kafka broker of ``version`` runs on (Kafka 4 dropped 8 and 11)."""
    return 17 if int(version.split(".")[0]) >= 4 else 8


def vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


def minor(v: str) -> str:
    return ".".join(v.split(".")[:2])


def java_major(text: str) -> int | None:
    """The major of ``java -version`` output: 'openjdk version "17.0.15"' -> 17, "1.8.0" -> 8."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', text or "")
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major


# -- what kops keeps ---------------------------------------------------------------------------

def _file(name: str):
    return paths.state_dir() / "clusters" / name / "version.json"


def recorded(name: str) -> dict:
    return paths.read_json(_file(name), "record of the version and mode the cluster runs", {},
                           hint="kops up rewrites it from the running cluster after you remove it")


def note(name: str, **kw) -> None:
    p = _file(name)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({**recorded(name), **kw}, sort_keys=True))


def running_version(spec: ClusterSpec, observed) -> str | None:
    """The version the existing cluster runs: the nodes' labels (Docker), else kops's record."""
    v = observed.meta.get("version") if observed is not None else None
    if v and v != "?":
        return v
    return recorded(spec.name).get("version")


def running_mode(spec: ClusterSpec, observed) -> str | None:
    m = observed.meta.get("mode") if observed is not None else None
    if m and m != "?":
        return m
    return recorded(spec.name).get("mode")


# -- the preflight -------------------------------------------------------------------------------

@dataclass
class Preflight:
    source: str
    target: str
    mode: str
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        head = [f"preflight {self.source} -> {self.target} ({self.mode} mode):"]
        return (head + [f"  ok: {n}" for n in self.notes] + [f"  problem: {p}" for p in self.problems])

    def as_dict(self) -> dict:
        return {"from": self.source, "to": self.target, "mode": self.mode, "problems": self.problems,
                "notes": self.notes}

    def raise_if_bad(self, scope: str = "") -> None:
        if self.problems:
            raise InputError(f"upgrade {self.source} -> {self.target} refused ({len(self.problems)} problem(s)); "
                             "nothing was changed:\n  - " + "\n  - ".join(self.problems),
                             hint="fix every problem listed, then run the upgrade again"
                                  + (f" (kops upgrade{scope} --to {self.target} --dry-run shows the preflight)"))


def target_spec(spec: ClusterSpec, version: str, mode: str | None) -> ClusterSpec:
    """The inventory with ``kafka.version`` set (and the running mode kept explicitly: a
    mode left to its default would switch a ZooKeeper-mode cluster to KRaft at 4.0)."""
    data = spec.model_dump(mode="json", exclude_unset=True, by_alias=True)
    data.setdefault("kafka", {})["version"] = version
    data["kafka"]["mode"] = mode or spec.mode
    if spec.kafka.image and spec.kafka.image.endswith(":" + spec.kafka.version):
        data["kafka"]["image"] = spec.kafka.image[: -len(spec.kafka.version)] + version
    from . import inventory

    return inventory.validate(data, f"cluster {spec.name} at Kafka {version}")


def _sections(spec: ClusterSpec):
    out = [("kafka.config", spec.kafka.config), ("brokers.config", spec.brokers.config),
           ("controllers.config", spec.ctl.config)]
    return out + [(f"nodes.{n}.config", o.config) for n, o in spec.nodes.items() if not n.startswith("zoo")]


def config_problems(spec_to: ClusterSpec, source: str, defs_from: dict | None, defs_to: dict) -> list[str]:
    """Inventory keys the target does not define: a key the running version knows is
    'removed or renamed'; other problems are configdef's own (typos, values)."""
    out, gone = [], set()
    for section, cfg in _sections(spec_to):
        for key in cfg:
            if defs_from is not None and key in defs_from and key not in defs_to:
                close = configdef.difflib.get_close_matches(key, list(defs_to), n=1, cutoff=0.8)
                out.append(f"{section}.{key}: defined in Kafka {source} but not in {spec_to.kafka.version} "
                           f"(removed or renamed{f'; did you mean {close[0]}?' if close else ''}): remove it "
                           "from the inventory")
                gone.add(f"{section}.{key}:")
    out += [p for p in configdef.problems(spec_to, defs_to) if not any(p.startswith(g) for g in gone)]
    return out


def _java_of_image(image: str) -> str:
    import docker

    from . import engine

    try:
        out = engine.client().containers.run(image, ["java", "-version"], remove=True, stdout=True,
                                             stderr=True, network_mode="none", user="root")
    except docker.errors.ImageNotFound:
        return ""
    except docker.errors.ContainerError as exc:
        return str(exc)
    return out.decode(errors="replace")


def java_versions(spec_to: ClusterSpec, provider) -> dict[str, str]:
    """where -> `java -version` output: the target image (or the base it is built on) on
    Docker, every host over SSH ("" where Java is missing: kops installs Java 17 there)."""
    if spec_to.driver == "docker":
        from . import images

        ref = spec_to.kafka.image_ref
        text = _java_of_image(ref)
        if text:
            return {f"image {ref}": text}
        if spec_to.kafka.image:
            return {f"image {ref}": ""}
        base = images.default_base()
        return {f"base image {base} (for {ref})": _java_of_image(base)}
    out = {}
    for h in spec_to.hosts:
        ok, text = provider.run(h, "java -version 2>&1 || true")
        out[f"host {h}"] = text if ok else ""
    return out


def preflight(spec: ClusterSpec, target: str, observed, provider, *, log=lambda m: None,
              finalized: str | None = None) -> Preflight:
    """Every problem of moving ``spec``'s running cluster to Kafka ``target``."""
    source = running_version(spec, observed) or spec.kafka.version
    mode = running_mode(spec, observed) or spec.mode
    pf = Preflight(source, target, mode)
    finalized = finalized or recorded(spec.name).get("finalized")
    try:
        dist.check_version(target)
    except InputError as exc:
        pf.problems.append(exc.message)
        return pf
    if vtuple(target) < vtuple(source) and vtuple(target)[0] != vtuple(source)[0]:
        pf.problems.append(f"kafka.version: {source} -> {target} is a downgrade across major versions, which "
                           "Kafka does not support")
    elif finalized and vtuple(minor(target)) < vtuple(finalized):
        pf.problems.append(f"kafka.version: the cluster's feature level was finalized at {finalized}; Kafka "
                           f"{target} cannot run it (finalizing cannot be undone)")
    if mode == "zookeeper" and vtuple(target)[0] >= 4:
        pf.problems.append(f"Kafka {target} has no ZooKeeper mode and this cluster runs in ZooKeeper mode: "
                           "migrate it to KRaft first (on 3.9: kops migrate --to-kraft), then upgrade")
    if mode == "zookeeper" and minor(source) != minor(target) and vtuple(target)[0] < 4:
        pinned = spec.kafka.config.get("inter.broker.protocol.version")
        if not pinned:
            pf.problems.append(f"ZooKeeper mode {source} -> {target} changes the inter-broker protocol: pin "
                               f"kafka.config.inter.broker.protocol.version: '{minor(source)}' for the roll, "
                               "then raise it in a second `kops up` once every broker runs "
                               f"{target}")
    try:
        target_spec(spec, target, mode)
    except SpecError as exc:
        pf.problems += [p for p in exc.problems if not p.startswith("kafka.mode: zookeeper needs")]
    # the checks below need only the version: an unvalidated copy, so that every problem is listed
    spec_to = spec.model_copy(update={"kafka": spec.kafka.model_copy(update={
        "version": target, "image": (spec.kafka.image[: -len(spec.kafka.version)] + target
                                     if spec.kafka.image and spec.kafka.image.endswith(":" + spec.kafka.version)
                                     else spec.kafka.image)})})
    try:
        dist.require(target, log=log)
    except KopsError as exc:
        pf.problems.append(exc.message + (f" ({exc.hint})" if exc.hint else ""))
        return pf
    # Java
    need = java_needed(target)
    for where, text in java_versions(spec_to, provider).items():
        got = java_major(text)
        if got is None:
            if where.startswith("host "):
                pf.notes.append(f"{where}: no Java yet; kops installs Java 17 there")
            else:
                pf.problems.append(f"{where}: no `java -version` answer; Kafka {target} needs Java {need}+")
        elif got < need:
            pf.problems.append(f"{where}: Java {got}, and Kafka {target} needs Java {need} or newer")
        else:
            pf.notes.append(f"{where}: Java {got} (Kafka {target} needs {need}+)")
    # configs
    image_to = spec_to.kafka.image_ref if spec_to.driver == "docker" else None
    defs_to = configdef.catalogue(target, image=image_to, log=log)
    defs_from = configdef.catalogue(source, image=spec.kafka.image_ref if spec.driver == "docker" else None,
                                    log=log) if dist.cached(source) or spec.driver == "docker" else None
    if defs_to is None:
        pf.problems.append(f"Kafka {target}'s config definitions could not be read: config keys unchecked")
    else:
        pf.problems += config_problems(spec_to, source, defs_from, defs_to)
        pf.notes.append(f"every inventory config key is defined in Kafka {target}" if not any(
            "config." in p for p in pf.problems) else "config keys checked")
    if vtuple(target)[0] >= 4 > vtuple(source)[0]:
        pf.notes.append("log4j -> log4j2: handled (kops renders log4j2.yaml for 4.x itself)")
    return pf


def check_up(spec: ClusterSpec, observed, provider, *, log=lambda m: None, scope: str = "") -> None:
    """`kops up` of an inventory whose kafka.version differs from what the cluster runs: the
    same preflight as `kops upgrade` (exit 2 with every problem, nothing changed)."""
    if not observed.nodes:
        return
    running = running_version(spec, observed)
    if not running or running == spec.kafka.version:
        return
    log(f"cluster {spec.name} runs Kafka {running}; the inventory says {spec.kafka.version}: upgrade preflight")
    pf = preflight(spec, spec.kafka.version, observed, provider, log=log)
    for line in pf.lines():
        log(line)
    pf.raise_if_bad(scope)
    if pf.mode == "kraft":
        log(f"the feature level stays at {minor(running)} until `kops upgrade{scope} --to {spec.kafka.version} "
            "--finalize`")


# -- finalization ------------------------------------------------------------------------------------

def feature_argv(nb, bootstrap: str, version: str, mode: str, *, dry_run: bool = False) -> list[str] | None:
    """FeatureCommand's upgrade to ``version``'s level, or None when there is nothing to raise
    (ZooKeeper mode: the inter-broker protocol is the version's own)."""
    if mode != "kraft":
        return None
    level = ["--release-version", minor(version)] if vtuple(version)[0] >= 4 else ["--metadata", minor(version)]
    return [nb.argv[0], "-Xmx128m", "-cp", f"{nb.layout.home}/libs/*", FEATURE_MAIN,
            "--bootstrap-server", bootstrap, "upgrade", *level, *(["--dry-run"] if dry_run else [])]


def describe_argv(nb, bootstrap: str) -> list[str]:
    return [nb.argv[0], "-Xmx128m", "-cp", f"{nb.layout.home}/libs/*", FEATURE_MAIN,
            "--bootstrap-server", bootstrap, "describe"]


def finalized_levels(text: str) -> dict[str, str]:
    """feature -> finalized level from FeatureCommand describe output."""
    out = {}
    for line in text.splitlines():
        m = re.search(r"Feature:\s*(\S+).*?FinalizedVersionLevel:\s*(\S+)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def finalize(ctx, bundle, version: str, mode: str, log=print) -> dict:
    """Raise the finalized feature level to ``version``'s (cannot be undone)."""
    topo = ctx.topo
    if topo.spec.security.tls:
        raise InputError("finalizing on a secure (TLS/SASL) cluster is not supported yet",
                         hint=f"run kafka-features upgrade --release-version {minor(version)} with a client "
                              "config (kops client-config)")
    nb = next(nb for nb in bundle if nb.node.is_broker)
    argv = feature_argv(nb, topo.internal_bootstrap, version, mode)
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
    code, described = ctx.provider.exec(nb.name, describe_argv(nb, topo.internal_bootstrap))
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

    from . import gates, lifecycle
    from .errors import NotFoundError
    from .plan import node_action

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
