"""The operator's toolbox: `kops fault kill|pause|slow|lose|partition NODE` and `kops fault heal`."""

from __future__ import annotations

import math
import re
import signal
import sys
import time

import click

from kops.cli.cluster import Target
from kops.cli.common import handle_errors, progress
from kops.cli.config import inventory_options
from kops.core.errors import InputError


class Duration(click.ParamType):
    """A duration: ``20``, ``20s``, ``1.5m``, ``1h`` (finite, above 0, at most a day)."""

    name = "duration"

    def convert(self, value, param, ctx):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            secs = float(value)
        else:
            m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", str(value))
            if not m:
                self.fail(f"{value!r} is not a duration (e.g. 20s, 2m)", param, ctx)
            secs = float(m.group(1)) * {None: 1, "ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        if not math.isfinite(secs) or not 0.1 <= secs <= 86400:
            self.fail(f"{value!r} is not a duration from 0.1 s to 24 h", param, ctx)
        return secs


@click.group("fault")
def fault_group():
    """Inject a fault into one node of a kops cluster (kill, pause, slow, lose, partition), and heal it.

    \b
    Only nodes kops made (found by its labels, or its record of the hosts). Each fault is
    noted in kops's state: `kops status` shows it on its node until `kops fault heal`.
    With --for DURATION the command waits, then heals (Ctrl-C heals at once).

    \b
    Example: kops fault pause kafka2 --name dev --for 20s
             kops fault slow kafka1 --delay 200ms --loss 5%
             kops fault partition kafka3 && kops status --watch; kops fault heal
    """


def _common(fn):
    fn = click.option("--for", "for_s", type=Duration(), metavar="DURATION",
                      help="Heal after DURATION (20s, 2m); the command waits, Ctrl-C heals at once.")(fn)
    fn = click.option("--name", help="Cluster name (instead of an inventory).")(fn)
    fn = inventory_options(fn)
    return click.argument("node")(fn)


def _run(spec_source, name, node, kind, for_s, **kw) -> None:
    from kops.ops import faults
    from kops.orchestration import lifecycle

    t = Target(spec_source, name)
    with t.provider() as prov:
        st = lifecycle.get_status(t.spec, prov, name=t.name, scope=t.scope)
        rec = faults.inject(st, prov, node, kind, duration=for_s, scope=t.scope, **kw)
        click.echo(f"{node}: {faults.describe(rec)}")
        sys.stdout.flush()
        if not for_s:
            progress(f"`kops fault heal {node}{t.scope}` heals it")
            return
        interrupted = False
        # a CI job's cancel (SIGTERM) heals too, and Ctrl-C even where SIGINT came in ignored (`cmd &`)
        previous = signal.signal(signal.SIGTERM, _as_interrupt), signal.signal(signal.SIGINT, _as_interrupt)
        try:
            while time.time() < rec["until"]:
                time.sleep(min(0.5, max(0.0, rec["until"] - time.time())))
        except KeyboardInterrupt:
            interrupted = True
            progress("interrupted: healing now")
        finally:
            signal.signal(signal.SIGTERM, previous[0])
            signal.signal(signal.SIGINT, previous[1])
            faults.heal(t.name, prov, node)
        click.echo(f"{node}: healed after {time.time() - rec['since']:.1f} s")
    if interrupted:
        sys.exit(130)


def _as_interrupt(signum, frame):
    raise KeyboardInterrupt


@fault_group.command("kill")
@_common
@handle_errors
def kill(node, spec_source, name, for_s):
    """SIGKILL the node's JVM: a crash (Docker: its container; SSH: its unit, which systemd restarts).

    Heal starts it again (Docker).
    """
    _run(spec_source, name, node, "kill", for_s)


@fault_group.command("pause")
@_common
@handle_errors
def pause(node, spec_source, name, for_s):
    """Freeze the node (Docker: docker pause; SSH: SIGSTOP of its JVM) until healed."""
    _run(spec_source, name, node, "pause", for_s)


@fault_group.command("slow")
@_common
@click.option("--delay", required=True, help="Added to every packet the node sends: 200ms, 0.5s (tc netem).")
@click.option("--loss", help="Also drop this share of its packets: 5% (nftables).")
@handle_errors
def slow(node, spec_source, name, for_s, delay, loss):
    """Delay the node's network (tc netem), optionally with packet loss."""
    from kops.ops import faults

    _run(spec_source, name, node, "slow", for_s, delay_ms=faults.parse_delay(delay),
         loss_pct=faults.parse_loss(loss) if loss is not None else None)


@fault_group.command("lose")
@_common
@click.option("--loss", required=True, help="The share of the node's packets dropped: 5% (nftables).")
@handle_errors
def lose(node, spec_source, name, for_s, loss):
    """Drop a share of the node's outgoing packets at random (nftables)."""
    from kops.ops import faults

    _run(spec_source, name, node, "lose", for_s, loss_pct=faults.parse_loss(loss))


@fault_group.command("partition")
@_common
@click.option("--clients", is_flag=True, help="Also cut the clients off (everything but the node's loopback; "
                                              "Docker: the published ports too).")
@handle_errors
def partition(node, spec_source, name, for_s, clients):
    """Cut the node off from the cluster's other nodes (nftables drops their traffic both ways).

    Clients still reach it (Docker: the published ports come from the engine's gateway)
    unless --clients.
    """
    _run(spec_source, name, node, "partition", for_s, clients=clients)


@fault_group.command("heal")
@click.argument("node", required=False)
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@handle_errors
def heal(node, spec_source, name):
    """Undo the fault(s) kops injected: of NODE, or of every node of the cluster."""
    from kops.ops import faults
    from kops.store import state

    t = Target(spec_source, name)
    notes = state.faults(t.name)
    if node is not None and node not in notes:
        if notes:
            raise InputError(f"{node} has no fault kops injected", hint="faulty: " + ", ".join(sorted(notes)))
        click.echo(f"cluster {t.name}: no fault to heal")
        return
    if not notes:
        click.echo(f"cluster {t.name}: no fault to heal")
        return
    with t.provider() as prov:
        if t.spec is not None and t.spec.driver == "ssh":
            from kops.orchestration import lifecycle

            lifecycle.get_status(t.spec, prov, name=t.name, scope=t.scope)   # SSH: where the nodes are
        for n in faults.heal(t.name, prov, node):
            click.echo(f"{n}: healed ({faults.describe(notes[n])})")
