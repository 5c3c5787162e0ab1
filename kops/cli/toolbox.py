"""The operator's toolbox: `kops debug bundle`."""

from __future__ import annotations

from pathlib import Path

import click

from kops.cli.cluster import Target
from kops.cli.common import err_console, handle_errors, print_json, progress
from kops.cli.config import inventory_options
from kops.core.errors import InputError


@click.group("debug")
def debug_group():
    """Diagnostics of a cluster for a support ticket (secrets taken out)."""


@debug_group.command("bundle")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("-o", "--output-file", "out", type=click.Path(dir_okay=False),
              help="The .tar.gz to write (default <cluster>-debug-<UTC time>.tar.gz here).")
@click.option("--lines", default=500, show_default=True, type=click.IntRange(1, 100000),
              help="Log lines of each node.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def bundle(spec_source, name, out, lines, output):
    """One .tar.gz with the status, the inventory, every node's files, logs, state and host
    facts (clock, memory, disk, JVM flags) and Kafka's view (topics, groups with lag, log
    dir sizes, quorum or ZooKeeper). Passwords, keys and every secret kops keeps for the
    cluster are redacted; files holding credentials are listed, not included. Exit 3 when
    the cluster is not there.

    \b
    Example: kops debug bundle --name dev -o dev-debug.tar.gz
    """
    from kops.ops import debug

    t = Target(spec_source, name)
    path = Path(out) if out else debug.default_path(t.name)
    if not path.name.endswith(".tar.gz"):
        raise InputError(f"-o {click.format_filename(str(path))}: the bundle is a .tar.gz; name it so",
                         hint="e.g. -o debug.tar.gz")
    if not path.parent.is_dir():
        raise InputError(f"-o {click.format_filename(str(path))}: no folder {path.parent}",
                         hint="give a path in an existing folder")
    with t.provider() as prov:
        rep = debug.bundle(t.spec, prov, path, name=t.name, lines=lines, log=progress)
    if output == "json":
        print_json(rep.as_dict())
        return
    for m in rep.missing:
        err_console.print(f"not collected: {m}", markup=False)
    click.echo(f"{rep.path} ({rep.files} files, {rep.bytes / 1024:.0f} KiB, {rep.seconds:.1f} s; "
               f"secrets redacted, {rep.secrets_checked} known secret(s) checked absent)")
