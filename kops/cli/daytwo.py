"""`kops upgrade`: a version change of a running cluster (preflight, roll, finalize)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .. import upgrade as upg
from .cluster import Target
from .common import handle_errors, print_json, progress
from .config import inventory_options


@click.command("upgrade")
@inventory_options
@click.option("--to", "to", required=True, metavar="VERSION", help="The Kafka version to roll onto (X.Y.Z).")
@click.option("--finalize/--no-finalize", default=None,
              help="Raise the feature level (KRaft metadata.version) once every node runs VERSION. It cannot "
                   "be undone. Without either flag, kops asks when run in a terminal.")
@click.option("--dry-run", is_flag=True, help="Print the preflight and the plan; change nothing.")
@click.option("--timeout", default=900, show_default=True, type=click.FloatRange(min=1),
              help="Seconds for the whole roll.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--name", "rename", help="The cluster's name, when `kops up --name` gave it one.")
@click.option("--any-port", is_flag=True, help="The cluster was made with `kops up --any-port`.")
@handle_errors
def upgrade(spec_source, to, finalize, dry_run, timeout, output, rename, any_port):
    """Roll a running cluster onto Kafka VERSION: every problem first (exit 2, nothing
    changed), then one node at a time behind the readiness gates, the active controller
    last; then, with --finalize, the feature level.

    \b
    Example: kops upgrade -i dev.yaml --to 3.9.2 --dry-run
    """
    from ..dist import check_version

    check_version(to)   # before anything is looked at: exit 2
    t = Target(spec_source, allow_name=False)
    t.adjust(rename, any_port)
    confirm = None
    if finalize is None and sys.stdin.isatty() and output != "json":
        confirm = lambda q: click.confirm(q, default=False, err=True)   # noqa: E731
    with t.provider() as prov:
        out = upg.upgrade(t.spec, prov, to, finalize_now=bool(finalize), confirm=confirm, dry_run=dry_run,
                          timeout=timeout, log=progress, scope=t.scope, source=t.source)
    if output == "json":
        print_json(out.as_dict())
        return
    for line in out.preflight.lines():
        click.echo(line)
    if dry_run:
        if out.plan is not None:
            click.echo(f"\nplan (kops upgrade{t.scope} --to {to}):")
            for line in out.plan.lines() or ["(nothing to roll: every node runs it already)"]:
                click.echo(f"  {line}")
        if out.preflight.problems:
            progress("dry run: the upgrade would be refused (exit 2); nothing was changed")
            sys.exit(2)
        progress("dry run: nothing was changed")
        return
    inv = spec_source[0]
    if inv and t.spec.kafka.version != to:
        path = Path(inv)
        new = upg.rewrite_version(path.read_text(), t.spec.kafka.version, to)
        if new is not None:
            path.write_text(new)
            progress(f"{inv}: kafka.version set to {to}")
        else:
            progress(f"warning: set kafka.version: {to} in {inv} yourself (kops could not find the line); "
                     "an inventory still saying the old version would roll the cluster back")
    elif t.spec.kafka.version != to:
        progress(f"note: this inventory still says {t.spec.kafka.version}: `kops up{t.scope}` would roll the "
                 f"cluster back; use an inventory with kafka.version: {to}")
    fin = (f", feature level finalized at {out.finalized['finalized']}" if out.finalized else "")
    click.echo(f"cluster {t.spec.name} runs Kafka {to} ({out.seconds:.1f} s){fin}")
