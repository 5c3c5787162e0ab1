"""`kops connect list|create|status|restart|delete`: connectors through the workers' REST API."""

from __future__ import annotations

import sys

import click

from kops.cli.cluster import Target
from kops.cli.common import handle_errors, out_console, print_json, progress
from kops.cli.config import inventory_options


@click.group("connect")
def connect_group():
    """Kafka Connect connectors of a cluster (its workers' REST API).

    \b
    Example: kops connect create -i dev.yaml ./file-source.json
    """


def _workers(spec_source, name):
    from kops.orchestration import lifecycle

    t = Target(spec_source, name)
    with t.provider() as prov:
        return t, lifecycle.worker_addresses(t.spec, prov, t.name)


_name = click.option("--name", help="Cluster name (instead of an inventory).")
_output = click.option("--output", type=click.Choice(["text", "json"]), default="text")


def _tasks(states: list[str]) -> str:
    return ", ".join(states) or "-"


@connect_group.command("list")
@inventory_options
@_name
@_output
@handle_errors
def list_cmd(spec_source, name, output):
    """The connectors, their state and their tasks'."""
    from rich import box
    from rich.table import Table

    from kops.services import connect

    _t, addrs = _workers(spec_source, name)
    found = connect.list_all(addrs)
    if output == "json":
        print_json(found)
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("CONNECTOR", "TYPE", "STATE", "TASKS", "WORKER"):
        table.add_column(col)
    for cname, c in found.items():
        table.add_row(cname, c["type"], c["state"], _tasks(c["tasks"]), c["worker"])
    out_console.print(table)
    if not found:
        progress("no connectors yet: kops connect create FILE.json")


@connect_group.command("create")
@inventory_options
@_name
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Check the file and show what would be sent; change nothing.")
@_output
@handle_errors
def create_cmd(spec_source, name, file, dry_run, output):
    """Create (or update) the connector FILE describes: {"name": ..., "config": {...}}."""
    from kops.services import connect

    cname, config = connect.load_connector(file)
    if dry_run:
        progress(f"would PUT /connectors/{cname}/config on a worker (dry run: nothing sent)")
        print_json({"name": cname, "config": config})
        return
    _t, addrs = _workers(spec_source, name)
    got = connect.create(addrs, cname, config)
    progress(f"connector {cname} created or updated on {addrs[0]}")
    if output == "json":
        print_json(got)
    else:
        click.echo(cname)


@connect_group.command("status")
@inventory_options
@_name
@click.argument("connector")
@_output
@handle_errors
def status_cmd(spec_source, name, connector, output):
    """A connector's state and its tasks'. Exit 0 running, 1 failed or paused, 3 no such connector."""
    from kops.services import connect

    _t, addrs = _workers(spec_source, name)
    st = connect.status_of(addrs, connector)
    states = [st.get("connector", {}).get("state", "?")] + [t.get("state", "?") for t in st.get("tasks") or []]
    if output == "json":
        print_json(st)
    else:
        c = st.get("connector", {})
        click.echo(f"{connector}: {c.get('state', '?')} on {c.get('worker_id', '?')}")
        for t in st.get("tasks") or []:
            click.echo(f"  task {t.get('id')}: {t.get('state')} on {t.get('worker_id', '?')}")
            if t.get("trace"):
                click.echo("    " + t["trace"].strip().splitlines()[0])
    sys.exit(0 if all(s == "RUNNING" for s in states) else 1)


@connect_group.command("restart")
@inventory_options
@_name
@click.argument("connector")
@handle_errors
def restart_cmd(spec_source, name, connector):
    """Restart a connector and its tasks."""
    from kops.services import connect

    _t, addrs = _workers(spec_source, name)
    connect.restart(addrs, connector)
    progress(f"connector {connector} restarted (with its tasks)")


@connect_group.command("delete")
@inventory_options
@_name
@click.argument("connector")
@click.option("--dry-run", is_flag=True, help="Say what would be deleted; change nothing.")
@handle_errors
def delete_cmd(spec_source, name, connector, dry_run):
    """Delete a connector (its offsets stay in the group's offsets topic)."""
    from kops.services import connect

    _t, addrs = _workers(spec_source, name)
    if dry_run:
        connect.status_of(addrs, connector)   # exit 3 when there is no such connector
        progress(f"would delete connector {connector} (dry run: nothing changed)")
        return
    connect.delete(addrs, connector)
    progress(f"connector {connector} deleted")
