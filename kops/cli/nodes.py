"""`kops exec` and `kops shell`: a command or an interactive shell on a node."""

from __future__ import annotations

import re
import sys

import click

from kops.ops import nodes
from kops.cli.cluster import Target
from kops.cli.common import handle_errors, progress
from kops.cli.config import inventory_options


# an address on the node itself, as a user types it for Kafka's tools (--bootstrap-server localhost:9092)
_LOCAL = re.compile(r"(?<![\w.-])(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]):(\d{1,5})(?!\d)")


def local_addresses(argv: list[str]) -> list[tuple[str, int]]:
    """``(address, port)`` of every localhost address in the command's words."""
    return [(m.group(0), int(m.group(1))) for word in argv for m in _LOCAL.finditer(word)]


def listener_hint(node: str, addresses: dict[str, dict[str, str]], asked: list[tuple[str, int]],
                  scope: str = "") -> str | None:
    """Why ``localhost:PORT`` inside NODE gets no answer, and the way that works; None when
    every asked port is one the node listens on. ``addresses``: node -> its addresses
    (host, network, containers), as `kops status` shows them."""
    own = {int(a.rsplit(":", 1)[1]) for a in addresses.get(node, {}).values()
           if ":" in a and a.rsplit(":", 1)[1].isdigit()}
    wrong = [a for a, port in asked if port not in own]
    if not wrong:
        return None
    inside = ",".join(a["network"] for n, a in sorted(addresses.items()) if a.get("network") and a.get("kafka"))
    host = addresses.get(node, {}).get("host")
    return (f"{', '.join(dict.fromkeys(wrong))} is not a listener inside {node}"
            + (f" (on the host this node is {host})" if host else "")
            + ": Kafka's tools there would wait for it. Inside a node, the cluster's brokers are "
            + f"$KAFKA_BOOTSTRAP_SERVERS{f' ({inside})' if inside else ''}, e.g. kops exec {node}{scope} -- "
            + "sh -c 'kafka-topics.sh --bootstrap-server \"$KAFKA_BOOTSTRAP_SERVERS\" --list'")


def _hint_listeners(t, prov, node: str, argv: list[str]) -> None:
    """Docker: a localhost address the node does not listen on gets a note first (the
    command still runs: it may be meant)."""
    asked = local_addresses(argv)
    if not asked or (t.spec is not None and t.spec.driver != "docker"):
        return
    try:
        observed = prov.observe(None)
    except Exception:   # noqa: BLE001 - only a hint: the command itself says what is wrong
        return
    addresses = {n: {**o.addresses, **({"kafka": "1"} if o.role in ("broker", "combined") else {})}
                 for n, o in observed.nodes.items()}
    if node not in addresses:
        return
    words = listener_hint(node, addresses, asked, t.scope)
    if words:
        progress(f"note: {words}")


def _run(node, argv, spec_source, name, tty) -> None:
    t = Target(spec_source, name)
    with t.provider() as prov:
        _hint_listeners(t, prov, node, argv)
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

    Inside a node, the brokers are $KAFKA_BOOTSTRAP_SERVERS (the cluster network's
    listener, e.g. kafka1:19092), not localhost:9092: that is the host's address of the
    cluster, another port on an --any-port cluster (kops says so when a command names it).
    On Docker the node is the container <cluster>-<node> (docker exec -it walk1-kafka1 bash).

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
