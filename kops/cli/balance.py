"""`kops balance`: the operator's toolbox, replicas and leaders evened over the brokers."""

from __future__ import annotations

import sys

import click

from kops.cli.cluster import Target
from kops.cli.common import Seconds, err_console, handle_errors, print_json, progress
from kops.cli.config import inventory_options


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _skew_words(sk: dict) -> str:
    return (f"replicas spread {sk['replicas']['max_min']} (max/mean {sk['replicas']['max_mean']}), "
            f"leaders spread {sk['leaders']['max_min']} (max/mean {sk['leaders']['max_mean']})")


@click.command("balance")
@inventory_options
@click.option("--name", help="Cluster name (its inventory: the one it was made from).")
@click.option("--execute", "do", is_flag=True, help="Carry the proposal out (throttled, awaited); without it "
                                                    "nothing changes.")
@click.option("--throttle", type=click.IntRange(1, 100000), metavar="MIB_S",
              help="Replication throttle per broker while partitions move (MiB/s; default 50).")
@click.option("--timeout", default=600, show_default=True, type=Seconds(1),
              help="Seconds the move may take (--execute).")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def balance(spec_source, name, do, throttle, timeout, output):
    """Show how evenly the brokers share replicas, leaders and bytes, and the fewest moves that even them out.

    Per broker: the partitions it leads, the replicas it holds, the bytes of its log dirs
    (Kafka's LogDirsCommand); the spread (most minus fewest, and most over the mean). The
    proposal: `topic-partition: [old] -> [new]` lines (a reorder of the same replicas
    moves no data: only the preferred leader changes), and the preferred-leader elections
    of partitions whose replicas stay. Without --execute nothing is changed (a dry run).
    With --execute the move runs like scaling's: throttled, awaited, preferred leaders
    elected, throttle removed; run it again after an interruption and it finishes.

    \b
    Exit codes: 0 balanced, a dry run, or done; 1 failed (or still unbalanced after
    --execute); 2 bad input; 3 cluster not found or stopped; 4 the move timed out.
    Example: kops balance --name dev --execute --throttle 20
    """
    from kops.kafka import reassign
    from kops.ops import balance as op

    t = Target(spec_source, name, allow_name=False)
    rate = (throttle * 1024 * 1024) if throttle else reassign.DEFAULT_RATE
    with t.provider() as prov:
        rep = op.run(t.spec, prov, execute=do, rate=rate, timeout=timeout, log=progress, scope=t.scope)
    for n in rep.notes:
        progress(f"note: {n}")
    if output == "json":
        print_json(rep.as_dict())
    else:
        _print(rep, t.scope, do)
    if do and rep.executed and rep.result and rep.result.get("left"):
        sys.exit(1)
    sys.exit(0)


def _print(rep, scope: str, do: bool) -> None:
    from kops.kafka import balance as kb

    p = rep.proposal
    click.echo(f"{'broker':>6}  {'leaders':>7}  {'replicas':>8}  {'bytes':>10}")
    for row in rep.rows("before"):
        click.echo(f"{row['broker']:>6}  {row['leaders']:>7}  {row['replicas']:>8}  {_size(row['bytes']):>10}")
    if rep.bytes_error:
        err_console.print(f"bytes not known: {rep.bytes_error}", markup=False)
    click.echo(f"skew: {_skew_words(kb.skew(p.before))}")
    if p.balanced:
        click.echo(f"cluster {rep.cluster} is balanced: nothing to move, every partition led by its preferred "
                   "replica")
        return
    click.echo(f"\nproposal: {len(p.moves)} reassignment(s) ({p.data_moves} copying data, "
               f"{len(p.moves) - p.data_moves} leader order only), {len(p.elections)} preferred-leader "
               "election(s):")
    for line in p.lines():
        click.echo(f"  {line}")
    click.echo(f"skew after: {_skew_words(kb.skew(p.after))}")
    if not rep.executed:
        click.echo(f"\ndry run: nothing was changed; `kops balance --execute{scope}` carries it out")
        return
    after = rep.after or {}
    click.echo("\nafter:")
    for b, c in after.items():
        click.echo(f"{b:>6}  {c['leaders']:>7}  {c['replicas']:>8}")
    click.echo(f"skew now: {_skew_words(kb.skew(after))}; done in {rep.seconds:.1f} s")
