"""`kops upgrade`: a version change of a running cluster (preflight, roll, finalize)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kops.ops import upgrade as upg
from kops.cli.cluster import Target
from kops.cli.common import Seconds, handle_errors, print_json, progress
from kops.cli.config import inventory_options


@click.command("upgrade")
@inventory_options
@click.option("--to", "to", required=True, metavar="VERSION", help="The Kafka version to roll onto (X.Y.Z).")
@click.option("--finalize/--no-finalize", default=None,
              help="Raise the feature level (KRaft metadata.version) once every node runs VERSION. It cannot "
                   "be undone. Without either flag, kops asks when run in a terminal.")
@click.option("--dry-run", is_flag=True, help="Print the preflight and the plan; change nothing.")
@click.option("--timeout", default=900, show_default=True, type=Seconds(1),
              help="Seconds for the whole roll.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--name", "rename", help="The cluster's name, when `kops up --name` gave it one.")
@click.option("--any-port", is_flag=True, help="Not needed any more: a cluster keeps the host ports "
                                               "`kops up --any-port` picked.")
@handle_errors
def upgrade(spec_source, to, finalize, dry_run, timeout, output, rename, any_port):
    """Roll a running cluster onto Kafka VERSION: every problem first (exit 2, nothing
    changed), then one node at a time behind the readiness gates, the active controller
    last; then, with --finalize, the feature level.

    \b
    Example: kops upgrade -i dev.yaml --to 3.9.2 --dry-run
    """
    from kops.artifacts.dist import check_version

    check_version(to)   # before anything is looked at: exit 2
    t = Target(spec_source, rename, allow_name=False)   # its kept host ports and profile too
    t.adjust(None, any_port)
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


@click.command("migrate")
@inventory_options
@click.option("--to-kraft", "to_kraft", is_flag=True,
              help="Migrate a ZooKeeper-mode Kafka 3.9 cluster to KRaft (KIP-866); the one migration there is.")
@click.option("--controllers", type=click.IntRange(1, 9), default=None,
              help="KRaft controllers to deploy (odd; Docker default 3; SSH: one per ZooKeeper host).")
@click.option("--status", "show_status", is_flag=True, help="Say where the migration stands; change nothing.")
@click.option("--rollback", is_flag=True,
              help="Go back to ZooKeeper mode (possible until the controllers leave migration mode).")
@click.option("--purge-zookeeper", is_flag=True,
              help="Remove ZooKeeper's nodes and data at the end (default: stopped, data kept).")
@click.option("--write/--no-write", "write", default=True, show_default=True,
              help="Rewrite the inventory file as the KRaft cluster at the end (the old one kept as FILE.zookeeper).")
@click.option("--dry-run", is_flag=True, help="Print every phase's plan; change nothing.")
@click.option("--timeout", default=1800, show_default=True, type=Seconds(1),
              help="Seconds for the whole migration.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--name", help="Cluster name (its inventory: the one it was made from).")
@handle_errors
def migrate(spec_source, to_kraft, controllers, show_status, rollback, purge_zookeeper, write, dry_run,
            timeout, output, name):
    """Migrate a running ZooKeeper-mode cluster to KRaft, phase by phase, each a checkpoint:
    controllers deployed in migration mode, brokers rolled into migration, the metadata
    copied, brokers rolled to KRaft, controllers out of migration (no way back after this),
    ZooKeeper stopped. Interrupted or failed, the same command resumes; --rollback goes back
    to ZooKeeper before the controllers leave migration mode.

    \b
    Example: kops migrate -i prod.yaml --to-kraft --dry-run
    """
    from kops.ops import migrate as mig

    if not (to_kraft or show_status or rollback):
        raise click.UsageError("say what to do: --to-kraft (migrate or resume), --status or --rollback")
    t = Target(spec_source, name, allow_name=False)
    if show_status:
        d = mig.describe(t.spec.name)
        if output == "json":
            print_json(d)
            return
        click.echo(f"cluster {d['cluster']}: migration {d['state']}"
                   + (f", cluster id {d['cluster_id']}, {d['controllers']} controllers" if d.get("cluster_id") else ""))
        for i, row in enumerate(d["phases"], 1):
            secs = f" ({row['seconds']:.1f} s)" if "seconds" in row else ""
            click.echo(f"  {i}. {row['phase']:<18} {row['status']}{secs}: {row['words']}")
        if d.get("error"):
            click.echo(f"  last error: {d['error']}")
        if d["state"] == "migrating":
            from kops.store.migration_record import checkpoint, next_step

            click.echo(f"  next: {next_step(checkpoint(t.name), t.scope)}")
        return
    with t.provider() as prov:
        if rollback:
            out = mig.rollback(t.spec, prov, dry_run=dry_run, timeout=timeout, log=progress, scope=t.scope)
        else:
            out = mig.migrate(t.spec, prov, controllers=controllers, purge_zookeeper=purge_zookeeper,
                              dry_run=dry_run, timeout=timeout, log=progress, scope=t.scope)
    written = None
    inv = spec_source[0]
    if not dry_run and not rollback and out.inventory and write and inv and t.spec.mode == "zookeeper":
        path = Path(inv)
        keep = path.with_name(path.name + ".zookeeper")
        keep.write_text(path.read_text())
        path.write_text(out.inventory)
        written = str(path)
        progress(f"{inv}: rewritten as the KRaft cluster (the ZooKeeper inventory is kept in {keep})")
    if output == "json":
        print_json({**out.as_dict(), "inventory_written": written})
        return
    for i, row in enumerate(out.phases, 1):
        click.echo(f"{i}. {row['phase']}: {row['words']}" + (f" [{row['status']}]" if not dry_run else ""))
        for line in row.get("plan") or []:
            click.echo(f"     {line}")
    if dry_run:
        if not rollback and out.inventory:
            click.echo("\nthe inventory afterwards:\n" + out.inventory)
        progress("dry run: nothing was changed")
        return
    if rollback:
        click.echo(f"cluster {out.cluster} is back in ZooKeeper mode ({out.seconds:.1f} s)")
        return
    if not written and out.inventory and t.spec.mode == "zookeeper":
        click.echo("\nthe cluster's inventory now:\n" + out.inventory)
    click.echo(f"cluster {out.cluster} runs in KRaft mode ({out.seconds:.1f} s)")
