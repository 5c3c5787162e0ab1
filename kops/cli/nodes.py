"""`kops exec` and `kops shell`: a command or an interactive shell on a node."""

from __future__ import annotations

import sys

import click

from kops.ops import nodes
from kops.cli.cluster import Target
from kops.cli.common import handle_errors
from kops.cli.config import inventory_options


def _run(node, argv, spec_source, name, tty) -> None:
    t = Target(spec_source, name)
    with t.provider() as prov:
        code = nodes.attach(t.spec, prov, node, argv, name=t.name, tty=tty, scope=t.scope)
    sys.exit(code)


@click.command("exec")
@click.argument("node")
@click.argument("command", nargs=-1, required=True)
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("-T", "--no-tty", is_flag=True, help="No TTY, even when stdin and stdout are terminals.")
@handle_errors
def exec_(node, command, spec_source, name, no_tty):
    """Run COMMAND on NODE (kafka1, zoo1, controller1, ...) in the node's environment:
    Kafka's tools on PATH, KAFKA_BOOTSTRAP_SERVERS (the cluster network's) and
    KOPS_CLIENT_CONFIG (a ready client.properties). Put `--` before the command.
    stdin is passed on; the command's exit code is kops's; an unknown node is exit 2,
    a stopped one exit 3.

    \b
    Example: kops exec kafka1 -- sh -c 'kafka-topics.sh --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --list'
    """
    tty = not no_tty and sys.stdin.isatty() and sys.stdout.isatty()
    _run(node, list(command), spec_source, name, tty)


@click.command("shell")
@click.argument("node")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("-T", "--no-tty", is_flag=True, help="No TTY, even when stdin is a terminal.")
@handle_errors
def shell(node, spec_source, name, no_tty):
    """An interactive shell on NODE (bash, else sh), in the node's environment (see
    `kops exec --help`); a TTY when stdin is a terminal.

    \b
    Example: kops shell kafka1 --preset kraft-single
    """
    _run(node, list(nodes.SHELL), spec_source, name, not no_tty and sys.stdin.isatty())
