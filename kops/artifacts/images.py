"""Kafka images built with the Docker SDK from a base image (with a JRE) and a distribution.

Layout inside the image: Kafka under ``/opt/kafka``, configs in ``/etc/kafka``, data in
``/var/lib/kafka/data`` and ``/var/lib/zookeeper`` owned by the non-root user ``kafka``.
One image serves ZooKeeper, brokers and controllers. The build trains the JVM's class
data sharing archives (kops.cds) inside the image. Built once: an image whose labels
match the distribution, the base and the build recipe is reused.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import time
from dataclasses import dataclass

from kops.artifacts import cds, tools
from kops.artifacts.dist import EXTRAS, Distribution
from kops.core.errors import EngineError, KopsError
from kops.core import engine

DEFAULT_BASE = "eclipse-temurin:21-jre"
OFFLINE_BASE = "kops-base:bookworm-jre17"   # scripts/build-base-image.sh: debootstrap, no registry


def default_base() -> str:
    """The base image a build uses when none is named: ``$KOPS_BASE_IMAGE``, else the
    offline base when this engine has it (it needs no registry), else eclipse-temurin."""
    import os

    if os.environ.get("KOPS_BASE_IMAGE"):
        return os.environ["KOPS_BASE_IMAGE"]
    import docker


    try:
        engine.client(timeout=30).images.get(OFFLINE_BASE)
        return OFFLINE_BASE
    except docker.errors.ImageNotFound:
        return DEFAULT_BASE
REPO = "kops/kafka"
LABEL_PREFIX = "io.kops"
EXTRAS_LABEL = f"{LABEL_PREFIX}.extras"
TOOLS_LABEL = f"{LABEL_PREFIX}.tools"

# The service user and its folders, on any base with a JRE (kops/kafka and kops/registry)
_USER = """\
RUN set -e; command -v java >/dev/null || {{ echo "base image {base} has no java on PATH" >&2; exit 1; }}; \\
    if ! id kafka >/dev/null 2>&1; then \\
      if getent passwd 1000 >/dev/null; then useradd --system --create-home --home-dir /home/kafka kafka; \\
      else useradd --uid 1000 --create-home --home-dir /home/kafka kafka; fi; \\
    fi; \\
    mkdir -p /var/lib/kafka/data /var/lib/zookeeper /var/log/kafka /etc/kafka; \\
    chown -R kafka:kafka /var/lib/kafka /var/lib/zookeeper /var/log/kafka /etc/kafka
"""

DOCKERFILE = """\
FROM {base}
""" + _USER + """\
COPY kafka/ /opt/kafka/
COPY kops-cds-train.sh /tmp/kops-cds-train.sh
RUN sh /tmp/kops-cds-train.sh {major} && rm /tmp/kops-cds-train.sh
ENV KAFKA_HOME=/opt/kafka PATH=/opt/kafka/bin:$PATH
USER kafka
WORKDIR /opt/kafka
"""


@dataclass(frozen=True)
class ImageInfo:
    tag: str
    id: str
    built: bool
    seconds: float


def default_tag(version: str) -> str:
    return f"{REPO}:{version}"


def _context(dist: Distribution, base: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        major = int(dist.version.split(".")[0])
        for name, text in (("Dockerfile", DOCKERFILE.format(base=base, major=major)),
                           ("kops-cds-train.sh", cds.TRAIN_SCRIPT)):
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))

        def owner(t: tarfile.TarInfo) -> tarfile.TarInfo:
            t.uid = t.gid = 0
            t.uname = t.gname = "root"
            return t

        # Kafka's tools (kops.tools) as generated now; the distribution's own copies of them are left out
        generated = {f"kafka/{p}" for p in tools.add_to_tar(tar, dist.version, prefix="kafka/")}

        def owner_not_generated(t: tarfile.TarInfo) -> tarfile.TarInfo | None:
            return None if t.name in generated else owner(t)

        for sub in ("libs", "config", "bin", "agents", "plugins"):
            if (dist.path / sub).exists():
                tar.add(dist.path / sub, arcname=f"kafka/{sub}", filter=owner_not_generated)
    buf.seek(0)
    return buf


def ensure(dist: Distribution, *, base: str = DEFAULT_BASE, tag: str | None = None,
           force: bool = False, log=lambda msg: None) -> ImageInfo:
    """Build ``tag`` from ``base`` + ``dist`` unless an identical one exists."""

    import docker

    cli = engine.client(timeout=600)
    tag = tag or default_tag(dist.version)
    try:
        base_img = cli.images.get(base)
        base_id = base_img.id
    except docker.errors.ImageNotFound:
        base_id = None  # the build will try to pull it
    labels = {
        f"{LABEL_PREFIX}.image": "kafka",
        f"{LABEL_PREFIX}.kafka.version": dist.version,
        f"{LABEL_PREFIX}.dist.digest": dist.digest(),
        f"{LABEL_PREFIX}.base": base,
        f"{LABEL_PREFIX}.base.id": base_id or "",
        f"{LABEL_PREFIX}.dockerfile": hashlib.sha256(DOCKERFILE.encode()).hexdigest()[:12],
        f"{LABEL_PREFIX}.cds": cds.digest(),
        # Connect, MirrorMaker 2, FileStream connectors, the metrics agent (kops.dist.EXTRAS)
        EXTRAS_LABEL: EXTRAS if dist.has_extras else "",
        TOOLS_LABEL: tools.fingerprint(dist.version),   # Kafka's tools on PATH (kops.tools)
    }
    if not force:
        try:
            have = cli.images.get(tag)
            if all(have.labels.get(k) == v for k, v in labels.items()):
                log(f"image {tag} is up to date ({have.short_id})")
                return ImageInfo(tag, have.id, False, 0.0)
        except docker.errors.ImageNotFound:
            pass
    if base_id is None:
        log(f"base image {base} is not present: the engine will try to pull it")
    log(f"building {tag} from {base} with Kafka {dist.version}")
    t0 = time.monotonic()
    out = []
    try:
        for chunk in cli.api.build(fileobj=_context(dist, base), custom_context=True, tag=tag,
                                   labels=labels, rm=True, forcerm=True, decode=True,
                                   pull=False):
            if "stream" in chunk:
                out.append(chunk["stream"])
            if "error" in chunk:
                tail = "".join(out[-20:])
                hint = ("the base image could not be had: with no registry, build one offline "
                        "(scripts/build-base-image.sh) and pass --base kops-base:bookworm-jre17"
                        if "pull" in chunk["error"] or "not found" in chunk["error"] else None)
                raise KopsError(f"image build of {tag} failed: {chunk['error'].strip()}",
                                details=tail, hint=hint)
    except docker.errors.APIError as exc:
        raise EngineError(f"image build of {tag} failed: {exc.explanation or exc}") from exc
    img = cli.images.get(tag)
    secs = time.monotonic() - t0
    log(f"built {tag} ({img.short_id}) in {secs:.1f} s")
    return ImageInfo(tag, img.id, True, secs)


REGISTRY_DOCKERFILE = """\
FROM {base}
""" + _USER + """\
COPY registry/ /opt/registry/
USER kafka
WORKDIR /opt/registry
"""


def ensure_registry(*, base: str | None = None, log=lambda msg: None) -> ImageInfo:
    """kops's schema registry image (kops.registry): the application on the JRE base, built
    once from the cached application (fetched from Maven the first time)."""
    import docker

    from kops.services import registry

    cli = engine.client(timeout=600)
    base = base or default_base()
    labels = {f"{LABEL_PREFIX}.image": "registry", f"{LABEL_PREFIX}.registry.version": registry.VERSION,
              f"{LABEL_PREFIX}.base": base,
              f"{LABEL_PREFIX}.dockerfile": hashlib.sha256(REGISTRY_DOCKERFILE.encode()).hexdigest()[:12]}
    try:
        have = cli.images.get(registry.IMAGE)
        if all(have.labels.get(k) == v for k, v in labels.items()):
            return ImageInfo(registry.IMAGE, have.id, False, 0.0)
    except docker.errors.ImageNotFound:
        pass
    home = registry.app(log=log)
    log(f"building {registry.IMAGE} from {base} with Apicurio Registry {registry.VERSION}")
    t0 = time.monotonic()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = REGISTRY_DOCKERFILE.format(base=base).encode()
        ti = tarfile.TarInfo("Dockerfile")
        ti.size = len(data)
        tar.addfile(ti, io.BytesIO(data))

        def owner(t: tarfile.TarInfo) -> tarfile.TarInfo | None:
            if t.name.endswith(".kops-complete"):
                return None
            t.uid = t.gid = 0
            t.uname = t.gname = "root"
            return t

        tar.add(home, arcname="registry", filter=owner)
    buf.seek(0)
    out = []
    try:
        for chunk in cli.api.build(fileobj=buf, custom_context=True, tag=registry.IMAGE, labels=labels, rm=True,
                                   forcerm=True, decode=True, pull=False):
            if "stream" in chunk:
                out.append(chunk["stream"])
            if "error" in chunk:
                raise KopsError(f"image build of {registry.IMAGE} failed: {chunk['error'].strip()}",
                                details="".join(out[-20:]))
    except docker.errors.APIError as exc:
        raise EngineError(f"image build of {registry.IMAGE} failed: {exc.explanation or exc}") from exc
    img = cli.images.get(registry.IMAGE)
    secs = time.monotonic() - t0
    log(f"built {registry.IMAGE} ({img.short_id}) in {secs:.1f} s")
    return ImageInfo(registry.IMAGE, img.id, True, secs)
