"""Kafka distributions: a directory in the official layout (``libs/``, ``config/``).

Three sources, one result, cached under ``<cache>/dist/kafka_2.13-<version>``:

* ``apache``: the official ``kafka_2.13-<v>.tgz`` from a base URL (default the Apache
  archive), verified against its published ``.sha512`` before anything is kept;
* ``maven``: the runtime classpath of ``kafka_2.13`` + ``kafka-tools`` (+ logging jars),
  assembled by ``mvn`` from Maven Central or a configured repository;
* a local tarball or directory.

A distribution is complete when ``kops-dist.json`` is written; it is written last, so an
interrupted fetch is never mistaken for a good one.

Every distribution also gets kops's *extras* (:func:`ensure_extras`), from Maven like the
assembly: the Connect runtime and MirrorMaker 2 in ``libs/`` (as in the official tarball),
Kafka's FileStream connectors in ``plugins/connect-file/`` (Connect's ``plugin.path``) and
the Prometheus JMX exporter agent in ``agents/`` (its SHA-256 checked). The image and the
tarball pushed to SSH hosts carry them.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


from kops.core import paths
from kops.model import spec
from kops.core.errors import DistError, InputError
from kops.artifacts import tools

SCALA = "2.13"
DEFAULT_APACHE_URL = "https://archive.apache.org/dist"
DEFAULT_MAVEN_REPO = "https://repo1.maven.org/maven2"
MARKER = "kops-dist.json"
VERSION_RE = spec.VERSION_RE   # one pattern for every command (ASCII digits, bounded)

# The extras (see the module docstring); EXTRAS changes when the set does, so older caches
# and images are completed (once) when a cluster needs them.
EXTRAS = "1"
CONNECT_LIBS = ("connect-api", "connect-runtime", "connect-json", "connect-transforms", "connect-mirror",
                "connect-mirror-client")
PLUGINS_DIR = "plugins"
FILE_CONNECTOR = "connect-file"

# Logging jars that Kafka's tarball ships but the Maven runtime classpath lacks.
_LOGGING_3 = [("org.slf4j", "slf4j-reload4j", "1.7.36"), ("ch.qos.reload4j", "reload4j", "1.2.25")]


@dataclass(frozen=True)
class Distribution:
    path: Path
    version: str
    source: str

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def has_zookeeper(self) -> bool:
        return any((self.path / "libs").glob("zookeeper-*.jar"))

    def digest(self) -> str:
        """A cheap fingerprint of the jars (names and sizes): changes when the dist does."""
        h = hashlib.sha256()
        for jar in sorted((self.path / "libs").glob("*.jar")):
            h.update(f"{jar.name}:{jar.stat().st_size}\n".encode())
        for sub in (AGENTS_DIR, PLUGINS_DIR):   # the extras (absent: the digest of old)
            for jar in sorted((self.path / sub).rglob("*.jar")):
                h.update(f"{jar.relative_to(self.path)}:{jar.stat().st_size}\n".encode())
        return h.hexdigest()[:16]

    @property
    def has_extras(self) -> bool:
        return _extras_present(self.path, self.version)


def check_version(version: str) -> str:
    if not isinstance(version, str) or not VERSION_RE.fullmatch(version):
        raise InputError(f"Kafka version {str(version)[:40]!r} is not of the form X.Y.Z (ASCII digits, no leading "
                         "zeros)", hint="for example 3.9.2 or 4.1.1; 'latest' works with --from maven")
    if int(version.split(".")[0]) < 3:
        raise InputError(f"Kafka version {version}: kops runs Kafka 3.x (ZooKeeper or KRaft) and 4.x (KRaft)",
                         hint="for example 3.9.2 or 4.1.1")
    return version


def dist_root() -> Path:
    root = paths.cache_dir() / "dist"
    root.mkdir(parents=True, exist_ok=True)
    return root


def cached(version: str) -> Distribution | None:
    target = dist_root() / f"kafka_{SCALA}-{version}"
    marker = target / MARKER
    if marker.is_file():
        meta = json.loads(marker.read_text())
        return Distribution(target, meta["version"], meta["source"])
    return None


def inspect_dir(path: Path) -> str:
    """Return the Kafka version of a distribution directory, or raise what is wrong."""
    libs = path / "libs"
    if not libs.is_dir():
        raise DistError(f"{path} is not a Kafka distribution: it has no libs/ folder",
                        hint="point at the folder that holds libs/ (e.g. kafka_2.13-3.9.2/)")
    jars = [p.name for p in libs.glob(f"kafka_{SCALA}-*.jar")]
    versions = sorted({m.group(1) for j in jars
                       if (m := re.match(rf"kafka_{re.escape(SCALA)}-(\d+\.\d+\.\d+)\.jar$", j))},
                      key=lambda v: tuple(map(int, v.split("."))))
    if not versions:
        raise DistError(f"{libs} holds no kafka_{SCALA}-X.Y.Z.jar",
                        hint="a Kafka distribution (tarball or Maven assembly) is needed")
    return versions[-1]


def fetch(version: str, source: str = "apache", *, apache_url: str | None = None,
          maven_repo: str | None = None, force: bool = False, sha512: str | None = None,
          log=lambda msg: None, extras: bool = False) -> Distribution:
    """Return a runnable distribution of ``version``, fetching it if it is not cached
    (``extras``: with kops's extras too, when Maven serves them: see :func:`ensure_extras`)."""
    if source == "maven" and version == "latest":
        version = latest_maven_version(maven_repo)
        log(f"newest Kafka on Maven: {version}")
    local = None
    if source not in ("apache", "maven"):
        local = Path(source).expanduser()
        if not local.exists():
            raise InputError(f"--from {source!r}: no such file or directory",
                             hint="use apache, maven, or the path of a kafka_2.13-X.Y.Z.tgz or folder")
        if version in (None, "", "auto"):
            version = inspect_dir(local) if local.is_dir() else _version_from_name(local.name)
    check_version(version)
    if not force and (hit := cached(version)):
        log(f"Kafka {version}: cached at {hit.path} (from {hit.source})")
        return _try_extras(hit, maven_repo, log) if extras else hit
    target = dist_root() / f"kafka_{SCALA}-{version}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=dist_root()))
    try:
        t0 = time.monotonic()
        if source == "apache":
            base = (apache_url or os.environ.get("KOPS_APACHE_URL") or DEFAULT_APACHE_URL).rstrip("/")
            _fetch_apache(version, base, tmp, log)
            label = f"apache:{base}"
        elif source == "maven":
            repo = resolve_maven_repo(maven_repo)
            _assemble_maven(version, repo, tmp / "dist", log)
            label = f"maven:{repo}"
        else:
            _from_local(local, tmp, log, sha512)
            label = f"local:{local}"
        built = tmp / "dist"
        found = inspect_dir(built)
        if found != version:
            raise DistError(f"the distribution holds Kafka {found}, not {version}",
                            hint=f"ask for {found}, or give the {version} distribution")
        _add_kops_files(built, version)
        (built / MARKER).write_text(json.dumps(
            {"version": version, "source": label, "fetched_at": int(time.time())}, indent=2))
        if target.exists():
            shutil.rmtree(target)
        built.rename(target)
        log(f"Kafka {version}: ready at {target} ({time.monotonic() - t0:.1f} s)")
        got = Distribution(target, version, label)
        return _try_extras(got, maven_repo, log) if extras else got
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _version_from_name(name: str) -> str:
    m = re.search(r"kafka_\d+\.\d+-(\d+\.\d+\.\d+)", name)
    if not m:
        raise InputError(f"cannot tell the Kafka version from {name!r}",
                         hint="name the version: kops dist fetch 3.9.2 --from PATH")
    return m.group(1)


# -- apache tarball ---------------------------------------------------------------------

def parse_sha512(text: str) -> str:
    """Parse both ``sha512sum`` output and Apache's ``name: AB12 CD34 ...`` format."""
    body = text.strip()
    first = body.split()[0] if body else ""
    if re.fullmatch(r"[0-9a-fA-F]{128}", first):
        return first.lower()
    if ":" in body:
        body = body.split(":", 1)[1]
    hexchars = re.sub(r"\s+", "", body)
    if not re.fullmatch(r"[0-9a-fA-F]{128}", hexchars):
        raise DistError("the .sha512 file is not a SHA-512 checksum",
                        details=text[:300], hint="check the download URL")
    return hexchars.lower()


def _download(url: str, dest: Path, log) -> None:
    import requests   # imported when used: every kops command would pay for it

    try:
        with requests.get(url, stream=True, timeout=(10, 120)) as resp:
            if resp.status_code != 200:
                raise DistError(f"GET {url} answered HTTP {resp.status_code}",
                                hint="check the version and --apache-url (a mirror must keep "
                                     "the layout <base>/kafka/<version>/kafka_2.13-<version>.tgz)")
            with open(dest, "wb") as fh:
                for chunk in resp.iter_content(1 << 20):
                    fh.write(chunk)
    except requests.RequestException as exc:
        raise DistError(f"cannot download {url}: {exc.__class__.__name__}: {exc}",
                        hint="no network to the Apache site? use --from maven, a mirror "
                             "(--apache-url / KOPS_APACHE_URL) or a local tarball (--from PATH)") from exc


def _fetch_apache(version: str, base: str, tmp: Path, log) -> None:
    name = f"kafka_{SCALA}-{version}.tgz"
    url = f"{base}/kafka/{version}/{name}"
    log(f"downloading {url}")
    tgz = tmp / name
    _download(url, tgz, log)
    sha_file = tmp / (name + ".sha512")
    _download(url + ".sha512", sha_file, log)
    want = parse_sha512(sha_file.read_text(errors="replace"))
    got = _sha512(tgz)
    if got != want:
        raise DistError(f"SHA-512 mismatch for {url}: expected {want[:16]}..., got {got[:16]}...",
                        hint="the download is corrupt or tampered with; nothing was cached. Retry, "
                             "or use another mirror")
    log(f"SHA-512 verified ({got[:16]}...)")
    _extract(tgz, tmp)


def _sha512(path: Path) -> str:
    h = hashlib.sha512()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _extract(tgz: Path, tmp: Path) -> None:
    out = tmp / "x"
    out.mkdir()
    try:
        with tarfile.open(tgz) as tar:
            kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(out, **kwargs)
    except (tarfile.TarError, OSError) as exc:
        raise DistError(f"cannot unpack {tgz.name}: {exc}") from exc
    tops = [p for p in out.iterdir() if p.is_dir()]
    root = tops[0] if len(tops) == 1 and not (out / "libs").exists() else out
    root.rename(tmp / "dist")


def _from_local(local: Path, tmp: Path, log, sha512: str | None = None) -> None:
    """A local folder or tarball. A tarball is checked against --sha512 when given, else
    against the .sha512 file beside it; with neither, kops says plainly that it is not."""
    if local.is_dir():
        if sha512:
            raise InputError("--sha512 checks a tarball, and this is a folder", hint="drop --sha512, or give the .tgz")
        inspect_dir(local)
        log(f"copying {local} (a folder: no digest to check)")
        shutil.copytree(local, tmp / "dist", symlinks=True)
        return
    beside = local.with_name(local.name + ".sha512")
    if sha512:
        if not re.fullmatch(r"[0-9a-fA-F]{128}", sha512):
            raise InputError(f"--sha512 {sha512[:20]!r}... is not a SHA-512 digest", hint="128 hex characters")
        want, against = sha512.lower(), "--sha512"
    elif beside.is_file():
        want, against = parse_sha512(beside.read_text()), beside.name
    else:
        want = against = None
    if want is None:
        log(f"warning: {local.name} is NOT verified: no --sha512 given and no {beside.name} beside it")
    else:
        got = _sha512(local)
        if want != got:
            raise DistError(f"SHA-512 mismatch for {local} (against {against}): expected {want[:16]}..., "
                            f"got {got[:16]}...", hint="the tarball is corrupt or not the one meant; nothing was cached")
        log(f"SHA-512 verified against {against}")
    _extract(local, tmp)


# -- maven assembly ---------------------------------------------------------------------

def resolve_maven_repo(given: str | None = None) -> str:
    """The Maven repository to use: --maven-repo / KOPS_MAVEN_REPO, else the mirror of
    central in the user's ~/.m2/settings.xml, else Maven's own default (central)."""
    if given or os.environ.get("KOPS_MAVEN_REPO"):
        return (given or os.environ["KOPS_MAVEN_REPO"]).rstrip("/")
    settings = Path.home() / ".m2" / "settings.xml"
    if settings.is_file():
        try:
            root = ET.parse(settings).getroot()
        except ET.ParseError:
            root = None
        ns = {"m": root.tag.split("}")[0].strip("{")} if root is not None and root.tag.startswith("{") else {}
        for mirror in (root.iter(f"{{{ns['m']}}}mirror" if ns else "mirror") if root is not None else []):
            of = mirror.findtext("m:mirrorOf" if ns else "mirrorOf", namespaces=ns) or ""
            url = mirror.findtext("m:url" if ns else "url", namespaces=ns)
            if url and any(w.strip() in ("*", "central", "external:*") for w in of.split(",")):
                return url.strip().rstrip("/")
    return DEFAULT_MAVEN_REPO


def maven_versions(repo: str | None = None) -> list[str]:
    """Released Kafka versions the Maven repository holds, oldest first."""
    import requests   # imported when used: every kops command would pay for it

    url = f"{resolve_maven_repo(repo)}/org/apache/kafka/kafka_{SCALA}/maven-metadata.xml"
    try:
        resp = requests.get(url, timeout=20)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise DistError(f"cannot read {url}: {exc}", hint="check --maven-repo / KOPS_MAVEN_REPO") from exc
    versions = [v.text for v in ET.fromstring(resp.content).iter("version")
                if v.text and VERSION_RE.fullmatch(v.text)]
    if not versions:
        raise DistError(f"{url} lists no released Kafka version")
    return sorted(set(versions), key=lambda v: tuple(int(x) for x in v.split(".")))


def latest_maven_version(repo: str | None = None) -> str:
    return maven_versions(repo)[-1]


def require(version: str, log=lambda m: None, *, extras: bool = False) -> Distribution:
    """A distribution of ``version`` for a cluster: the cached one, else fetched (the Apache
    archive, then Maven when the archive cannot be reached). A version that no source has
    is bad input (exit 2), naming the versions there are. ``extras``: the cluster needs
    them (metrics, Connect): a distribution without them is completed, or it fails."""
    hit = cached(version)
    if hit is not None:
        return ensure_extras(hit, log=log) if extras else hit
    known = maven_versions()
    if version not in known:
        same = [v for v in known if v.rsplit(".", 1)[0] == version.rsplit(".", 1)[0]]
        raise InputError(f"kafka.version: Kafka {version} does not exist (not in {resolve_maven_repo()})",
                         hint="versions there: " + ", ".join(same or known[-8:]))
    try:
        got = fetch(version, "apache", log=log)
    except DistError as exc:
        log(f"the Apache archive did not serve Kafka {version} ({exc.message}); assembling it from Maven")
        got = fetch(version, "maven", log=log)
    return ensure_extras(got, log=log) if extras else got


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.kops</groupId><artifactId>kafka-dist</artifactId><version>1</version>
  <packaging>pom</packaging>
  <repositories><repository><id>kops</id><url>{repo}</url></repository></repositories>
  <pluginRepositories><pluginRepository><id>kops</id><url>{repo}</url></pluginRepository></pluginRepositories>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _pom(repo: str, coords: list[tuple[str, str, str]]) -> str:
    deps = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId><version>{v}</version></dependency>"
        for g, a, v in coords)
    return _POM.format(repo=repo, deps=deps)


def _mvn(args: list[str], cwd: Path, what: str) -> None:
    mvn = shutil.which("mvn")
    if not mvn:
        raise DistError("Maven (mvn) is needed for --from maven and is not on PATH",
                        hint="install it (apt-get install maven) or use --from apache / --from PATH")
    proc = subprocess.run([mvn, "-B", "-q", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise DistError(f"mvn could not {what} (exit {proc.returncode})", details=tail,
                        hint="is the version released, and is the Maven repository reachable?")


def _assemble_maven(version: str, repo: str, out: Path, log) -> None:
    out.mkdir(parents=True)
    work = out.parent
    coords = [("org.apache.kafka", f"kafka_{SCALA}", version), ("org.apache.kafka", "kafka-tools", version)]
    if int(version.split(".")[0]) < 4:
        coords += _LOGGING_3
    (work / "pom.xml").write_text(_pom(repo, coords))
    log(f"assembling Kafka {version} from {repo} with mvn")
    _mvn(["dependency:copy-dependencies", f"-DoutputDirectory={out / 'libs'}", "-DincludeScope=runtime"],
         work, f"resolve Kafka {version}")
    # Kafka 4's runtime classpath has log4j2 but not the slf4j binding its tarball ships.
    api = sorted((out / "libs").glob("log4j-api-2*.jar"))
    if api and not list((out / "libs").glob("log4j-slf4j*-impl-*.jar")):
        l4j = re.match(r"log4j-api-(.+)\.jar", api[-1].name).group(1)
        (work / "pom.xml").write_text(_pom(repo, [("org.apache.logging.log4j", "log4j-slf4j-impl", l4j)]))
        _mvn(["dependency:copy-dependencies", f"-DoutputDirectory={out / 'libs'}", "-DincludeScope=runtime",
              "-DexcludeTransitive=true"], work, "resolve the log4j slf4j binding")


# -- the extras ------------------------------------------------------------------------------

AGENTS_DIR = "agents"


def _agent():
    from kops.services import metrics

    return metrics


def needs_extras(spec) -> bool:
    """A cluster with metrics or Connect workers needs the extras on its nodes."""
    return bool(spec.metrics.prometheus or spec.connect)


def _extras_present(path: Path, version: str) -> bool:
    libs = path / "libs"
    return (all(any(libs.glob(f"{a}-[0-9]*.jar")) for a in CONNECT_LIBS)
            and any((path / PLUGINS_DIR / FILE_CONNECTOR).glob(f"{FILE_CONNECTOR}-*.jar"))
            and (path / AGENTS_DIR / _agent().AGENT_JAR).is_file())


def served_version(group: str, artifact: str, version: str, repo: str) -> str:
    """``version`` when the repository serves it, else its newest release of the same major
    below it (a Connect plugin built against an older connect-api runs on a newer runtime);
    the repository may serve only part of Maven Central."""
    import requests

    base = f"{repo}/{group.replace('.', '/')}/{artifact}"
    try:
        if requests.head(f"{base}/{version}/{artifact}-{version}.jar", timeout=20,
                         allow_redirects=True).status_code == 200:
            return version
        resp = requests.get(f"{base}/maven-metadata.xml", timeout=20)
        resp.raise_for_status()
    except requests.RequestException as exc:
        raise DistError(f"cannot read {base}: {exc}", hint="check --maven-repo / KOPS_MAVEN_REPO") from exc
    key = lambda v: tuple(int(x) for x in v.split("."))   # noqa: E731
    older = sorted((v.text for v in ET.fromstring(resp.content).iter("version")
                    if v.text and VERSION_RE.fullmatch(v.text) and v.text.split(".")[0] == version.split(".")[0]
                    and key(v.text) < key(version)), key=key)
    if not older:
        raise DistError(f"{repo} serves no {group}:{artifact} for Kafka {version}",
                        hint="use a Maven repository that mirrors all of Maven Central (--maven-repo)")
    return older[-1]


def _try_extras(d: Distribution, repo: str | None, log) -> Distribution:
    """`kops dist fetch`: the extras too, but a distribution without them still serves
    brokers (a cluster that needs them asks again, and fails then)."""
    try:
        return ensure_extras(d, repo, log=log)
    except DistError as exc:
        log(f"warning: Kafka {d.version} has no Connect/metrics extras yet ({exc.message}); "
            "clusters with metrics or connect will fetch them")
        return d


def _base(jar: str) -> str:
    """An artifact's name from its jar's (jetty-util-9.4.57.v2024.jar -> jetty-util)."""
    m = re.match(r"(.+?)-\d", jar)
    return m.group(1) if m else jar[:-4]


def ensure_extras(d: Distribution, repo: str | None = None, *, log=lambda m: None) -> Distribution:
    """Complete a cached distribution with the extras, once (a lock keeps two kops
    processes from doing it together). Only artifacts missing from ``libs/`` are added, so
    a jar of the distribution is never doubled in another version."""
    import fcntl

    marker = d.path / MARKER
    if d.has_extras:
        return d
    with open(dist_root() / ".extras.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if d.has_extras:
            return d
        repo = resolve_maven_repo(repo)
        log(f"Kafka {d.version}: adding Connect, MirrorMaker 2, FileStream connectors and the "
            f"Prometheus JMX exporter from {repo}")
        work = Path(tempfile.mkdtemp(prefix=".extras.", dir=dist_root()))
        try:
            _add_extras(d.path, d.version, repo, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        meta = json.loads(marker.read_text()) if marker.is_file() else {"version": d.version, "source": d.source}
        meta["extras"] = EXTRAS
        marker.write_text(json.dumps(meta, indent=2))
    return d


def _add_extras(path: Path, version: str, repo: str, work: Path) -> None:
    libs = path / "libs"
    have = {_base(j.name) for j in libs.glob("*.jar")}
    missing = [a for a in CONNECT_LIBS if not any(libs.glob(f"{a}-[0-9]*.jar"))]
    if missing:
        (work / "pom.xml").write_text(_pom(repo, [("org.apache.kafka", a, served_version("org.apache.kafka", a, version, repo))
                                                  for a in missing]))
        _mvn(["dependency:copy-dependencies", f"-DoutputDirectory={work / 'libs'}", "-DincludeScope=runtime"],
             work, f"resolve Kafka Connect {version}")
        for jar in sorted((work / "libs").glob("*.jar")):
            if _base(jar.name) not in have:
                shutil.move(str(jar), libs / jar.name)
    plugin = path / PLUGINS_DIR / FILE_CONNECTOR
    jar = f"{FILE_CONNECTOR}-{version}.jar"
    if not any(plugin.glob(f"{FILE_CONNECTOR}-*.jar")):
        plugin.mkdir(parents=True, exist_ok=True)
        if (libs / jar).is_file():   # the official tarball keeps it in libs/, off the classpath
            shutil.move(str(libs / jar), plugin / jar)
        else:
            v = served_version("org.apache.kafka", FILE_CONNECTOR, version, repo)
            _copy_one(repo, ("org.apache.kafka", FILE_CONNECTOR, v), work / "file", plugin / f"{FILE_CONNECTOR}-{v}.jar")
    m = _agent()
    agent = path / AGENTS_DIR / m.AGENT_JAR
    if not agent.is_file():
        agent.parent.mkdir(exist_ok=True)
        got = _copy_one(repo, (m.AGENT_GROUP, m.AGENT_ARTIFACT, m.AGENT_VERSION), work / "agent", None)
        digest = hashlib.sha256(got.read_bytes()).hexdigest()
        if digest != m.AGENT_SHA256:
            raise DistError(f"SHA-256 mismatch for {m.AGENT_JAR} from {repo}: expected {m.AGENT_SHA256[:16]}..., "
                            f"got {digest[:16]}...", hint="the repository served another file; nothing was kept")
        shutil.move(str(got), agent)


def _copy_one(repo: str, coord: tuple[str, str, str], work: Path, dest: Path | None) -> Path:
    """One artifact (no dependencies) through mvn; moved to ``dest`` when given."""
    work.mkdir(parents=True)
    (work / "pom.xml").write_text(_pom(repo, [coord]))
    _mvn(["dependency:copy-dependencies", f"-DoutputDirectory={work / 'out'}", "-DincludeScope=runtime",
          "-DexcludeTransitive=true"], work, f"resolve {':'.join(coord)}")
    got = work / "out" / f"{coord[1]}-{coord[2]}.jar"
    if not got.is_file():
        raise DistError(f"mvn did not deliver {got.name}")
    if dest is not None:
        shutil.move(str(got), dest)
        return dest
    return got


def _add_kops_files(dist: Path, version: str) -> None:
    """Default logging configs, so the distribution runs as is (nodes get rendered ones), and
    the launchers of Kafka's tools."""
    from kops.bundle.render import default_log_config  # late: render imports jinja

    cfg = dist / "config"
    cfg.mkdir(exist_ok=True)
    name, text = default_log_config(version)
    if not (cfg / name).exists():
        (cfg / name).write_text(text)

    tools.write(dist, version)   # Kafka's tools as bin/*.sh launchers (kops.tools)


def tarball(dist: Distribution, out_dir: Path) -> Path:
    """Pack a distribution as the official tarball layout (used by tests and the SSH driver),
    with its SHA-512 beside it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"kafka_{SCALA}-{dist.version}"
    path = out_dir / f"{name}.tgz"
    part = out_dir / f".{name}.tgz.part"
    with tarfile.open(part, "w:gz", compresslevel=1) as tar:
        tar.add(dist.path, arcname=name, filter=lambda ti: None if ti.name.endswith(MARKER) else ti)
    part.rename(path)
    path.with_name(path.name + ".sha512").write_text(f"{_sha512(path)}  {path.name}\n")
    path.with_name(path.name + ".dist").write_text(dist.digest())
    return path


def verified_tarball(dist: Distribution, out_dir: Path) -> tuple[Path, str]:
    """The distribution's tarball and its SHA-512: a kept one is reused only when its digest
    still matches the one written when it was made (else it is made again)."""
    path = out_dir / f"kafka_{SCALA}-{dist.version}.tgz"
    digest_file = path.with_name(path.name + ".sha512")
    made_of = path.with_name(path.name + ".dist")
    if path.is_file() and digest_file.is_file() and made_of.is_file() and made_of.read_text() == dist.digest():
        want = parse_sha512(digest_file.read_text())
        if _sha512(path) == want:
            return path, want
    path = tarball(dist, out_dir)
    return path, parse_sha512(digest_file.read_text())
