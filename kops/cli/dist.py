"""`kops dist` and `kops image`: Kafka distributions and images."""

from __future__ import annotations

import click

from kops.core.errors import InputError
from kops.cli.common import handle_errors, print_json, progress


@click.group("dist")
def dist_group():
    """Kafka distributions (official tarball, Maven assembly, local)."""


@dist_group.command("fetch")
@click.argument("version")
@click.option("--from", "source", default="apache", show_default=True,
              help="apache (official tarball, SHA-512 checked), maven, or a path to a .tgz or folder")
@click.option("--apache-url", envvar="KOPS_APACHE_URL", help="Base URL of an Apache mirror "
              "(default https://archive.apache.org/dist).")
@click.option("--maven-repo", envvar="KOPS_MAVEN_REPO", help="Maven repository URL (default Maven Central).")
@click.option("--sha512", help="With --from PATH: the tarball's SHA-512 (else PATH.sha512 beside it is used).")
@click.option("--force", is_flag=True, help="Fetch again even if cached.")
@click.option("--extras/--no-extras", default=True, show_default=True,
              help="Also Connect, MirrorMaker 2, the FileStream connectors and the Prometheus JMX exporter "
                   "(from Maven).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def fetch(version, source, apache_url, maven_repo, sha512, force, extras, output):
    """Fetch Kafka VERSION (X.Y.Z; 'latest' with --from maven) into the cache.

    \b
    Example: kops dist fetch 3.9.2 --from ./kafka_2.13-3.9.2.tgz --sha512 <128 hex>
    """
    if sha512 and source in ("apache", "maven"):
        raise InputError("--sha512 goes with --from PATH (apache checks the published .sha512 itself)")
    from kops.artifacts import dist as distlib  # late: requests is heavy, and most commands never need it

    d = distlib.fetch(version, source, apache_url=apache_url, maven_repo=maven_repo,
                      force=force, sha512=sha512, log=progress, extras=extras)
    if output == "json":
        print_json({"version": d.version, "path": str(d.path), "source": d.source,
                    "zookeeper": d.has_zookeeper, "extras": d.has_extras})
    else:
        click.echo(str(d.path))


@dist_group.command("ls")
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def ls(output):
    """List cached distributions."""
    from kops.artifacts import dist as distlib

    rows = []
    for p in sorted(distlib.dist_root().glob("kafka_*")):
        if (hit := distlib.cached(p.name.rsplit("-", 1)[-1])):
            rows.append({"version": hit.version, "path": str(hit.path), "source": hit.source})
    if output == "json":
        print_json(rows)
    else:
        for r in rows:
            click.echo(f"{r['version']}\t{r['source']}\t{r['path']}")


@click.group("image")
def image_group():
    """Kafka container images."""


@image_group.command("build")
@click.argument("version")
@click.option("--base", default=None, envvar="KOPS_BASE_IMAGE",
              help="Base image with a JRE (default: kops-base:bookworm-jre17 when the engine has it, else eclipse-temurin:21-jre).")
@click.option("--dist", "dist_src", default=None,
              help="Distribution to use: apache, maven or a path (default: cached, else apache).")
@click.option("--tag", default=None, help="Image tag (default kops/kafka:VERSION).")
@click.option("--force", is_flag=True, help="Rebuild even if an identical image exists.")
@handle_errors
def build(version, base, dist_src, tag, force):
    """Build the Kafka image for VERSION (ZooKeeper, broker and controller in one)."""
    from kops.artifacts import images

    from kops.artifacts import dist as distlib

    d = distlib.cached(version) if dist_src is None and version != "latest" else None
    if d is None:
        d = distlib.fetch(version, dist_src or "apache", log=progress)
    info = images.ensure(d, base=base or images.default_base(), tag=tag, force=force, log=progress)
    click.echo(info.tag)


@image_group.command("build-registry")
@click.option("--base", default=None, envvar="KOPS_BASE_IMAGE",
              help="Base image with a JRE 17+ (default: kops-base:bookworm-jre17 when the engine has it).")
@handle_errors
def build_registry(base):
    """Build kops's schema registry image (Apicurio Registry from Maven, kops.registry)."""
    from kops.artifacts import images

    info = images.ensure_registry(base=base, log=progress)
    click.echo(info.tag)
