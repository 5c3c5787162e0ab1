"""Extra Kafka Connect plugins (``connect.plugins``): Maven coordinates or local jars, each
placed in a folder of its own on the workers' ``plugin.path`` (Connect gives every plugin
folder its own class loader).

* ``group:artifact:version``: the artifact and its runtime dependencies, fetched once with
  mvn from the machine's Maven repository into ``<cache>/connect-plugins/``; Kafka's own
  artifacts (``org.apache.kafka``) are left out, the worker provides them.
* ``./path/to/plugin.jar``: a jar on this machine (relative to the working directory).

What a worker gets is data first: :func:`manifest` (each plugin, its folder and, for a local
jar, its SHA-256) is one of the worker's rendered files, so changing the list (or a local
jar) reconfigures the workers like any other file; the providers copy the jars
(:func:`jars`) into ``<conf_dir>/plugins/<folder>/`` when they create or reconfigure a worker.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kops.core import paths
from kops.core.errors import DistError, InputError
from kops.artifacts import dist

DIR = "plugins"   # under the worker's config folder


@dataclass(frozen=True)
class Entry:
    given: str            # as the inventory names it
    folder: str           # its folder on plugin.path
    coordinate: tuple[str, str, str] | None = None
    jar: Path | None = None
    sha256: str = ""      # a local jar's

    def line(self) -> str:
        return f"{self.folder}\t{self.given}" + (f"\tsha256={self.sha256}" if self.sha256 else "")


def _folder(name: str) -> str:
    """A folder name from an inventory's plugin: letters, digits and _.- only, never "." or
    ".." (the spec makes each part start with a letter or digit; this holds for any input)."""
    out = re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120]
    return "_" + out if not out or out.strip(".") == "" or out.startswith(".") else out


def entries(spec) -> list[Entry]:
    """The inventory's plugins, in order; a local jar that cannot be read is bad input."""
    out: list[Entry] = []
    if spec.connect is None:
        return out
    for i, given in enumerate(spec.connect.plugins):
        if ":" not in given:   # a local jar (the spec allows no ':' in a path)
            path = Path(given).expanduser()
            digest = _sha256(path, f"connect.plugins.{i}:")
            out.append(Entry(given, _folder(path.stem), jar=path.resolve(), sha256=digest))
        else:
            g, a, v = given.split(":")
            out.append(Entry(given, _folder(f"{a}-{v}"), coordinate=(g, a, v)))
    folders = [e.folder for e in out]
    dup = sorted({f for f in folders if folders.count(f) > 1})
    if dup:
        raise InputError(f"connect.plugins: two plugins would share the folder {dup[0]}", hint="list each plugin once")
    return out


MAX_JAR_BYTES = 1 << 30   # a plugin jar of more than 1 GiB is not a plugin


def _sha256(path: Path, what: str) -> str:
    """A local jar's SHA-256, read in chunks (a regular file only, at most MAX_JAR_BYTES)."""
    import os
    import stat

    hint = "a path relative to the directory kops runs in, or absolute"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise InputError(f"{what} {path}: cannot read it ({exc.strerror or exc})", hint=hint) from None
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} {path}: not a regular file (a jar is needed)", hint=hint)
        if st.st_size > MAX_JAR_BYTES:
            raise InputError(f"{what} {path} is {st.st_size} bytes: more than a plugin jar has "
                             f"({MAX_JAR_BYTES} at most)", hint="is this the right file?")
        h = hashlib.sha256()
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
        return h.hexdigest()


def manifest(spec) -> str:
    """The worker's rendered list of its plugins (a change to it reconfigures the workers)."""
    lines = [e.line() for e in entries(spec)]
    return "# Rendered by kops: the extra Connect plugins, one folder each under plugin.path\n" + \
        "".join(f"{line}\n" for line in lines)


def _cache(coord: tuple[str, str, str]) -> Path:
    g, a, v = coord
    return paths.cache_dir() / "connect-plugins" / _folder(g) / _folder(a) / _folder(v)


def fetch(entry: Entry, repo: str | None = None, log=lambda m: None) -> Path:
    """A Maven plugin's folder of jars in the cache (fetched the first time)."""

    target = _cache(entry.coordinate)
    marker = target / ".kops-complete"
    if marker.is_file():
        return target
    repo = dist.resolve_maven_repo(repo)
    log(f"fetching Connect plugin {entry.given} and its dependencies from {repo} with mvn")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".fetch.", dir=target.parent))
    try:
        g, a, v = entry.coordinate
        (work / "pom.xml").write_text(dist._pom(repo, [(g, a, v)]))
        try:
            dist._mvn(["dependency:copy-dependencies", f"-DoutputDirectory={work / 'jars'}", "-DincludeScope=runtime",
                       "-DexcludeGroupIds=org.apache.kafka"], work, f"resolve {entry.given}")
        except DistError as exc:
            raise InputError(f"connect.plugins: {entry.given}: {repo} does not serve it with its dependencies",
                             hint="check the coordinate (group:artifact:version) and the version", ) from exc
        jars = work / "jars"
        if not jars.is_dir() or not any(jars.glob("*.jar")):
            raise InputError(f"connect.plugins: {entry.given}: no jar came with it (a POM-only artifact?)")
        # a folder left by an interrupted fetch (kops's own: it has no marker yet); never one outside the cache
        paths.inside(paths.cache_dir() / "connect-plugins", target)
        shutil.rmtree(target, ignore_errors=True)
        jars.rename(target)
        marker.write_text(entry.given + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def ensure_all(spec, log=lambda m: None) -> None:
    """Every plugin at hand before anything changes (preflight): bad input fails with exit 2."""
    for e in entries(spec):
        if e.coordinate:
            fetch(e, log=log)


def jars(spec, conf_dir: str) -> dict[str, Path]:
    """Path on the worker -> the local jar to copy there, for every plugin (fetched already)."""
    out: dict[str, Path] = {}
    for e in entries(spec):
        found = [e.jar] if e.jar else sorted(fetch(e).glob("*.jar"))
        for j in found:
            out[f"{conf_dir}/{DIR}/{e.folder}/{j.name}"] = j
    return out
