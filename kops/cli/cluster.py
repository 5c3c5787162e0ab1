"""`kops up`, `status`, `down`, `ls`, `logs`: the cluster lifecycle."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from ..errors import InputError
from .common import err_console, handle_errors, out_console, print_json, progress
from .config import inventory_options, load_spec


def _target(spec_source, name):
    """Spec from -i/--preset, or just a cluster name (--name) for status/down/logs."""
    inventory, preset = spec_source
    if name and (inventory or preset):
        raise InputError("give --name, or -i FILE / --preset NAME, not both")
    if name:
        return None, name
    spec = load_spec(spec_source)
    return spec, spec.name


def _driver(spec):
    from ..drivers import docker_for_name, for_spec

    return for_spec(spec, progress) if spec else docker_for_name(progress)


def status_table(st) -> Table:
    t = Table(title=f"cluster {st.name} · {st.mode} · Kafka {st.version} · {st.state}",
              title_justify="left", show_lines=False)
    for col in ("NODE", "ROLE", "ID", "STATE", "HEALTH", "HOST ADDRESS", "NETWORK", "CONTAINERS"):
        t.add_column(col, no_wrap=True)
    for n in st.nodes:
        t.add_row(n.name, n.role, str(n.id), n.state, n.health or "-", n.addresses.get("host", "-"),
                  n.addresses.get("network", "-"), n.addresses.get("containers", "-"))
    return t


def _cluster_line(st) -> str:
    k = st.kafka or {}
    regs = len(k.get("brokers") or {})
    exp = k.get("brokers_expected", regs)
    return (f"brokers registered {regs}/{exp} · controller {k.get('controller') if k.get('controller') is not None else '-'} · "
            f"under-replicated {len(k.get('under_replicated') or [])} · "
            f"offline {len(k.get('offline') or [])}")


def print_status(st) -> None:
    out_console.print(status_table(st))
    out_console.print(_cluster_line(st))
    for p in st.problems:
        out_console.print(f"  problem: {p}", markup=False)


@click.command("up")
@inventory_options
@click.option("--timeout", default=300, show_default=True, type=click.FloatRange(min=1),
              help="Seconds to wait for the cluster to be ready.")
@click.option("--dry-run", is_flag=True, help="Print what would be created or changed; change nothing.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def up(spec_source, timeout, dry_run, output):
    """Bring a cluster up (default preset: zk-single-kafka-single) and wait until it is ready.

    Ready means observed: every broker registered, an active controller, no offline
    partitions and a produce/consume round trip. Re-running changes only what changed.
    """
    spec = load_spec(spec_source)
    drv = _driver(spec)
    progress(f"cluster {spec.name}: {spec.mode} mode, Kafka {spec.kafka.version}, driver {spec.driver}")
    res = drv.up(spec, timeout=timeout, dry_run=dry_run)
    if output == "json":
        print_json(res.as_dict())
        return
    if dry_run:
        for a in res.actions:
            click.echo(f"{a.node:14} {a.action:10} {a.reason}")
        progress("dry run: nothing was changed")
        return
    if res.status:
        print_status(res.status)
        verb = "ready" if res.changed else "already up to date"
        out_console.print(f"\ncluster {spec.name} {verb} in {res.seconds:.1f} s", markup=False)
        src = _source_flag(spec_source)
        out_console.print(f"  bootstrap servers:  {res.status.bootstrap}", markup=False)
        out_console.print(f"  status:             kops status{src}", markup=False)
        out_console.print(f"  stop (keeps data):  kops down{src}", markup=False)
        out_console.print(f"  remove everything:  kops down{src} --purge", markup=False)
        if res.status.exit_code != 0:
            sys.exit(res.status.exit_code)


def _source_flag(spec_source) -> str:
    inventory, preset = spec_source
    return f" -i {inventory}" if inventory else (f" --preset {preset}" if preset else "")


@click.command("status")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def status(spec_source, name, output):
    """Health of a cluster. Exit 0 healthy, 1 degraded, 3 not found or stopped."""
    spec, name = _target(spec_source, name)
    st = _driver(spec).status(spec, name)
    if output == "json":
        print_json(st.as_dict())
    elif st.state == "not-found":
        err_console.print(f"cluster {name} not found", markup=False)
    else:
        print_status(st)
    sys.exit(st.exit_code)


@click.command("down")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("--purge", is_flag=True, help="Also remove containers, data volumes and the network.")
@handle_errors
def down(spec_source, name, purge):
    """Stop a cluster gracefully (brokers first); data is kept unless --purge.

    Exit 0 also when the cluster does not exist (safe to repeat).
    """
    spec, name = _target(spec_source, name)
    drv = _driver(spec)
    stopped = drv.down(spec, name, purge=purge)
    if purge:
        what = ("units, configs, data, logs and the distribution removed from the hosts"
                if spec is not None and spec.driver == "ssh" else "containers, volumes and network removed")
        progress(f"cluster {name} purged: {what}")
    elif stopped:
        progress(f"cluster {name} stopped ({len(stopped)} nodes); data kept. `kops up` brings it back")
    else:
        progress(f"cluster {name}: nothing running")
    if stopped:
        click.echo(" ".join(stopped))


@click.command("ls")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def ls(output):
    """List kops clusters on the Docker engine."""
    from ..drivers.docker import DockerDriver
    from ..render import LABEL

    rows = []
    for name, cs in sorted(DockerDriver(progress).clusters().items()):
        running = sum(1 for c in cs if c.status == "running")
        rows.append({"cluster": name, "nodes": len(cs), "running": running,
                     "mode": cs[0].labels.get(f"{LABEL}.mode"),
                     "kafka_version": cs[0].labels.get(f"{LABEL}.kafka-version")})
    if output == "json":
        print_json(rows)
        return
    t = Table()
    for col in ("CLUSTER", "MODE", "KAFKA", "NODES", "RUNNING"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["cluster"], r["mode"] or "?", r["kafka_version"] or "?", str(r["nodes"]), str(r["running"]))
    out_console.print(t)


@click.command("logs")
@click.argument("node")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("--tail", default=100, show_default=True, help="Lines from the end.")
@handle_errors
def logs(node, spec_source, name, tail):
    """Print the last log lines of NODE (zoo1, kafka1, controller1, ...)."""
    spec, name = _target(spec_source, name)
    click.echo(_driver(spec).logs(spec, name, node, tail), nl=False)


@click.command("check")
@inventory_options
@click.option("--name", help="Cluster name (Docker driver, instead of an inventory).")
@click.option("--messages", default=100, show_default=True, type=click.IntRange(min=1))
@click.option("--timeout", default=60, show_default=True, type=click.FloatRange(min=1))
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def check(spec_source, name, messages, timeout, output):
    """Smoke test: produce MESSAGES to a new replicated topic with acks=all, read them all back.

    Exit 0 pass, 1 fail, 3 cluster not found or stopped. Made for CI: `kops check && run-tests`.
    """
    from .. import health
    from ..errors import KopsError

    spec, name = _target(spec_source, name)
    st = _driver(spec).status(spec, name)
    if st.state in ("not-found", "stopped"):
        err_console.print(f"cluster {name} is {st.state}", markup=False)
        sys.exit(st.exit_code)
    brokers = st.kafka.get("brokers_expected") or len(st.kafka.get("brokers") or {}) or 1
    result = {"cluster": name, "state": st.state, "bootstrap_servers": st.bootstrap, "passed": False}
    try:
        result.update(health.smoke(st.bootstrap, min(3, brokers), messages, timeout))
        result["passed"] = True
    except KopsError as exc:
        result["error"] = exc.message
    except Exception as exc:  # noqa: BLE001 - a client error is a failed check, said plainly
        result["error"] = f"{exc.__class__.__name__}: {exc}"
    if output == "json":
        print_json(result)
    elif result["passed"]:
        click.echo(f"PASS {name}: {messages} messages produced (acks=all, replication "
                   f"{result['replication']}) and consumed in {result['total_seconds']:.2f} s via {st.bootstrap}")
    else:
        click.echo(f"FAIL {name}: {result['error']}")
        for p in st.problems:
            click.echo(f"  problem: {p}")
    sys.exit(0 if result["passed"] else 1)


@click.command("restart")
@inventory_options
@click.option("--node", "nodes", multiple=True, help="Only these Kafka nodes (repeatable).")
@click.option("--timeout", default=600, show_default=True, type=click.FloatRange(min=1))
@click.option("--force", is_flag=True, help="Roll even if the cluster is not healthy now.")
@handle_errors
def restart(spec_source, nodes, timeout, force):
    """Rolling restart of the Kafka nodes, one at a time, active controller last.

    Before each broker stops, no partition may drop below min.insync.replicas; after it
    is back, the cluster must be healthy (registered, ISRs whole) before the next one.
    """
    from ..rolling import rolling_restart

    spec = load_spec(spec_source)
    done = rolling_restart(_driver(spec), spec, nodes=list(nodes) or None, timeout=timeout,
                           log=progress, force=force)
    for d in done:
        click.echo(f"{d['node']}\trestarted\t{d['seconds']} s")

