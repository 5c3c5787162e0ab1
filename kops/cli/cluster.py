"""`kops up`, `status`, `down`, `ls`, `logs`, `check`, `restart`: the cluster lifecycle."""

from __future__ import annotations

import shlex
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich import box
from rich.table import Table

from kops.orchestration import lifecycle
from kops.core.errors import EXIT_CHANGES, InputError, KopsError, NotFoundError
from kops.model.spec import DEFAULT_PRESET, NAME_RE, _short
from kops.cli.common import Seconds, err_console, handle_errors, out_console, print_json, progress
from kops.cli.config import inventory_options, load_spec


ENV_CLUSTER = "KOPS_CLUSTER"   # the default of --name (`kops env` exports it)


def env_cluster() -> str | None:
    """$KOPS_CLUSTER, checked like --name; None when unset or empty."""
    import os

    value = os.environ.get(ENV_CLUSTER, "").strip()
    if not value:
        return None
    if not NAME_RE.fullmatch(value):
        raise InputError(f"{ENV_CLUSTER}={_short(value)} is not a cluster name",
                         hint=f"unset {ENV_CLUSTER}, or set it to a cluster kops ls lists")
    return value


def choose_default(names: list[str]) -> str | None:
    """No target given: the cluster meant, from the kops clusters on the engine. None: the
    default preset's (there is no other, or none at all). The only cluster there is meant;
    among several, guessing could act on the wrong one: InputError naming them."""
    names = sorted(names)
    if not names or names == [DEFAULT_PRESET]:
        return None
    if len(names) == 1:
        return names[0]
    why = (f"{len(names)} kops clusters are on the Docker engine" if DEFAULT_PRESET in names else
           f"the default cluster ({DEFAULT_PRESET}) is not on the Docker engine, but other clusters are")
    raise InputError(f"which cluster? {why}: {', '.join(names)}",
                     hint="name it: " + "; ".join(f"--name {n}" for n in names)
                          + f" (or -i FILE / --preset NAME, or export {ENV_CLUSTER}=NAME)")


def port_moves(kept: dict[str, dict[str, int]] | None, fixed: dict[str, dict[str, int]]) -> list[str]:
    """``node kind: kept -> fixed`` for every host port that `--move-ports` would move."""
    out = []
    for node, kinds in sorted((kept or {}).items()):
        for kind, port in sorted(kinds.items()):
            new = fixed.get(node, {}).get(kind)
            if new is not None and new != port:
                out.append(f"{node} {kind}: {port} -> {new}")
    return out


def kept_ports_words(kept: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{node} {port}" for node, kinds in sorted(kept.items())
                     for kind, port in sorted(kinds.items()) if kind in ("external", "client", "rest"))


class Target:
    """What a command acts on: a spec (-i/--preset, or the default preset) or a cluster name,
    and the words that repeat that choice in every hint kops prints.

    The name is --name, else $KOPS_CLUSTER, else (a command on an existing cluster) the only
    kops cluster on the engine. A command that needs an inventory (``allow_name=False``:
    up, restart, upgrade, ...) given only a name loads the inventory that cluster was made
    from (kept by kops), renamed. What sticks to a cluster (the host ports `ports: auto` /
    --any-port picked, the profile `up --profile` gave it) is applied to the spec."""

    def __init__(self, spec_source, name: str | None = None, *, allow_name: bool = True,
                 existing: bool = True):
        inventory, preset, self.accept_new = spec_source
        self._given = (inventory, preset)
        self.notes: list[str] = []
        self.moves: list[str] = []   # --move-ports: the host ports that move
        self.source: str | None = None
        if name is not None and not NAME_RE.fullmatch(name):
            # it names folders and labels: never a path (../..) or anything but a cluster name
            raise InputError(f"--name {_short(name)} is not a cluster name",
                             hint="1-32 lowercase letters, digits and '-', starting with a letter (kops ls lists them)")
        explicit = bool(inventory or preset)
        if name and explicit and allow_name:
            raise InputError("give --name, or -i FILE / --preset NAME, not both",
                             hint="--name finds a running cluster by name; -i/--preset load an inventory")
        implied = False
        if name is None and not explicit:
            name = env_cluster()
        if existing and not (name or explicit):
            name = self._default_name()
            implied = name is not None
        if name and allow_name:
            self.spec = None
        elif name:
            self.spec = self._spec_as(name, implied)
        else:
            self.spec = load_spec(spec_source)
        self.name = name if self.spec is None else self.spec.name
        if self.spec is not None and not name:
            self.source = (f"file {Path(inventory).resolve()}" if inventory
                           else f"preset {preset or DEFAULT_PRESET}")
        self.scope = (f" --name {name}" if name else f" -i {shlex.quote(inventory)}" if inventory
                      else f" --preset {preset}" if preset else "")
        self._raw = self.spec   # the spec before what sticks to the cluster is applied
        self._said: set[str] = set()
        if self.spec is not None:
            self._keep()
            if existing:
                self.say(kept=False)

    def say(self, kept: bool = True) -> None:
        """The notes on what the target took from what kops keeps (once each); ``kept``:
        also those on the kept ports and profile (the commands that render the cluster)."""
        for note in self.notes:
            if note not in self._said and (kept or " keeps " not in note):
                self._said.add(note)
                progress(f"note: {note}")

    def _spec_as(self, name: str, implied: bool = False):
        """The spec of cluster ``name`` for a command that needs one: -i/--preset renamed,
        else the inventory the cluster was made from (kept), else the default preset's."""
        from kops.model import inventory as invlib
        from kops.store import state

        inventory, preset = self._given
        if not (inventory or preset):
            kept = state.kept_source(name)
            if kept is not None:
                inventory, preset = kept
                if inventory and not Path(inventory).is_file():
                    raise InputError(f"cluster {name} was made from {inventory}, which is not there any more",
                                     hint=f"give its inventory: -i FILE --name {name} (or --preset NAME)")
                self.notes.append(f"cluster {name}: from the inventory it was made from "
                                  f"({'file ' + inventory if inventory else 'preset ' + preset})")
            elif implied:
                raise InputError(f"cluster {name} is the only kops cluster on the Docker engine, but this "
                                 "machine keeps no inventory of it",
                                 hint=f"give the inventory it was made from: -i FILE (or --name {name} "
                                      f"for the default preset's shape)")
        spec = invlib.load(inventory, preset)
        self.source = (f"file {Path(inventory).resolve()}" if inventory else f"preset {preset or DEFAULT_PRESET}")
        if spec.name != name:
            spec = spec.model_copy(update={"name": name})
            self.source += f" as {name}"
        return spec

    def _keep(self, profile: str | None = None, move_ports: bool = False) -> None:
        """What sticks to the cluster, onto the spec: its profile (given by `up --profile`,
        or the inventory's) and its kept host ports (moved only with ``move_ports``)."""
        from kops.store import state

        spec, name = self._raw, self._raw.name
        self.notes = [n for n in self.notes if " keeps " not in n]
        update = {}
        kept_profile = state.profile(name)
        if profile:
            update["profile"] = profile
        elif kept_profile and kept_profile != spec.profile:
            update["profile"] = kept_profile
            self.notes.append(f"cluster {name} keeps the {kept_profile} profile `kops up --profile {kept_profile}` "
                              f"gave it (--profile {spec.profile} changes it)")
        kept = state.ports(name)
        self.moves = []
        if kept and spec.ports != "auto":
            if move_ports:
                from kops.model import topology

                fixed = topology.build(spec, "AAAAAAAAAAAAAAAAAAAAAA")
                self.moves = port_moves(kept, {n.name: dict(n.ports) for n in fixed.nodes}) or \
                    ["(none: the kept ports are the inventory's)"]
            else:
                update["ports"] = "auto"
                self.notes.append(f"cluster {name} keeps its host ports ({kept_ports_words(kept)}); "
                                  f"the inventory's fixed ports need --move-ports")
        self.spec = spec.model_copy(update=update) if update else spec

    def adjust(self, rename: str | None, any_port: bool, profile: str | None = None,
               move_ports: bool = False) -> None:
        """`up --name NAME|auto`, `--any-port`, `--profile`, `--move-ports`: the same inventory,
        another cluster, or the same cluster with its kept settings (the notes say which)."""
        import secrets

        if rename == "auto":
            name = f"{self._raw.name[:24]}-{secrets.token_hex(3)}"
            self._raw = self._raw.model_copy(update={"name": name})
            self.source = f"{self.source} as {name}"
            self.name, self.scope = name, f" --name {name}"
        elif rename:
            if not NAME_RE.fullmatch(rename):
                raise InputError(f"--name {_short(rename)} is not DNS-safe",
                                 hint="1-32 lowercase letters, digits and '-', starting with a letter; or auto")
            self.notes = []
            self._raw = self._spec_as(rename)
            self.name, self.scope = rename, f" --name {rename}"
        if any_port:
            if self._raw.driver != "docker":
                raise InputError("--any-port picks free ports on the Docker engine's host; over SSH give the ports")
            if move_ports:
                raise InputError("--move-ports moves a cluster's kept host ports to the inventory's fixed ones; "
                                 "--any-port keeps them",
                                 hint="give one of them")
            self._raw = self._raw.model_copy(update={"ports": "auto"})
        self._keep(profile, move_ports)
        self.say()

    @staticmethod
    def _default_name() -> str | None:
        """No target given: the default preset's cluster, or the only cluster on the engine;
        InputError when several are there (see choose_default)."""
        from kops.providers.docker import DockerProvider

        try:
            names = sorted(DockerProvider("", progress).clusters())
        except KopsError:
            return None   # no engine: the command will say so itself
        name = choose_default(names)
        if name:
            progress(f"cluster {name} (the only kops cluster on the Docker engine)")
        return name

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
    ``wide`` adds (Docker) each node's container name (what `docker exec` takes) and the
    cluster-network and other-container addresses."""
    t = Table(title=f"cluster {st.name} · {st.mode} · Kafka {st.version} · {st.state}",
              title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    cols = ["NODE", "ROLE", "ID", "STATE", "HEALTH", "ADDRESS"]
    docker = st.driver == "docker"
    shown = wide and any(n.metrics is not None for n in st.nodes)
    if wide:
        cols += (["CONTAINER"] if docker else []) + ["NETWORK"] + (["CONTAINERS"] if docker else []) \
            + (["METRICS"] if shown else [])
    for col in cols:
        t.add_column(col, no_wrap=col != "HEALTH", overflow="fold")
    for n in st.nodes:
        row = [n.name, n.role, str(n.id), n.state, n.health or "-", n.addresses.get("host", "-")]
        if wide:
            if docker:
                row.append(n.where or container_name(st.name, n.name))
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
    access = getattr(st, "access", None)
    if access:
        acl = ("authorizer off" if not access["authorizer"] else
               f"ACLs {access['acls'] if access['acls'] is not None else '(not readable)'}")
        out_console.print(f"users {', '.join(access['users']) or '-'} · {acl}", markup=False)
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
    granted = getattr(res, "security", None)   # the inventory's ACLs and quotas (kops.kafka.acls)
    for title, part in (("acls", granted and granted.acls), ("quotas", granted and granted.quotas)):
        if part is not None:
            click.echo(f"\n{title}:" if part.pending else f"\n{title}: as in the inventory; nothing to change")
            for line in part.lines():
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
@click.option("--move-ports", is_flag=True, help="Move a cluster's kept host ports (from --any-port or ports: "
                                                 "auto) to the inventory's fixed ones; --dry-run shows which.")
@click.option("--profile", type=click.Choice(["standard", "fast"]), default=None,
              help="Override the inventory's profile: fast = JVMs that start quickly and stay small "
                   "(tests, CI); kept for the cluster's later commands.")
@click.option("--throttle", type=click.IntRange(1, 100000), metavar="MIB_S",
              help="Replication throttle per broker while partitions move onto added brokers or off leaving "
                   "ones (MiB/s; default 50).")
@click.option("--refresh", is_flag=True,
              help="Read each node's files back and compare them with the inventory's, instead of trusting "
                   "what kops noted when it placed them: a file edited on a node behind kops's back is found "
                   "(and, without --dry-run, put back).")
@click.option("--exit-code", "exit_code", is_flag=True,
              help="With --dry-run: exit 0 when nothing would change, 5 when something would (drift: the "
                   "plan is printed). Implies --refresh.")
@handle_errors
def up(spec_source, timeout, dry_run, output, reshape, rename, any_port, move_ports, profile, throttle,
       refresh, exit_code):
    """Bring a cluster up (default preset: zk-single-kafka-single) and wait until it is ready.

    Ready means observed: every broker registered, an active controller, no offline
    partitions and a produce/consume round trip. Re-running changes only what changed.
    A cluster keeps its host ports and profile: `kops up --name NAME` after `kops down`
    brings it back as it was (from the inventory it was made from).
    """
    from kops.store import state

    if exit_code and not dry_run:
        raise InputError("--exit-code goes with --dry-run (it reports whether `kops up` would change anything)",
                         hint="kops up --dry-run --exit-code")
    t = Target(spec_source, allow_name=False, existing=False)
    t.adjust(rename, any_port, profile, move_ports)
    spec = t.spec
    progress(f"cluster {spec.name}: {spec.mode} mode, Kafka {spec.kafka.version}, driver {spec.driver}")
    if move_ports and t.moves:
        progress(f"host ports moving (--move-ports): {'; '.join(t.moves)}")

    def remember() -> None:   # what sticks to the cluster, once `up` changed it
        if not dry_run:
            state.note_profile(spec.name, profile)
            if move_ports and spec.ports != "auto":   # moved to the inventory's fixed ports
                state.forget_ports(spec.name)

    with t.provider() as prov:
        try:
            res = lifecycle.up(spec, prov, timeout=timeout, dry_run=dry_run, log=progress, scope=t.scope,
                               source=t.source, reshape=reshape,
                               throttle=throttle * 1024 * 1024 if throttle else None, deep=refresh or exit_code)
        except InputError:
            raise   # refused before anything changed
        except KopsError:
            remember()
            raise
    remember()
    drift = EXIT_CHANGES if exit_code and res.changed else 0
    if output == "json":
        print_json({**res.as_dict(), **({"host_ports_moving": t.moves} if move_ports else {})})
        if res.status and res.status.exit_code:
            sys.exit(res.status.exit_code)
        sys.exit(drift)
    if dry_run:
        if move_ports and t.moves:
            click.echo("host ports (--move-ports):")
            for line in t.moves:
                click.echo(f"  {line}")
            click.echo("")
        print_plan(res, f"kops up{t.scope}" + (" --move-ports" if move_ports else ""))
        if exit_code:
            progress(f"drift: the cluster differs from its inventory (exit {EXIT_CHANGES}); `kops up{t.scope} "
                     "--refresh` applies the plan above" if drift else "no drift: the cluster matches its inventory")
        sys.exit(drift)
    print_status(res.status)
    if res.status.exit_code != 0:
        out_console.print(f"\ncluster {spec.name} is {res.status.state} after `kops up` "
                          f"({res.seconds:.1f} s): see the problems above", markup=False)
        progress(f"`kops logs{t.scope}` shows the nodes' log lines; `kops status{t.scope}` looks again")
        sys.exit(res.status.exit_code)
    verb = "ready" if res.changed else "already up to date"
    out_console.print(f"\ncluster {spec.name} {verb} in {res.seconds:.1f} s", markup=False)
    out_console.print(f"  bootstrap servers:  {res.status.bootstrap}", markup=False)
    out_console.print(f"  status:             kops status{t.scope}", markup=False)
    node = next((n.name for n in res.status.nodes if n.role in ("broker", "combined")), None)
    if node:
        out_console.print(f"  shell on a node:    kops shell {node}{t.scope}"
                          + (f"   (or: docker exec -it {container_name(spec.name, node)} bash)"
                             if spec.driver == "docker" else ""), markup=False)
    out_console.print(f"  stop (keeps data):  kops down{t.scope}", markup=False)
    out_console.print(f"  remove everything:  kops down{t.scope} --purge", markup=False)


def container_name(cluster: str, node: str) -> str:
    """The Docker container of a node: ``<cluster>-<node>`` (what `docker exec` takes)."""
    return f"{cluster}-{node}"


@click.command("status")
@inventory_options
@click.option("--name", help="Cluster name (instead of an inventory).")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@click.option("--wide", is_flag=True, help="Also each node's container (Docker: <cluster>-<node>, for "
                                           "`docker exec -it`), the cluster-network and other-container addresses "
                                           "(and, with metrics on, figures from each node's endpoint).")
@click.option("--wait", "wait_s", type=Seconds(0, lifecycle.MAX_WAIT), default=0, metavar="SECONDS",
              help="While the cluster is degraded, look again for up to SECONDS (a CI job right after "
                   "an operation: a KRaft election, a follower catching up); the exit code is the last look's.")
@click.option("--watch", is_flag=True, help="Look again every --interval seconds: a table redrawn in place with "
                                            "what changed (no terminal: one timestamped line per change).")
@click.option("--until", type=click.Choice(["healthy", "degraded"]), help="With --watch: end (exit 0) as soon as "
              "the cluster is so; at --timeout, the status's own exit code.")
@click.option("--interval", type=Seconds(0.5, 3600), default=2, show_default=True, metavar="SECONDS",
              help="With --watch: seconds between looks.")
@click.option("--timeout", "watch_timeout", type=Seconds(1, 86400), metavar="SECONDS",
              help="With --watch: end after SECONDS (default: only --until or Ctrl-C ends it).")
@handle_errors
def status(spec_source, name, output, wide, wait_s, watch, until, interval, watch_timeout):
    """Health of a cluster. Exit 0 healthy, 1 degraded (a node crashed, a problem listed),
    3 not found or stopped by `kops down`.

    \b
    Example: kops status --preset kraft-split --output json
             kops status -i cluster.yaml --wait 60     # CI: healthy within a minute, or exit 1
             kops status --name dev --watch --until healthy --timeout 120
    """
    _watch_options(watch, until, interval, watch_timeout, output, wait_s)
    t = Target(spec_source, name)
    if watch:
        sys.exit(_watch(t, wide, until, interval, watch_timeout))
    with t.provider() as prov:
        notes = _faults_of(t.name)
        st = _with_faults(lifecycle.get_status(t.spec, prov, name=t.name, scope=t.scope, wait=wait_s, log=progress),
                          notes, t.scope)
        remains = prov.remains() if st.state == "not-found" else []
    if output == "json":
        print_json({**st.as_dict(), **({"remains": remains} if remains else {})})
    elif st.state == "not-found":
        err_console.print(_not_found_words(t, remains), markup=False)
    else:
        print_status(st, wide)
    sys.exit(st.exit_code)


def _watch_options(watch, until, interval, timeout, output, wait_s) -> None:
    """--until, --interval and --timeout belong to --watch; --watch is a table or lines."""
    if not watch:
        given = [o for o, v in (("--until", until), ("--timeout", timeout)) if v is not None]
        if interval != 2:
            given.append("--interval")
        if given:
            raise InputError(f"{', '.join(given)} only go with --watch",
                             hint="kops status --watch --until healthy --timeout 120")
        return
    if output == "json":
        raise InputError("--watch prints a table (or a line per change), not --output json",
                         hint="kops status --output json --wait SECONDS: one look, in JSON")
    if wait_s:
        raise InputError("--wait and --watch do not go together", hint="--watch --until healthy --timeout SECONDS")


def _faults_of(name: str) -> dict[str, dict]:
    """The faults `kops fault` injected into cluster ``name`` and has not healed (read before
    a look: a fault healed while the look probes still shows, never the other way round)."""
    from kops.store import state

    return state.faults(name) if name else {}


def _with_faults(st, notes: dict[str, dict], scope: str = ""):
    """The faults ``notes`` (see _faults_of) on their nodes."""
    from kops.ops import faults
    from kops.orchestration.status import mark_faults

    return mark_faults(st, notes, faults.describe, scope) if st.state != "not-found" and notes else st


def _watch(t: Target, wide: bool, until, interval: float, timeout) -> int:
    from rich.console import Group
    from rich.text import Text

    from kops.cli import watch

    def render(st, history, footer):
        def text(words, style=""):
            return Text(words, style=style, overflow="fold", no_wrap=False)

        parts = [status_table(st, wide), text(_cluster_line(st))] if st.state != "not-found" else \
            [text(f"cluster {st.name} not found")]
        parts += [text(f"  problem: {p}") for p in st.problems[:6]]
        parts += [text("changes:", "bold")] + [text(f"  {h}") for h in history] + [text(footer, "dim")]
        return Group(*parts)

    with t.provider() as prov:
        def look():
            notes = _faults_of(t.name)
            return _with_faults(lifecycle.get_status(t.spec, prov, name=t.name, scope=t.scope), notes, t.scope)

        def line(text):
            click.echo(text)
            sys.stdout.flush()

        return watch.watch(look, until=until, interval=interval, timeout=timeout, live=watch.is_tty(),
                           console=out_console, render=render, line=line)


def _not_found_words(t: Target, remains: list[str]) -> str:
    if not remains:
        return (f"cluster {t.name} not found; `kops up{t.scope}` creates it (kops ls lists the clusters there "
                "are)")
    return (f"cluster {t.name} has no node, but its {', '.join(remains)} remain (a first `kops up` interrupted "
            f"before its nodes were created): `kops up{t.scope}` creates the nodes on them, `kops down{t.scope} "
            "--purge` removes them")


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
        nothing = purge and _nothing_on_engine(prov)
        res = lifecycle.down(t.spec, prov, name=t.name, purge=purge, dry_run=dry_run, log=progress)
    if dry_run:
        print_plan(res, f"kops down{t.scope}" + (" --purge" if purge else ""))
        return
    stopped = [a.node for a in res.plan.of("stop")]
    removed = len(res.plan.of("remove"))
    if purge and not removed and (nothing or not res.plan.changes):
        click.echo(f"cluster {t.name}: nothing to purge (no " + ("container, volume or network of it on the Docker "
                   "engine)" if nothing else "node of it exists)"))
    elif purge:
        ssh = t.spec is not None and t.spec.driver == "ssh"
        what = ("units, configs, data, logs and the distribution removed from the hosts" if ssh
                else "containers, volumes and network removed" if removed else "its leftovers removed")
        click.echo(f"cluster {t.name} purged ({removed} nodes): {what}")
    elif stopped:
        click.echo(f"cluster {t.name} stopped: {' '.join(stopped)}; data kept")
        progress(f"`kops up{t.scope}` starts it again")
    else:
        click.echo(f"cluster {t.name}: nothing running")


def _nothing_on_engine(prov) -> bool:
    """Docker: no container, volume or network of the cluster is on the engine (a purge
    would remove nothing). False when it cannot tell (SSH)."""
    from kops.bundle.render import LABEL

    cli, cluster = getattr(prov, "cli", None), getattr(prov, "cluster", None)
    if cli is None or not cluster:
        return False
    flt = {"label": f"{LABEL}.cluster={cluster}"}
    try:
        return not (cli.containers.list(all=True, filters=flt) or cli.volumes.list(filters=flt)
                    or cli.networks.list(filters=flt))
    except Exception:   # noqa: BLE001 - only the words of the answer depend on it
        return False


@click.command("ls")
@click.option("--output", type=click.Choice(["table", "json"]), default="table")
@handle_errors
def ls(output):
    """List kops clusters on the Docker engine, with their bootstrap addresses."""
    from kops.providers.docker import DockerProvider
    from kops.bundle.render import LABEL

    rows = []
    prov = DockerProvider("", progress)
    for name, left in sorted(prov.leftovers().items()):   # an interrupted first up: no node yet
        rows.append({"cluster": name, "nodes": 0, "running": 0, "mode": None, "kafka_version": None,
                     "bootstrap_servers": "", "remains": left})
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
    for r in sorted(rows, key=lambda r: r["cluster"]):
        t.add_row(r["cluster"], r["mode"] or "?", r["kafka_version"] or "?", f"{r['running']}/{r['nodes']}",
                  r["bootstrap_servers"] or ("no node yet: volumes/network kept (kops down --purge --name "
                                             f"{r['cluster']} removes them)" if r.get("remains") else "-"))
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
        err_console.print(f"cluster {t.name} is {st.state}; `kops up{t.scope}` "
                          f"{'creates' if st.state == 'not-found' else 'starts'} it", markup=False)
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
@click.option("--name", help="Cluster name (its inventory: the one it was made from).")
@click.option("--node", "nodes", multiple=True, help="Only these nodes (repeatable; ZooKeeper nodes too).")
@click.option("--timeout", default=600, show_default=True, type=Seconds(1))
@click.option("--force", is_flag=True, help="Roll even if the cluster is not healthy now.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@handle_errors
def restart(spec_source, name, nodes, timeout, force, dry_run):
    """Rolling restart of the Kafka nodes, one at a time, active controller last.

    Before each broker stops, no partition may drop below min.insync.replicas; after it
    is back, the cluster must be healthy (registered, ISRs whole) before the next one.
    """
    t = Target(spec_source, name, allow_name=False)
    with t.provider() as prov:
        res = lifecycle.restart(t.spec, prov, nodes=list(nodes) or None, timeout=timeout, force=force,
                                dry_run=dry_run, log=progress, scope=t.scope)
    if dry_run:
        print_plan(res, f"kops restart{t.scope}")
        return
    for a in res.plan.of("restart"):
        click.echo(f"{a.node}\trestarted")


def _unpicked_ports(spec, st) -> list[str]:
    """``ports: auto``: the brokers of the inventory not created yet, so with no host port
    picked: any address of theirs would be a guess, another one on every call."""
    if spec is None or spec.ports != "auto":
        return []
    return [n.name for n in st.nodes if n.role in ("broker", "combined") and n.state == "missing"]


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
        err_console.print(f"cluster {t.name} not found; `kops up{t.scope}` creates it", markup=False)
        sys.exit(st.exit_code)
    unpicked = _unpicked_ports(t.spec, st)
    if unpicked:
        raise NotFoundError(f"cluster {t.name}: {', '.join(unpicked)} not created yet, so no host port is picked "
                            "for it (ports: auto)",
                            hint=f"kops up{t.scope} creates it; kops env --name {t.name} gives the nodes there are")
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
