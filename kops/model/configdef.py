"""Kafka's own config definitions, per version: names, types and valid values.

The catalogue comes from the distribution itself, never from a list typed by hand:
``kafka.server.KafkaConfig``'s main prints the broker's ConfigDef (the HTML of Kafka's
docs), run once per version with a local JVM on the cached distribution or inside the
kops/kafka image, and kept under ``<cache>/configs/``. Inventory config keys are checked
against it (typos get "did you mean"), and values against their type and valid range,
before anything changes. ZooKeeper's zoo.cfg has no such definition and is not checked.
"""

from __future__ import annotations

import difflib
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

from kops.core import paths
from kops.core.errors import KopsError
from kops.core import engine

MAIN = "kafka.server.KafkaConfig"
# keys with a per-listener prefix: listener.name.<listener>[.<sasl mechanism>].<key>
LISTENER_PREFIX = re.compile(r"listener\.name\.[a-z0-9_]+\.(?:[a-z0-9-]+\.)?(?P<key>.+)")


def _file(version: str) -> Path:
    return paths.cache_dir() / "configs" / f"kafka-{version}.json"


def parse(text: str) -> dict[str, dict]:
    """name -> {"type": ..., "valid": ...} from the ConfigDef HTML."""
    out = {}
    for item in re.split(r"<li>\s*<h4>", text)[1:]:
        m = re.search(r'id="brokerconfigs_([^"]+)"', item)
        if not m:
            continue
        typ = re.search(r"<th>Type:</th><td>([^<]*)</td>", item)
        valid = re.search(r"<th>Valid Values:</th><td>(.*?)</td>", item, re.S)
        out[m.group(1)] = {"type": typ.group(1).strip() if typ else "",
                           "valid": html.unescape(re.sub(r"<[^>]+>", "", valid.group(1))).strip() if valid else ""}
    return out


def _from_jvm(argv: list[str]) -> dict[str, dict]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise KopsError(f"could not read Kafka's config definitions: {exc}") from exc
    found = parse(proc.stdout)
    if proc.returncode != 0 or len(found) < 100:
        raise KopsError(f"could not read Kafka's config definitions (`{' '.join(argv[:4])} ...` exited "
                        f"{proc.returncode}, {len(found)} keys)", details=proc.stderr[-2000:])
    return found


def cached(version: str) -> dict[str, dict] | None:
    """The config definitions of Kafka ``version`` if they were read before (the cache
    only: no JVM, no image run), else None."""
    try:
        found = json.loads(_file(version).read_text())
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def catalogue(version: str, *, image: str | None = None, log=lambda m: None) -> dict[str, dict] | None:
    """The config definitions of Kafka ``version`` (None when neither a local JVM with the
    cached distribution nor the image can produce them)."""
    path = _file(version)
    if path.is_file():
        return json.loads(path.read_text())
    from kops.artifacts import dist

    found = None
    d = dist.cached(version)
    java = shutil.which("java")
    if d is not None and java:
        found = _from_jvm([java, "-Xmx256m", "-cp", f"{d.path}/libs/*", MAIN])
    elif image:
        found = _from_image(image)
    if found is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(found, sort_keys=True))
    log(f"read {len(found)} broker config definitions of Kafka {version}")
    return found


def _from_image(image: str) -> dict[str, dict] | None:
    import docker


    cli = engine.client()
    try:
        cli.images.get(image)
    except docker.errors.ImageNotFound:
        return None
    out = cli.containers.run(image, ["java", "-Xmx256m", "-cp", "/opt/kafka/libs/*", MAIN], remove=True,
                             stdout=True, stderr=False, network_mode="none")
    found = parse(out.decode(errors="replace"))
    if len(found) < 100:
        raise KopsError(f"could not read Kafka's config definitions from {image} ({len(found)} keys)")
    return found


# -- checks ---------------------------------------------------------------------------------------

def _number(value, kind: str):
    if isinstance(value, bool):
        raise ValueError
    if kind == "double":
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise ValueError
    return int(str(value).strip())


def check_value(key: str, value, d: dict) -> str | None:
    """A problem with ``value`` for config ``key`` of definition ``d``, or None."""
    kind, valid = d.get("type", ""), d.get("valid", "")
    try:
        if kind == "boolean":
            if not (isinstance(value, bool) or str(value).lower() in ("true", "false")):
                return f"{value!r} is not a boolean: use true or false"
            return None
        if kind in ("int", "long", "short", "double"):
            num = _number(value, kind)
            bits = {"short": 15, "int": 31, "long": 63}.get(kind)
            if bits and not -(2 ** bits) <= num < 2 ** bits:
                return f"{value!r} does not fit Java's {kind} ({-(2 ** bits)} to {2 ** bits - 1})"
            rng = re.fullmatch(r"\[(-?[\d.]+),\.\.\.(?:,(-?[\d.]+))?\]", valid)
            if rng:
                lo, hi = float(rng.group(1)), float(rng.group(2)) if rng.group(2) else None
                if num < lo or (hi is not None and num > hi):
                    return f"{value!r} is out of range: Kafka accepts {valid}"
            return None
    except (TypeError, ValueError):
        expected = "a number" if kind == "double" else "a whole number"
        return f"{value!r} is not a number of type {kind}: use {expected}" + (f" (valid: {valid})" if valid else "")
    enum = re.fullmatch(r"\[([A-Za-z0-9_.-]+(?:, [A-Za-z0-9_.-]+)*)\]", valid)
    if enum and kind in ("string", "list"):
        allowed = [v.strip() for v in enum.group(1).split(",")]
        words = [w.strip() for w in str(value).split(",")] if kind == "list" else [str(value).strip()]
        bad = [w for w in words if w and w.lower() not in {a.lower() for a in allowed}]
        if bad:
            return f"{bad[0]!r} is not allowed: Kafka accepts {', '.join(allowed)}"
    return None


def unchecked_sections(spec) -> list[str]:
    """The config sections whose keys are not checked against definitions (with keys in them)."""
    out = [s for s, cfg in (("zookeeper.config", spec.zk.config if spec.zookeeper else {}),
                            ("connect.config", spec.connect.config if spec.connect else {}),
                            ("schema_registry.config", spec.schema_registry.config if spec.schema_registry else {}))
           if cfg]
    out += [f"nodes.{n}.config" for n, o in spec.nodes.items()
            if o.config and not re.fullmatch(r"(kafka|controller)[0-9]+", n)]
    return out


def problems(spec, defs: dict[str, dict]) -> list[str]:
    """Every Kafka config key and value of the inventory checked against ``defs``."""
    custom = list(spec.kafka.custom_keys)
    sections = [("kafka.config", spec.kafka.config), ("brokers.config", spec.brokers.config),
                ("controllers.config", spec.ctl.config)]
    # the brokers' and controllers' own nodes only: ZooKeeper, Connect workers and the registry have
    # definitions of their own (not checked here: zoo.cfg has none; Connect and Apicurio are checked
    # for the keys kops sets itself, kops.spec)
    sections += [(f"nodes.{n}.config", o.config) for n, o in spec.nodes.items()
                 if re.fullmatch(r"(kafka|controller)[0-9]+", n)]
    out = []
    for section, cfg in sections:
        for key, value in cfg.items():
            if any(key == c or (c.endswith("*") and key.startswith(c[:-1])) for c in custom):
                continue
            d = defs.get(key)
            if d is None:
                m = LISTENER_PREFIX.fullmatch(key)
                d = defs.get(m.group("key")) if m else None
            if d is None and not (LISTENER_PREFIX.fullmatch(key) and
                                  any(key.endswith("." + k) for k in defs)):
                close = difflib.get_close_matches(key, list(defs), n=1, cutoff=0.75)
                out.append(f"{section}.{key}: not a broker config of Kafka {spec.kafka.version}"
                           + (f" (did you mean {close[0]}?)" if close else "")
                           + "; a plugin's own key goes in kafka.custom_keys")
                continue
            if d is not None and (why := check_value(key, value, d)):
                out.append(f"{section}.{key}: {why}")
    return out
