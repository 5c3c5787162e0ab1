"""A schema registry: Apicurio Registry with its Confluent-compatible REST API, stored in Kafka.

Why Apicurio: it is the one registry with the Confluent API (``/apis/ccompat/v7``: subjects,
versions, compatibility) that Maven Central serves as a runnable application
(``io.apicurio:apicurio-registry-app:<v>:tar.gz:all``), and its ``kafkasql`` storage keeps
every schema in a Kafka topic, so it needs no database. Version 3.0.9 is the newest that
runs on the Java 17 every kops node already has (3.1 and later need Java 21); Confluent's
own registry is not on Maven Central and Karapace is not on PyPI.

The registry nodes (``registry1..N``) run the application's runner jar with a rendered
``registry.properties`` (``-Dquarkus.config.locations``): the journal and snapshot topics,
the brokers, the REST listener. kops creates the two topics itself before the first start
(one partition, replication factor min(3, brokers), kept forever): the application would
create them with a retention of 7 days, and a registry whose journal expires forgets its
schemas. Readiness is observed: ``/health/ready`` says UP (the journal is read) and the
Confluent API lists the subjects.
"""

from __future__ import annotations

from kops.core import paths
from kops.core.errors import KopsError
from kops.core import wait as waiting
from kops.kafka.health import NotYet
from kops.kafka import data
from kops.artifacts import dist

GROUP = "io.apicurio"
ARTIFACT = "apicurio-registry-app"
VERSION = "3.0.9"
CLASSIFIER = "all"
PACKAGING = "tar.gz"
RUNNER = f"{ARTIFACT}-{VERSION}-runner.jar"
HOME_NAME = f"apicurio-registry-{VERSION}"
IMAGE = f"kops/registry:{VERSION}"
PROPERTIES = "registry.properties"
API = "/apis/ccompat/v7"
JOURNAL = "kafkasql-journal"
SNAPSHOTS = "kafkasql-snapshots"
TIMEOUT = 5.0
# keys kops sets (the inventory's schema_registry.config may not): storage, brokers, listener
MANAGED = ("apicurio.storage.kind", "apicurio.kafkasql.bootstrap.servers", "apicurio.kafkasql.topic",
           "apicurio.kafkasql.snapshots.topic", "quarkus.http.port", "quarkus.http.host",
           "quarkus.config.locations", "apicurio.rules.global.compatibility")


def coordinates() -> str:
    return f"{GROUP}:{ARTIFACT}:{VERSION}:{PACKAGING}:{CLASSIFIER}"


def cache_dir():
    """Where the unpacked application is kept on this machine."""
    return paths.cache_dir() / "registry" / HOME_NAME


def topic_names(spec) -> tuple[str, str]:
    """The journal and snapshot topics (Apicurio's own names: each cluster has one registry)."""
    return JOURNAL, SNAPSHOTS


def topic_configs() -> dict[str, str]:
    """The storage topics keep everything: the journal is the registry's only copy."""
    return {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


# Kafka client settings every client of the kafkasql storage gets (its producers, consumers,
# admin): kops puts a secure cluster's TLS and SCRAM settings here, not under
# apicurio.kafkasql.security.* (whose SASL is OAuth's)
CLIENT_PREFIX = "apicurio.kafka.common."


def settings(topo, node, security: list[tuple[str, str]] = ()) -> list[tuple[str, object]]:
    """The application's properties: kops's keys first, then the inventory's
    (schema_registry.config and nodes.registryN.config; the managed keys are refused).
    ``security``: the Kafka client security settings of a secure cluster
    (kops.bundle.render.service_client), under CLIENT_PREFIX."""
    journal, snapshots = topic_names(topo.spec)
    managed = [
        ("apicurio.storage.kind", "kafkasql"),
        ("apicurio.kafkasql.bootstrap.servers", topo.internal_bootstrap),
        ("apicurio.kafkasql.topic", journal),
        ("apicurio.kafkasql.snapshots.topic", snapshots),
        ("quarkus.http.host", topo.bind_host(node)),
        ("quarkus.http.port", node.ports["rest"]),
        # the global compatibility rule, the default of every subject (Confluent's is BACKWARD too)
        ("apicurio.rules.global.compatibility", topo.spec.schema_registry.compatibility),
    ]
    managed += [(CLIENT_PREFIX + key, value) for key, value in security]
    defaults = {
        # the same schema text gives the same id however it is formatted (as Confluent's does)
        "apicurio.ccompat.use-canonical-hash": True,
        "apicurio.rest.deletion.artifact.enabled": True,
        "apicurio.rest.deletion.artifact-version.enabled": True,
        "apicurio.rest.deletion.group.enabled": True,
        "quarkus.log.level": "INFO",
        "quarkus.http.access-log.enabled": False,
    }
    return managed + list({**defaults, **node.config}.items())


def node_files(topo, node, security: list[tuple[str, str]] = ()) -> dict[str, str]:
    from kops.bundle.render import render_template

    return {PROPERTIES: render_template("registry/registry.properties.j2", cluster=topo.name, node=node,
                                        version=VERSION, secure=bool(security),
                                        settings=settings(topo, node, security))}


def jvm_argv(java: str, home: str, conf_dir: str, heap: str) -> list[str]:
    """A small Quarkus JVM: the client compiler, the serial collector, metaspace capped."""
    return [java, f"-Xmx{heap}", "-Xms32m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            "-XX:MaxMetaspaceSize=160m", "-XX:-UsePerfData", "-Djava.awt.headless=true",
            f"-Dquarkus.config.locations=file:{conf_dir}/{PROPERTIES}",
            "-Djava.util.logging.manager=org.jboss.logmanager.LogManager",
            "-jar", f"{home}/{RUNNER}"]


# -- the REST API -------------------------------------------------------------------------------

def call(address: str, method: str, path: str, body=None, timeout: float = TIMEOUT):
    import requests

    try:
        resp = requests.request(method, f"http://{address}{path}", json=body, timeout=timeout,
                                headers={"Accept": "application/json"})
    except requests.RequestException as exc:
        raise KopsError(f"schema registry at {address} does not answer: {exc.__class__.__name__}",
                        hint="kops status shows the registry nodes; kops up starts a stopped one") from exc
    if resp.status_code >= 400:
        try:
            msg = resp.json().get("message", resp.text[:300])
        except ValueError:
            msg = resp.reason
        raise KopsError(f"schema registry at {address} refused {method} {path} (HTTP {resp.status_code}): {msg}")
    return resp.json() if resp.content else None


def ready(address: str, timeout: float = TIMEOUT) -> tuple[bool, str]:
    """/health/ready UP (storage ready: the journal was read), then the Confluent API answers."""
    import requests

    try:
        resp = requests.get(f"http://{address}/health/ready", timeout=timeout)
    except requests.RequestException as exc:
        return False, f"REST API not answering yet ({exc.__class__.__name__})"
    if resp.status_code != 200:
        down = []
        try:
            down = [c.get("name", "?") for c in resp.json().get("checks", []) if c.get("status") != "UP"]
        except ValueError:
            pass
        return False, f"not ready (HTTP {resp.status_code}{': ' + ', '.join(down) if down else ''})"
    try:
        call(address, "GET", f"{API}/subjects", timeout=timeout)
    except KopsError as exc:
        return False, exc.message
    return True, "ready"


def ready_probe(addresses: dict[str, str]):
    """The registry-ready gate: raises NotYet until every registry node is ready."""
    def probe():
        for name, addr in addresses.items():
            ok, why = ready(addr)
            if not ok:
                raise NotYet(f"{name}: {why}")
        return f"{len(addresses)} registry node(s)"
    return probe


def node_status(address: str, timeout: float = 3.0) -> dict:
    """A running registry node as the status shows it: ready or not, its subjects."""
    ok, why = ready(address, timeout)
    if not ok:
        return {"error": why}
    try:
        subjects = call(address, "GET", f"{API}/subjects", timeout=timeout) or []
        # the global rule as enforced (ccompat's GET /config shows only one set through it)
        mode = (call(address, "GET", "/apis/registry/v3/admin/rules/COMPATIBILITY", timeout=timeout)
                or {}).get("config")
    except KopsError as exc:
        return {"error": exc.message.rsplit(": ", 1)[-1]}
    return {"subjects": len(subjects), "compatibility": mode}


def url(topo) -> str | None:
    """The Confluent-compatible API's URL for clients on this machine (the first node's)."""
    nodes = topo.registries
    return f"http://{topo.rest_address(nodes[0])}{API}" if nodes else None


def ensure_topics(ctx, deadline: float) -> list[str]:
    """Create the storage topics where missing (the StorageTopics action); returns those made."""

    client = ctx.kafka()
    session = data.Session(client.bootstrap, dict(client.settings), timeout=30.0)
    rf = min(3, len(ctx.topo.brokers))
    made = [t for t in topic_names(ctx.topo.spec)
            if data.create_topic(session, t, 1, rf, topic_configs(), if_not_exists=True)]
    if made:
        ctx.log(f"schema registry storage: topics {', '.join(made)} created (replication factor {rf}, kept forever)")
    return made


# -- the application: fetched once from Maven, kept unpacked in kops's cache ----------------------

def app(repo: str | None = None, log=lambda m: None):
    """The unpacked application (``<cache>/registry/apicurio-registry-<v>/``): fetched with
    mvn from the machine's Maven repository the first time (mvn checks the repository's
    checksums), complete only once its marker is written."""
    import fcntl
    import shutil
    import tarfile
    import tempfile
    from pathlib import Path


    target = cache_dir()
    marker = target / ".kops-complete"
    if marker.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.is_file():
            return target
        repo = dist.resolve_maven_repo(repo)
        log(f"fetching Apicurio Registry {VERSION} ({coordinates()}) from {repo} with mvn")
        work = Path(tempfile.mkdtemp(prefix=".fetch.", dir=target.parent))
        try:
            # dependency:copy: the artifact alone (its parent POM need not be served)
            (work / "pom.xml").write_text(dist._pom(repo, []))
            dist._mvn(["dependency:copy", f"-Dartifact={GROUP}:{ARTIFACT}:{VERSION}:{PACKAGING}:{CLASSIFIER}",
                       f"-DoutputDirectory={work / 'out'}"], work, f"fetch {coordinates()}")
            got = work / "out" / f"{ARTIFACT}-{VERSION}-{CLASSIFIER}.{PACKAGING}"
            if not got.is_file():
                raise dist.DistError(f"mvn did not deliver {got.name}")
            unpacked = work / "app"
            with tarfile.open(got) as tar:
                tar.extractall(unpacked, filter="data")   # no absolute paths, links out or devices
            if not (unpacked / RUNNER).is_file():
                raise dist.DistError(f"{got.name} has no {RUNNER}: not the application kops knows")
            shutil.rmtree(target, ignore_errors=True)
            unpacked.rename(target)
            marker.write_text(coordinates() + "\n")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def tarball(home, out_dir):
    """The application as a tarball to push to SSH hosts (``<HOME_NAME>/...``) and its
    SHA-512; made once and kept while it still matches its digest."""
    import hashlib
    import tarfile

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{HOME_NAME}.tgz"
    sha_file = path.with_name(path.name + ".sha512")

    def sha512(p) -> str:
        h = hashlib.sha512()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    if path.is_file() and sha_file.is_file() and sha512(path) == sha_file.read_text().split()[0]:
        return path, sha_file.read_text().split()[0]
    part = path.with_name(f".{path.name}.part")
    with tarfile.open(part, "w:gz", compresslevel=1) as tar:
        tar.add(home, arcname=HOME_NAME, filter=lambda ti: None if ti.name.endswith(".kops-complete") else ti)
    part.rename(path)
    digest = sha512(path)
    sha_file.write_text(f"{digest}  {path.name}\n")
    return path, digest


@waiting.gate("registry-ready", "the schema registry to be ready (its journal read, the Confluent API answering)")
def _registry_ready(ctx, action):
    nodes = [n for n in ctx.topo.registries if not action.nodes or n.name in action.nodes]
    probe = ready_probe({n.name: ctx.topo.rest_address(n) for n in nodes})
    return probe, lambda n, secs: (f"schema registry ready in {secs:.1f} s: {url(ctx.topo)} "
                                   f"({len(nodes)} node(s), Apicurio Registry {VERSION})")
