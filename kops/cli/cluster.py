"""`kops up`, `status`, `down`, `ls`, `logs`, `check`, `restart`: the cluster lifecycle."""

from __future__ import annotations

import shlex
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click
from rich import box
from rich.table import Table

from kops.orchestration import lifecycle
from kops.core.errors import InputError, KopsError
from kops.model.spec import DEFAULT_PRESET, NAME_RE, _short
from kops.cli.common import Seconds, err_console, handle_errors, out_console, print_json, progress
from kops.cli.config import inventory_options, load_spec


class Target:
    """What a command acts on: a spec (-i/--preset, or the default preset) or a cluster name,
    and the words that repeat that choice in every hint kops prints."""

    def __init__(self, spec_source, name: str | None = None, *, allow_name: bool = True,
                 existing: bool = True):
        inventory, preset, self.accept_new = spec_source
        if name is not None and not NAME_RE.fullmatch(name):
            # it names folders and labels: never a path (../..) or anything but a cluster name
            raise InputError(f"--name {_short(name)} is not a cluster name",
                             hint="1-32 lowercase letters, digits and '-', starting with a letter (kops ls lists them)")
        if name and (inventory or preset):
            raise InputError("give --name, or -i FILE / --preset NAME, not both",
                             hint="--name finds a running cluster by name; -i/--preset load an inventory")
        if existing and not (name or inventory or preset):
            self._refuse_if_ambiguous()
        self.spec = None if (name and allow_name) else load_spec(spec_source)
        self.name = name if self.spec is None else self.spec.name
        self.scope = (f" -i {shlex.quote(inventory)}" if inventory else f" --preset {preset}" if preset
                      else f" --name {name}" if name else "")
        self.source = (f"file {Path(inventory).resolve()}" if inventory
                       else f"preset {preset or DEFAULT_PRESET}")

    def adjust(self, rename: str | None, any_port: bool, profile: str | None = None) -> None:
        """`up --name NAME|auto`, `--any-port` and `--profile`: the same inventory, another cluster."""
        import secrets

        from kops.model.spec import NAME_RE

        update = {}
        if rename:
            name = f"{self.spec.name[:24]}-{secrets.token_hex(3)}" if rename == "auto" else rename
            if not NAME_RE.fullmatch(name):
                raise InputError(f"--name {_short(rename)} is not DNS-safe",
                                 hint="1-32 lowercase letters, digits and '-', starting with a letter; or auto")
            update["name"] = name
        if any_port:
            if self.spec.driver != "docker":
                raise InputError("--any-port picks free ports on the Docker engine's host; over SSH give the ports")
            update["ports"] = "auto"
        if profile:
            update["profile"] = profile
        if update:
            self.spec = self.spec.model_copy(update=update)
            self.name = self.spec.name
            if rename:
                self.scope = f" --name {self.name}"
                self.source = f"{self.source} as {self.name}"

    @staticmethod
    def _refuse_if_ambiguous() -> None:
        """No target given: the default preset's cluster is meant. When it is not there but
        others are, or others are there too, guessing could act on the wrong one."""
        from kops.providers.docker import DockerProvider

        try:
            names = sorted(DockerProvider("", progress).clusters())
        except KopsError:
            return   # no engine: the command will say so itself
        if not names or names == [DEFAULT_PRESET]:
            return
        why = (f"{len(names)} kops clusters are on the Docker engine" if DEFAULT_PRESET in names else
               f"the default cluster ({DEFAULT_PRESET}) is not on the Docker engine, but other clusters are")
        raise InputError(f"which cluster? {why}: {', '.join(names)}",
                         hint="name it: " + "; ".join(f"--name {n}" for n in names)
                              + " (or -i FILE / --preset NAME)")

    @contextmanager
    def provider(self):
        """The provider of this target, its connections closed afterwards."""
        from kops.providers import for_spec

        prov = for_spec(self.spec, progress, name=self.name, accept_new_host_keys=self.accept_new)
        try:
            yield prov
        finally:
            prov.close()


def status_table(st, wide: bool = False) -> Table:
    """Fits 80-100 columns: the host address whole, health wrapped when it must be;
    ``wide`` adds the cluster-network and other-container addresses (Docker)."""
    t = Table(title=f"cluster {st.name} · {st.mode} · Kafka {st.version} · {st.state}",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    cols = ["NODE", "ROLE", "ID", "STATE", "HEALTH", "ADDRESS"]
    docker = st.driver == "docker"
    shown = wide and any(n.metrics is not None for n in st.nodes)
    if wide:
        cols += ["NETWORK"] + (["CONTAINERS"] if docker else []) + (["METRICS"] if shown else [])
    for col in cols:
        t.add_column(col, no_wrap=col != "HEALTH", overflow="fold")
    for n in st.nodes:
        row = [n.name, n.role, str(n.id), n.state, n.health or "-", n.addresses.get("host", "-")]
        if wide:
            row += [n.addresses.get("network", "-")] + ([n.addresses.get("containers", "-")] if docker else [])
            if shown:
                row.append(_metrics_words(n.metrics))
        t.add_row(*row)
    return t


def _metrics_words(figures: dict | None) -> str:
    """A node's Prometheus figures, short: ``urp 0 · ctl 1`` (or why there are none)."""
    if figures is None:
        return "-"
    if "error" in figures:
        return f"no answer ({figures['error']})"
    short = {"under_replicated": "urp", "offline": "offline", "active_controller": "ctl", "zk_connections": "conns",
             "connectors": "connectors"}
    return " · ".join(f"{short[k]} {v}" for k, v in figures.items() if k in short) or "up"


def _cluster_line(st) -> str:
    k = st.kafka or {}
    regs = len(k.get("brokers") or {})
    exp = k.get("brokers_expected", regs)
    ctl = k.get("controller")
    return (f"brokers registered {regs}/{exp} · controller {ctl if ctl is not None else '-'} · "
            f"under-replicated {len(k.get('under_replicated') or [])} · "
            f"offline {len(k.get('offline') or [])}")


def print_status(st, wide: bool = False) -> None:
    out_console.print(status_table(st, wide))
    out_console.print(_cluster_line(st))
    if st.schema_registry and st.schema_registry.get("url"):
        out_console.print(f"schema registry {st.schema_registry['url']} (Confluent API)", markup=False)
    for p in st.problems:
        out_console.print(f"  problem: {p}", markup=False)


def print_plan(res, what: str) -> None:
    for row in res.plan.as_dict()["nodes"]:
        click.echo(f"{row['node']:14} {row['action']:12} {row['reason']}")
    lines = res.plan.lines()
    if lines:
        click.echo(f"\nplan ({what}):")
        for line in lines:
            click.echo(f"  {line}")
    topics = getattr(res, "topics", None)
    if topics is not None:
        click.echo("\ntopics:" if topics.pending else "\ntopics: as in the inventory; nothing to change")
        for line in topics.lines():
            click.echo(f"  {line}")
    progress("dry run: nothing was changed")


@click.command("up")
@inventory_options
@click.option("--timeout", default=300, show_default=True, type=Seconds(1),
              help="Seconds to wait for the cluster to be ready.")
@click.option("--dry-run", is_flag=True, help="Print the plan (ordered actions and gates); change nothing.")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--reshape", is_flag=True, help="Let this inventory add or drop nodes of a same-named cluster "
                                              "made from another inventory.")
@click.option("--name", "rename", help="Name the cluster (instead of the inventory's name); 'auto' makes "
                                       "a fresh one (<name>-<6 hex>), for throwaway clusters.")
@click.option("--any-port", is_flag=True, help="Pick free host ports (kept for the cluster's life) instead of "
                                               "the inventory's: clusters side by side, CI jobs on one runner.")
@click.option("--profile", type=click.Choice(["standard", "fast"]), default=None,
              help="Override the inventory's profile: fast = JVMs that start quickly and stay small "
                   "(tests, CI); give it again on later `up`s of the cluster.")
@click.option("--throttle", type=click.IntRange(1, 100000), metavar="MIB_S",
              help="Replication throttle per broker while partitions move onto added brokers or off leaving "
                   "ones (MiB/s; default 50).")
@handle_errors
def up(spec_source, timeout, dry_run, output, reshape, rename, any_port, profile, throttle):
    """Bring a cluster up (default preset: zk-single-kafka-single) and wait until it is ready.

    Ready means observed: every broker registered, an active controller, no offline
    partitions and a produce/consume round trip. Re-running changes only what changed.
    """
    t = Target(spec_source, allow_name=False, existing=False)
    t.adjust(rename, any_port, profile)
    spec = t.spec
    progress(f"cluster {spec.name}: {spec.mode} mode, Kafka {spec.kafka.version}, driver {spec.driver}")
    with t.provider() as prov:
        res = lifecycle.up(spec, prov, timeout=timeout, dry_run=dry_run, log=progress, scope=t.scope,
                           source=t.source, reshape=reshape, throttle=throttle * 1024 * 1024 if throttle else None)
    if output == "json":
        print_json(res.as_dict())
        if res.status and res.status.exit_code:
            sys.exit(res.status.exit_code)
        return
    if dry_run:
        print_plan(res, f"kops up{t.scope}")
        return
    print_status(res.status)
    if res.status.exit_code != 0:
        out_console.print(f"\ncluster {spec.name} is {res.status.state} after `kops up` "
                          f"({res.seconds:.1f} s): see the problems above", markup=False)
        sys.exit(res.status.exit_code)
    verb = "ready" if res.changed else "already up to date"
    out_console.print(f"\ncluster {spec.name} {verb} in {res.seconds:.1f} s", markup=False)
    out_console.print(f"  bootstrap servers:  {res.status.bootstrap}", markup=False)
    out_console.print(f"  status:             kops status{t.scope}", markup=False)
    out_console.print(f"  stop (keeps data):  kops down{t.scope}", markup=False)
    out_console.print(f"  remove everything:  kops down{t.scope} --purge", markup=False)


@click.command("status")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--wide", is_flag=True, help="Also the cluster-network and other-container addresses "
                                           "(and, with metrics on, figures from each node's endpoint).")
@click.option("--wait", "wait_s", type=Seconds(0, lifecycle.MAX_WAIT), default=0, metavar="SECONDS",
              help="While the cluster is degraded, look again for up to SECONDS (a CI job right after "
                   "an operation: a KRaft election, a follower catching up); the exit code is the last look's.")
@handle_errors
def status(spec_source, name, output, wide, wait_s):
    """Health of a cluster. Exit 0 healthy, 1 degraded (a node crashed, a problem listed),
    3 not found or stopped by `kops down`.

    \b
    Example: kops status --preset kraft-split --output json
             kops status -i cluster.yaml --wait 60     # CI: healthy within a minute, or exit 1
    """
    t = Target(spec_source, name)
    with t.provider() as prov:
        st = lifecycle.get_status(t.spec, prov, name=t.name, scope=t.scope, wait=wait_s, log=progress)
    if output == "json":
        print_json(st.as_dict())
    elif st.state == "not-found":
        err_console.print(f"cluster {t.name} not found", markup=False)
    else:
        print_status(st, wide)
    sys.exit(st.exit_code)


@click.command("down")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("--purge", is_flag=True, help="Also remove containers, data volumes and the network "
                                            "(SSH: units, configs, data, logs).")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@handle_errors
def down(spec_source, name, purge, dry_run):
    """Stop a cluster gracefully (brokers first); data is kept unless --purge.

    Exit 0 also when the cluster does not exist (safe to repeat).
    """
    t = Target(spec_source, name)
    with t.provider() as prov:
        res = lifecycle.down(t.spec, prov, name=t.name, purge=purge, dry_run=dry_run, log=progress)
    if dry_run:
        print_plan(res, f"kops down{t.scope}" + (" --purge" if purge else ""))
        return
    stopped = [a.node for a in res.plan.of("stop")]
    if purge:
        what = ("units, configs, data, logs and the distribution removed from the hosts"
                if t.spec is not None and t.spec.driver == "ssh" else "containers, volumes and network removed")
        click.echo(f"cluster {t.name} purged ({len(res.plan.of('remove'))} nodes): {what}")
    elif stopped:
        click.echo(f"cluster {t.name} stopped: {' '.join(stopped)}; data kept")
        progress(f"`kops up{t.scope}` starts it again")
    else:
        click.echo(f"cluster {t.name}: nothing running")


@click.command("ls")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def ls(output):
    """List kops clusters on the Docker engine, with their bootstrap addresses."""
    from kops.providers.docker import DockerProvider
    from kops.bundle.render import LABEL

    rows = []
    prov = DockerProvider("", progress)
    for name, cs in sorted(prov.clusters().items()):
        cs = [c for c in cs if f"{LABEL}.node" in c.labels and not c.name.endswith("-previous")]
        running = sum(1 for c in cs if c.status == "running")
        brokers = sorted((c for c in cs if c.labels.get(f"{LABEL}.external")),
                         key=lambda c: int(c.labels.get(f"{LABEL}.node-id", "0")))
        rows.append({"cluster": name, "nodes": len(cs), "running": running,
                     "mode": cs[0].labels.get(f"{LABEL}.mode") if cs else None,
                     "kafka_version": cs[0].labels.get(f"{LABEL}.kafka-version") if cs else None,
                     "bootstrap_servers": ",".join(c.labels[f"{LABEL}.external"] for c in brokers)})
    if output == "json":
        print_json(rows)
        return
    if not rows:
        click.echo("no kops clusters on the Docker engine (kops up starts one)")
        return
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("CLUSTER", "MODE", "KAFKA", "RUNNING", "BOOTSTRAP SERVERS"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["cluster"], r["mode"] or "?", r["kafka_version"] or "?", f"{r['running']}/{r['nodes']}",
                  r["bootstrap_servers"] or "-")
    out_console.print(t)


@click.command("logs")
@click.argument("node", required=False)
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("--tail", default=100, show_default=True, type=click.IntRange(min=1, max=100000),
              help="Lines from the end (of each node).")
@click.option("--since", help="Only lines newer than this: 10m, 2h, 1d, or seconds.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines until Ctrl-C.")
@handle_errors
def logs(node, spec_source, name, tail, since, follow):
    """Print the last log lines of NODE (zoo1, kafka1, controller1, ...), or of every node,
    each line prefixed with its node.

    \b
    Example: kops logs --preset kraft-split --since 5m -f
    """
    t = Target(spec_source, name)
    secs = _duration(since) if since else None
    with t.provider() as prov:
        for line in lifecycle.logs(t.spec, prov, node, name=t.name, lines=tail, since=secs, follow=follow):
            click.echo(line)


def _duration(text: str) -> float:
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd]?)", text.strip())
    if not m:
        raise InputError(f"--since {text!r} is not a duration", hint="e.g. 30s, 10m, 2h, 1d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


@click.command("check")
@inventory_options
@click.option("--name", help="Cluster name (Docker driver, instead of an inventory).")
@click.option("--messages", default=100, show_default=True, type=click.IntRange(min=1, max=1_000_000))
@click.option("--timeout", default=60, show_default=True, type=Seconds(1))
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@handle_errors
def check(spec_source, name, messages, timeout, output):
    """Smoke test: produce MESSAGES to a new replicated topic with acks=all, read them all back.

    Exit 0 pass, 1 fail, 3 cluster not found or stopped. Made for CI: `kops check && run-tests`.
    """
    t = Target(spec_source, name)
    with t.provider() as prov:
        st = lifecycle.get_status(t.spec, prov, name=t.name, scope=t.scope)
    if st.state in ("not-found", "stopped"):
        err_console.print(f"cluster {t.name} is {st.state}", markup=False)
        sys.exit(st.exit_code)
    result = lifecycle.check(st, messages=messages, timeout=timeout,
                             client=lifecycle.client_for(st.name, st.bootstrap, st.security))
    if output == "json":
        print_json(result)
    elif result["passed"]:
        click.echo(f"PASS {t.name}: {messages} messages produced (acks=all, replication "
                   f"{result['replication']}) and consumed in {result['total_seconds']:.2f} s via {st.bootstrap}")
    else:
        click.echo(f"FAIL {t.name}: {result['error']}")
        for p in st.problems:
            click.echo(f"  problem: {p}")
    sys.exit(0 if result["passed"] else 1)


@click.command("restart")
@inventory_options
@click.option("--node", "nodes", multiple=True, help="Only these nodes (repeatable; ZooKeeper nodes too).")
@click.option("--timeout", default=600, show_default=True, type=Seconds(1))
@click.option("--force", is_flag=True, help="Roll even if the cluster is not healthy now.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@handle_errors
def restart(spec_source, nodes, timeout, force, dry_run):
    """Rolling restart of the Kafka nodes, one at a time, active controller last.

    Before each broker stops, no partition may drop below min.insync.replicas; after it
    is back, the cluster must be healthy (registered, ISRs whole) before the next one.
    """
    t = Target(spec_source, allow_name=False)
    with t.provider() as prov:
        res = lifecycle.restart(t.spec, prov, nodes=list(nodes) or None, timeout=timeout, force=force,
                                dry_run=dry_run, log=progress, scope=t.scope)
    if dry_run:
        print_plan(res, f"kops restart{t.scope}")
        return
    for a in res.plan.of("restart"):
        click.echo(f"{a.node}\trestarted")


@click.command("env")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("--shell", type=click.Choice(["bash", "zsh", "fish"]), default="bash", show_default=True)
@click.option("--output", type=click.Choice(["text", "json"]), default="text")
@click.option("--write", "write_dir", metavar="DIR", help="Also write client.properties (Java), librdkafka.conf "
              "and client.json (librdkafka), with the security settings and ca.pem of a secure cluster.")
@handle_errors
def env(spec_source, name, shell, output, write_dir):
    """What a client or a CI job needs for a cluster: KAFKA_BOOTSTRAP_SERVERS (and, for a
    ZooKeeper-mode cluster, ZOOKEEPER_CONNECT), to evaluate in a shell.

    \b
    Example: eval "$(kops env --name ci-1a2b3c --write .kafka)" && pytest
    """
    t = Target(spec_source, name)
    with t.provider() as prov:
        st = lifecycle.get_status(t.spec, prov, name=t.name, scope=t.scope)
    if st.state == "not-found":
        err_console.print(f"cluster {t.name} not found", markup=False)
        sys.exit(st.exit_code)
    values = {"KAFKA_BOOTSTRAP_SERVERS": st.bootstrap, "KOPS_CLUSTER": st.name}
    zks = [n.addresses.get("host") for n in st.nodes if n.role == "zookeeper" and n.addresses.get("host")]
    if zks:
        values["ZOOKEEPER_CONNECT"] = ",".join(zks)
    if st.security:
        values["KAFKA_SECURITY"] = st.security
    rest = [f"http://{n.addresses['host']}" for n in st.nodes if n.role == "connect" and n.addresses.get("host")]
    if rest:
        values["KOPS_CONNECT_URLS"] = ",".join(rest)
    if st.schema_registry and st.schema_registry.get("url"):
        values["SCHEMA_REGISTRY_URL"] = st.schema_registry["url"]   # the name Confluent's tools and docs use
    scrape = [f"http://{n.addresses['metrics']}/metrics" for n in st.nodes if n.addresses.get("metrics")]
    if scrape:
        values["KOPS_METRICS_URLS"] = ",".join(scrape)
    if write_dir:
        from kops.kafka import data

        client = lifecycle.client_for(st.name, st.bootstrap, st.security)
        files = data.write_client_files(write_dir, st.bootstrap, dict(client.settings))
        values["KOPS_CLIENT_PROPERTIES"] = str(files["client.properties"])
        values["KOPS_LIBRDKAFKA_CONF"] = str(files["librdkafka.conf"])
        progress(f"wrote {', '.join(files)} to {write_dir}"
                 + (" (0600: they hold the password)" if "sasl.password" in dict(client.settings) else ""))
    if output == "json":
        print_json(values)
        return
    for k, v in values.items():
        click.echo(f"set -gx {k} {shlex.quote(v)}" if shell == "fish" else f"export {k}={shlex.quote(v)}")
    if st.security:
        progress(f"a secure cluster: `kops client-config{t.scope} -o DIR` writes the client settings")
