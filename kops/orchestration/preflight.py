"""The upgrade preflight and kops's record of what a cluster runs: every problem of moving a
running cluster to another Kafka version, listed at once before anything changes (exit 2),
the same for `kops upgrade` and for `kops up` of an inventory whose kafka.version changed
(kops.upgrade rolls and finalizes; kops.lifecycle runs :func:`check_up`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from kops.model import configdef
from kops.artifacts import dist
from kops.core import paths
from kops.core.errors import InputError, KopsError
from kops.model.spec import ClusterSpec, SpecError
from kops.model import inventory
from kops.core import engine
from kops.artifacts import images
from kops.bundle import render
from kops.model import topology

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


# -- the cluster's finalized feature levels (KRaft) ----------------------------------------------

def finalized_levels(text: str) -> dict[str, str]:
    """feature -> finalized level from FeatureCommand describe output."""
    out = {}
    for line in text.splitlines():
        m = re.search(r"Feature:\s*(\S+).*?FinalizedVersionLevel:\s*(\S+)", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def level_minor(level: str) -> str | None:
    """The Kafka minor of a metadata.version name: '4.4-IV2' -> '4.4' (None: not a name)."""
    m = re.fullmatch(r"(\d+\.\d+)-IV\d+", level or "")
    return m.group(1) if m else None


def cluster_features(spec: ClusterSpec, observed, provider, version: str) -> dict[str, str]:
    """The finalized feature levels as the running cluster holds them (metadata.version,
    kraft.version, ...): Kafka's own FeatureCommand run in a running broker of ``version``
    (confluent-kafka has no DescribeFeatures). KopsError when no broker runs or it fails."""
    running = spec.model_copy(update={"kafka": spec.kafka.model_copy(update={"version": version})})
    cid = next((o.cluster_id for o in observed.nodes.values() if o.cluster_id), None) or "A" * 22
    topo = topology.build(running, cid)
    brokers = [n for n in topo.nodes if n.is_broker and observed.get(n.name).running]
    if not brokers:
        raise KopsError(f"no broker of cluster {spec.name} is running")
    node = brokers[0]
    lay = render.layout(topo, node)
    argv = [render.launch_for(topo, node).java, "-Xmx128m", "-cp", f"{lay.home}/libs/*", FEATURE_MAIN,
            "--bootstrap-server", ",".join(f"{b.hostname}:{b.ports['internal']}" for b in brokers),
            "--command-config", f"{lay.conf_dir}/{render.CLIENT_PROPERTIES}", "describe"]
    code, out = provider.exec(node.name, argv)
    levels = finalized_levels(out or "") if code == 0 else {}
    if not levels:
        tail = "\n".join(line for line in (out or "").splitlines() if "log4j" not in line.lower())[-300:]
        raise KopsError(f"kafka-features describe in {node.name} exited {code}: {tail.strip()}")
    return levels


def _metadata_version_problem(spec: ClusterSpec, observed, provider, source: str, target: str) -> str | None:
    """KRaft, a move to an older minor: the metadata.version the cluster has finalized must
    be one Kafka ``target`` knows, or its nodes stop at start ("No MetadataVersion with
    feature level N"). Read from the cluster itself; unreadable is a refusal, not a guess."""
    try:
        level = cluster_features(spec, observed, provider, source).get("metadata.version")
    except KopsError as exc:
        return (f"kafka.version: {source} -> {target} goes to an older minor, and the cluster's finalized "
                f"metadata.version could not be read ({exc.message}): a level above {minor(target)} would stop "
                f"every node of Kafka {target}; start the cluster (kops up) and run the preflight again")
    at = level_minor(level or "")
    if at is not None and vtuple(at) > vtuple(minor(target)):
        return (f"kafka.version: the cluster's metadata.version is {level} (finalized); Kafka {target} "
                f"supports at most {minor(target)}-IVx, so its nodes would not start (\"No MetadataVersion with "
                f"feature level ...\"), and a finalized metadata.version cannot be lowered: stay on "
                f"Kafka {at}.x or newer")
    return None


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
    if (mode == "kraft" and vtuple(minor(target)) < vtuple(minor(source)) and vtuple(target)[0] == vtuple(source)[0]
            and not any("finalized" in p for p in pf.problems)):
        problem = _metadata_version_problem(spec, observed, provider, source, target)
        if problem:
            pf.problems.append(problem)
        else:
            pf.notes.append(f"the cluster's finalized metadata.version is one Kafka {target} supports")
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
    pf.problems = _one_per_removed_key(pf.problems)
    return pf


def _one_per_removed_key(problems: list[str]) -> list[str]:
    """A key the target version removed is said once, as removed ("defined in A but not in
    B"), not also as unknown by the inventory's own check of the target version."""
    removed = {p.split(": defined in ", 1)[0] for p in problems if ": defined in " in p}
    return [p for p in problems if not (p.split(": not a ", 1)[0] in removed and ": not a " in p)]


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


