"""The SSH provider: the bundle's files and units, placed on hosts with pyinfra's Python API.

Observation is one kops fact per host (a pyinfra ``FactBase``: file checksums, Java,
the distribution, the service user, systemd units, KRaft ``meta.properties``), read in
parallel. Changes are pyinfra operations (``files.put``, ``files.directory``,
``server.user``, ``apt.packages`` / ``server.packages``, ``systemd.service``,
``server.shell`` for the distribution and storage formatting), one batch per plan step,
each host's operations in its own thread; success and failure come from pyinfra's
operation results, never from its log. A host that cannot be reached stops the run before
any host is changed.

A host has no labels, so kops notes in its state (kops.store.state, ``placed.json``) each
node it places: name, role, id, host (address, user, port, key path), unit and folders.
Nodes the inventory no longer lists are observed from that record (brokers or controllers
scaled down, a ZooKeeper retired by a migration): the planner drains, stops and removes
them as it does on Docker. A host of the record that left the inventory is reached with
the login the record keeps; when it cannot be reached, its nodes are not observed (and said so).
"""

from __future__ import annotations

import io
import logging
import posixpath
import shlex
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kops.artifacts import dist, plugins, tools
from kops.kafka import health
from kops.services import metrics, registry
from kops.core import paths
from kops.core.errors import EngineError, KopsError
from kops.bundle.launch import shell_line
from kops.plan import Action, Bootstrap, Create, Format, HostObs, Need, NodeObs, Observed, Plan, PrepareHost, Reconfigure, Remove, RemoveHost, Restart, Start, Stop
from kops.providers.base import ProviderInfo
from kops.bundle.render import KAFKA_USER, Bundle, Layout, NodeBundle, kafka_home, profile_path
from kops.store import hostkeys, state
from kops.providers.common import interleaved as _interleaved, labeller as _labeller, merged as _merged
from kops.providers.attach import ssh_argv
from kops.providers.attach import ssh_remote

NOTHING_KEPT = "kops: no previous files kept"
JAVA_PACKAGES = {"apt": "openjdk-17-jre-headless", "dnf": "java-17-openjdk-headless",
                 "yum": "java-17-openjdk-headless"}
UNIT_PROPS = ("LoadState", "ActiveState", "SubState", "Result", "UnitFileState", "ExecMainStatus",
              "ActiveEnterTimestamp")


def _fact_class():
    """The kops host fact, defined lazily (pyinfra is imported only when SSH is used)."""
    from pyinfra.api import FactBase

    class KopsHost(FactBase):
        """Everything kops needs to know about one host, in one round trip."""

        def command(self, files, units, metas, home, registry_jar=None, quorums=None, runs=None):
            q = shlex.quote
            parts = [f"[ -f {q(p)} ] && sha256sum {q(p)} | sed 's/^/SUM /'" for p in files]
            parts += [
                "echo JAVA $(command -v java || echo -)",
                f"[ -d {q(home + '/libs')} ] && echo DIST yes",
                # kops's extras (metrics agent, FileStream connectors): an older install lacks them
                f"[ -f {q(home + '/' + dist.AGENTS_DIR + '/' + metrics.AGENT_JAR)} ] && echo EXTRAS yes",
                f"echo TOOLS $(cat {q(home + '/' + tools.MARKER)} 2>/dev/null)",
                # the schema registry's application (kops.registry), where the host runs one
                *([f"[ -f {q(registry_jar)} ] && echo REGISTRY yes"] if registry_jar else []),
                f"id -u {KAFKA_USER} >/dev/null 2>&1 && echo USER yes",
                "for p in apt-get dnf yum; do command -v $p >/dev/null && echo PKG $p && break; done",
            ]
            for u in units:
                parts.append(f"echo UNIT {q(u)}; systemctl show -p {','.join(UNIT_PROPS)} {q(u)} 2>/dev/null "
                             "| sed 's/^/P /'")
                # when the service last stopped, as epoch seconds (systemd prints local time)
                parts.append(f"t=$(systemctl show -p InactiveEnterTimestamp --value {q(u)} 2>/dev/null); "
                             '[ -n "$t" ] && echo P InactiveEnterEpoch=$(date -d "$t" +%s 2>/dev/null)')
            for node, meta in metas:
                parts.append(f"[ -f {q(meta)} ] && echo META {q(node)} "
                             f"$(sed -n 's/^cluster.id=//p' {q(meta)})")
            for node, props in quorums or ():
                # the quorum the node runs with: its server.properties names the bootstrap servers or the voters
                parts.append(f"if grep -qs '^controller.quorum.bootstrap.servers=' {q(props)}; then echo QUORUM "
                             f"{q(node)} dynamic; elif [ -f {q(props)} ]; then echo QUORUM {q(node)} static; fi")
            for node, unit, props in runs or ():
                # what a Kafka node runs: the distribution its unit starts (its version), the mode
                # its server.properties says (process.roles: KRaft)
                parts.append(f"echo RUNS {q(node)} $(grep -so 'kafka_2.13-[0-9][0-9A-Za-z.-]*' {q(unit)} | head -n1 "
                             f"| cut -d- -f2-) $(grep -qs '^process.roles=' {q(props)} && echo kraft || "
                             f"{{ [ -f {q(props)} ] && echo zookeeper; }})")
            return "; ".join(parts + ["true"])

        def process(self, output):
            out = {"sums": {}, "java": "", "dist": False, "user": False, "pkg": "", "units": {},
                   "metas": {}}
            unit = None
            for line in output:
                tag, _, rest = line.partition(" ")
                if tag == "SUM":
                    digest, _, path = rest.partition("  ")
                    out["sums"][path.strip()] = digest
                elif tag == "JAVA":
                    out["java"] = "" if rest.strip() == "-" else rest.strip()
                elif tag == "DIST":
                    out["dist"] = True
                elif tag == "EXTRAS":
                    out["extras"] = True
                elif tag == "REGISTRY":
                    out["registry"] = True
                elif tag == "TOOLS":
                    out["tools"] = rest.strip()
                elif tag == "USER":
                    out["user"] = True
                elif tag == "PKG":
                    out["pkg"] = rest.strip().replace("-get", "")
                elif tag == "UNIT":
                    unit = rest.strip()
                    out["units"][unit] = {}
                elif tag == "P" and unit is not None:
                    key, _, value = rest.partition("=")
                    out["units"][unit][key] = value
                elif tag == "META":
                    node, _, cid = rest.partition(" ")
                    out["metas"][node] = cid.strip()
                elif tag == "RUNS":
                    words = rest.split()
                    if len(words) == 3:   # node version mode (a node not installed yet says less)
                        out.setdefault("runs", {})[words[0]] = (words[1], words[2])
                elif tag == "QUORUM":
                    node, _, kind = rest.partition(" ")
                    out.setdefault("quorums", {})[node] = kind.strip()
            return out

    return KopsHost


_FACT = None


def _reset_ops(state) -> None:
    """A fresh operation list on a connected State: pyinfra's API State holds one deploy's
    operations, and each plan step is one deploy on the same connections."""
    from pyinfra.api.state import StateHostMeta, StateHostResults

    state.is_executing = False
    state.op_meta = {}
    state.ops = {h: {} for h in state.inventory}
    state.meta = {h: StateHostMeta() for h in state.inventory}
    state.results = {h: StateHostResults() for h in state.inventory}
    for h in state.inventory:
        h.op_hash_order = []


KAFKA_ROLES = ("broker", "controller", "combined")
KOPS_TOPS = ("/etc/kops", "/var/lib/kops", "/var/log/kops")


class _PlacedRole:
    def __init__(self, role: str, nid: int, host: str, address: str, port: int | None):
        self.role, self.id, self.host_key, self.hostname = role, nid, host, address
        self.is_kafka = role in KAFKA_ROLES
        self.is_broker = role in ("broker", "combined")
        self.is_controller = role in ("controller", "combined")
        self.ports = {"client": port} if port else {}


class PlacedNode:
    """A node kops placed that the inventory no longer lists, as kops's record has it
    (kops.store.state.placed): the few things of a NodeBundle the provider needs to
    observe, stop and remove it."""

    def __init__(self, rec: dict):
        self.rec = rec
        self.name: str = rec["node"]
        self.unit: str = rec["unit"]
        host_addr = (rec.get("addresses") or {}).get("host", "")
        port = int(host_addr.rsplit(":", 1)[1]) if host_addr.rsplit(":", 1)[-1].isdigit() else None
        self.node = _PlacedRole(rec.get("role", ""), int(rec.get("id") or 0), rec["host"], rec.get("address", ""),
                                port)
        self.layout = Layout(rec.get("home", ""), rec["conf_dir"], rec["data_dir"], rec["log_dir"])
        self.files = {f"/etc/systemd/system/{self.unit}": ""}
        self.format_argv = [] if self.node.is_kafka else None
        self.stop_grace = int(rec.get("stop_grace") or 30)
        self.env: dict[str, str] = {}
        self.folders: list[str] = list(rec.get("folders") or [])


def node_folders(cluster: str, node: str, layout: Layout) -> list[str]:
    """The folders of one node on its host (its config, data and logs), each the node's own
    folder under /etc/kops, /var/lib/kops, /var/log/kops."""
    out = []
    for top in KOPS_TOPS:
        mine = f"{top}/{cluster}/{node}"
        if any(p == mine or p.startswith(mine + "/") for p in (layout.conf_dir, layout.data_dir, layout.log_dir)):
            out.append(mine)
    return out


def valid_record(cluster: str, rec: dict) -> str | None:
    """Why a record of placed.json is not used (None: it is sound). Nothing is removed on
    a host on the word of a record that names a unit or folder not of this cluster's node."""
    try:
        node, unit, host = rec["node"], rec["unit"], rec["host"]
        folders = list(rec.get("folders") or [])
        rec["conf_dir"], rec["data_dir"], rec["log_dir"], rec["address"]
    except (KeyError, TypeError):
        return "a field is missing"
    if not (isinstance(node, str) and isinstance(host, str) and node and host):
        return "no node or host"
    if unit != f"kops-{cluster}-{node}.service":
        return f"unit {unit!r} is not kops-{cluster}-{node}.service"
    mine = {f"{top}/{cluster}/{node}" for top in KOPS_TOPS}
    bad = [f for f in folders if f not in mine]
    if bad or not folders:
        return f"folders {bad or folders} are not the node's own"
    for d in (rec["conf_dir"], rec["data_dir"], rec["log_dir"]):
        if not isinstance(d, str) or posixpath.normpath(d) != d or not any(d == m or d.startswith(m + "/")
                                                                          for m in mine):
            return f"folder {d!r} is not the node's own"
    return None


class SSHProvider:
    # what this provider can do (planning asks this, never the driver's name)
    info = ProviderInfo(sees_unlisted_nodes=True, one_shot_jobs=False, keeps_previous=True,
                        handles=frozenset({PrepareHost, Format, Bootstrap, Create, Reconfigure, Start, Restart,
                                           Stop, Remove, RemoveHost}))
    name = "ssh"

    def __init__(self, spec, log, *, accept_new_host_keys: bool = False):
        self.spec = spec
        self.log = log
        self.accept_new = accept_new_host_keys
        self.state = None
        self._bundle: Bundle | None = None
        self._lock = threading.Lock()
        self._unlisted: dict[str, PlacedNode] = {}   # placed nodes the inventory does not list
        self._unreachable: set[str] = set()          # hosts of the record only, that did not answer

    # -- connection -----------------------------------------------------------------------

    def connect(self):
        """Connect to every host; name each one that fails and why, change nothing."""
        if self.state is not None:
            return self.state
        from pyinfra.api import Config, Inventory, State
        from pyinfra.api.connect import connect_all
        from pyinfra.api.exceptions import PyinfraError
        from pyinfra.api.state import BaseStateCallback

        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
        spec = self.spec

        def reach(item):
            name, h = item
            try:
                with socket.create_connection((h.address, h.port), timeout=5):
                    return None
            except OSError as exc:
                return f"{name} ({h.address}:{h.port}): cannot open a TCP connection: {exc.strerror or exc}"

        extra = self._record_hosts()
        with ThreadPoolExecutor(max_workers=16) as pool:
            problems = [p for p in pool.map(reach, spec.hosts.items()) if p]
            gone = [(n, p) for (n, _), p in zip(extra.items(), pool.map(reach, extra.items())) if p]
        if problems:
            raise EngineError("cannot reach every host; nothing was changed on any host:\n  - "
                              + "\n  - ".join(problems),
                              hint="is the host up, the address right and sshd listening on that port?")
        for n, why in gone:   # a host only kops's record names (it left the inventory): its nodes go unseen
            self._unreachable.add(n)
            extra.pop(n)
            self.log(f"warning: {why}; it is not in the inventory, and the nodes kops placed there "
                     f"({', '.join(sorted(r['node'] for r in self._records().values() if r['host'] == n))}) "
                     "are not observed this time")
        every = {**spec.hosts, **extra}
        verified = hostkeys.verify(every, spec.ssh.known_hosts, self.accept_new, self.log)
        self._known = verified
        hosts = []
        for name, h in every.items():
            data = {"ssh_user": h.user, "ssh_port": h.port, "ssh_hostname": h.address,
                    "ssh_strict_host_key_checking": "yes", "ssh_known_hosts_file": str(verified)}
            if h.key:
                data["ssh_key"] = str(Path(h.key).expanduser())
            if h.sudo:
                data["_sudo"] = True
            hosts.append((name, data))
        reasons: dict[str, str] = {}

        class _Reasons(BaseStateCallback):
            @staticmethod
            def host_connect_error(state, host, error):
                reasons[host.name] = str(error.args[0] if getattr(error, "args", None) else error)

        st = State(inventory=Inventory((hosts, {})), config=Config(FAIL_PERCENT=100),
                   check_for_changes=False)
        st.add_callback_handler(_Reasons())
        try:
            connect_all(st)
        except PyinfraError as exc:  # raised when every host failed; each is named below
            reasons.setdefault("", str(exc))
        failed = [h.name for h in st.inventory if not h.connected]
        if failed:
            raise EngineError("SSH login failed; nothing was changed on any host:\n  - " + "\n  - ".join(
                f"{n} ({every[n].user}@{every[n].address}:{every[n].port}): login failed: "
                + reasons.get(n, reasons.get("", "key refused")) for n in failed),
                hint="check hosts.<name>.user and .key (ssh -i KEY USER@ADDRESS must log in without a password)")
        self.state = st
        for host in st.inventory:
            ok, out = host.run_shell_command("true")
            if not ok:
                raise EngineError(f"{host.name}: sudo failed: {' '.join(out.stderr_lines[-3:])}",
                                  hint="the user needs passwordless sudo, or log in as root")
        return st

    # -- kops's record of the nodes it placed ---------------------------------------------------

    def _records(self) -> dict[str, dict]:
        """placed.json's sound records (an unsound one is named once and left unused)."""
        out = {}
        for n, rec in state.placed(self.spec.name).items():
            why = valid_record(self.spec.name, rec)
            if why:
                if n not in getattr(self, "_warned", set()):
                    self._warned = getattr(self, "_warned", set()) | {n}
                    self.log(f"warning: kops's record of {n} (placed.json) is not used: {why}")
                continue
            out[n] = rec
        return out

    def _record_hosts(self) -> dict:
        """Hosts only kops's record names (they left the inventory), as host specs."""
        from kops.model.spec import HostSpec

        out = {}
        for rec in self._records().values():
            h = rec["host"]
            if h in self.spec.hosts or h in out:
                continue
            out[h] = HostSpec.model_construct(address=rec["address"], user=rec.get("user") or "root",
                                              port=int(rec.get("port") or 22), key=rec.get("key"),
                                              sudo=bool(rec.get("sudo")), roles=[])
        return out

    def _record(self, nb: NodeBundle, bundle: Bundle) -> dict:
        """What kops keeps of a node it places (never a secret: a key is kept as its path)."""
        h = self.spec.hosts[nb.node.host_key]
        lay = nb.layout
        return {"node": nb.name, "role": nb.node.role, "id": nb.node.id, "host": nb.node.host_key,
                "address": h.address, "user": h.user, "port": h.port, "key": h.key, "sudo": h.sudo,
                "unit": nb.unit, "home": lay.home, "conf_dir": lay.conf_dir, "data_dir": lay.data_dir,
                "log_dir": lay.log_dir, "folders": node_folders(bundle.topo.name, nb.name, lay),
                "stop_grace": nb.stop_grace, "addresses": bundle.topo.addresses(nb.node)}

    def _note_placed(self, nbs: list[NodeBundle], bundle: Bundle) -> None:
        recs = {nb.name: self._record(nb, bundle) for nb in nbs if nb.node.host_key in self.spec.hosts}
        state.note_placed(self.spec.name, recs)

    def _nb(self, name: str, bundle: Bundle | None = None):
        """The node's bundle, or kops's record of it when the inventory no longer lists it."""
        bundle = bundle or self._bundle
        if bundle is not None and name in bundle.nodes:
            return bundle.nodes[name]
        if name not in self._unlisted:
            rec = self._records().get(name)
            if rec is None:
                raise KopsError(f"{name} is neither in the inventory nor in kops's record of the nodes it placed")
            self._unlisted[name] = PlacedNode(rec)
        return self._unlisted[name]

    def close(self) -> None:
        from pyinfra.api.connect import disconnect_all

        if self.state is not None:
            disconnect_all(self.state)
            self.state = None
        known = getattr(self, "_known", None)
        if known is not None:
            known.unlink(missing_ok=True)
            self._known = None

    def _host(self, name: str):
        return self.connect().inventory.get_host(name)

    def run(self, host: str, argv: list[str] | str) -> tuple[bool, str]:
        """One command on a host (argv words are quoted; a str is a fixed script of kops's)."""
        cmd = argv if isinstance(argv, str) else shell_line(argv)
        ok, out = self._host(host).run_shell_command(cmd)
        lines = out.stdout_lines if ok else out.stdout_lines + out.stderr_lines
        return ok, "\n".join(lines)

    # -- observe --------------------------------------------------------------------------

    def observe(self, bundle: Bundle | None) -> Observed:
        global _FACT
        bundle = bundle or self._bundle
        if bundle is None:
            raise KopsError("the SSH provider needs the inventory to know where to look")
        self._bundle = bundle
        st = self.connect()
        _FACT = _FACT or _fact_class()
        by_host: dict[str, list[NodeBundle]] = {}
        for nb in bundle:
            by_host.setdefault(nb.node.host_key, []).append(nb)
        # the nodes kops placed that the inventory no longer lists (kops's record)
        self._unlisted = {n: PlacedNode(r) for n, r in self._records().items() if n not in bundle.nodes}
        extra: dict[str, list[PlacedNode]] = {}
        for p in self._unlisted.values():
            if p.node.host_key not in self._unreachable:
                extra.setdefault(p.node.host_key, []).append(p)

        def one(hname: str):
            listed = by_host.get(hname, [])
            nbs = listed + extra.get(hname, [])
            host = st.inventory.get_host(hname)
            home = kafka_home(bundle.topo) if listed else "/nonexistent"
            reg = next((f"{nb.layout.home}/{registry.RUNNER}" for nb in listed if nb.node.role == "registry"), None)
            facts = host.get_fact(_FACT, files=[p for nb in nbs for p in nb.files], registry_jar=reg,
                                  quorums=[(nb.name, f"{nb.layout.conf_dir}/server.properties") for nb in nbs
                                           if nb.format_argv is not None],
                                  units=[nb.unit for nb in nbs],
                                  metas=[(nb.name, posixpath.join(nb.layout.data_dir, "meta.properties"))
                                         for nb in nbs if nb.format_argv is not None],
                                  runs=[(nb.name, f"/etc/systemd/system/{nb.unit}",
                                         f"{nb.layout.conf_dir}/server.properties") for nb in listed
                                        if nb.node.is_kafka],
                                  home=home)
            if host in st.failed_hosts or facts is None:
                raise EngineError(f"{hname}: could not read the host's facts (file checksums, units, Java); "
                                  "nothing was changed", hint="check that the login user may run systemctl "
                                                              "and read /etc/kops (root or sudo: true)")
            return hname, facts

        with ThreadPoolExecutor(max_workers=16) as pool:
            facts = dict(pool.map(one, list(self.spec.hosts) + [h for h in extra if h not in self.spec.hosts]))
        observed = Observed()
        for hname, f in facts.items():
            if not by_host.get(hname):
                continue
            missing: list[Need] = []
            if not f["java"]:
                pkg = JAVA_PACKAGES.get(f["pkg"])
                missing.append(Need("java", pkg, how=f["pkg"]) if pkg else Need("java", note="no apt, dnf or yum"))
            if not f["user"]:
                missing.append(Need("user", KAFKA_USER))
            home = kafka_home(bundle.topo)
            if not f["dist"] or (dist.needs_extras(bundle.topo.spec) and not f.get("extras")):
                # (a distribution without the extras a metrics or Connect cluster needs: installed again)
                missing.append(Need("kafka", f"{bundle.topo.version} in {home}"))
            if f.get("tools") != tools.fingerprint(bundle.topo.version):
                missing.append(Need("tools", f"Kafka's tools in {home}/bin"))
            if any(nb.node.role == "registry" for nb in by_host[hname]) and not f.get("registry"):
                missing.append(Need("registry", f"Apicurio Registry {registry.VERSION} in /opt/kops/"
                                                f"{registry.HOME_NAME}"))
            observed.hosts[hname] = HostObs(hname, tuple(missing))
            for nb in by_host[hname]:
                observed.nodes[nb.name] = self._node(nb, f)
        gone = []
        for hname, placed in extra.items():
            for p in placed:
                o = self._node(p, facts[hname])
                if o.exists:
                    observed.nodes[p.name] = o
                else:   # not on its host any more (removed by hand, the host reinstalled)
                    gone.append(p.name)
        observed.nodes = {k: v for k, v in observed.nodes.items() if v.exists}
        # the record follows what is found: a node of the inventory found in place is noted
        # (clusters placed before kops kept this record), one of the record found gone is dropped
        known = state.placed(self.spec.name)
        self._note_placed([nb for nb in bundle if nb.name in observed.nodes and nb.name not in known], bundle)
        if gone:
            state.forget_placed(self.spec.name, gone)
            for n in gone:
                self._unlisted.pop(n, None)
        # what the cluster runs is what its Kafka nodes run, running ones first (as Docker's labels say)
        runs = {n: r for f in facts.values() for n, r in f.get("runs", {}).items() if n in observed.nodes}
        for n in sorted(runs, key=lambda n: observed.nodes[n].running):
            observed.meta = {"version": runs[n][0], "mode": runs[n][1]}
        return observed

    @staticmethod
    def _node(nb: NodeBundle | PlacedNode, f: dict) -> NodeObs:
        u = f["units"].get(nb.unit, {})
        unit_file = f"/etc/systemd/system/{nb.unit}"
        exists = unit_file in f["sums"] or u.get("LoadState") == "loaded"
        active, sub, result = u.get("ActiveState", "inactive"), u.get("SubState", ""), u.get("Result", "")
        running = active == "active" or (active in ("activating", "reloading") and sub != "auto-restart")
        state = active if not sub or sub in ("running", "dead") else f"{active} ({sub})"
        if not exists:
            state = "missing"
        code = u.get("ExecMainStatus")
        crashed = exists and not running and result not in ("", "success")
        return NodeObs(
            name=nb.name, role=nb.node.role, id=nb.node.id, exists=exists, running=running,
            state="failed" if crashed and active == "failed" else state,
            files={p: f["sums"][p] for p in nb.files if p in f["sums"]},
            formatted=(nb.name in f["metas"]) if nb.format_argv is not None else None,
            cluster_id=f["metas"].get(nb.name) or None,
            exit_code=int(code) if code and code.isdigit() and crashed else None, crashed=crashed,
            finished_at=float(u["InactiveEnterEpoch"]) if u.get("InactiveEnterEpoch", "").isdigit() else None,
            started_at=u.get("ActiveEnterTimestamp") or None, stop_grace=nb.stop_grace,
            where=nb.node.host_key, quorum=f.get("quorums", {}).get(nb.name),
            addresses=dict(nb.rec.get("addresses") or {}) if isinstance(nb, PlacedNode) else {})

    def node_states(self, names: list[str]) -> dict[str, tuple[bool, str]]:
        out = {}
        for name in names:
            nb = self._nb(name)
            ok, text = self.run(nb.node.host_key, ["systemctl", "show", "-p",
                                                   "ActiveState,SubState,Result,ExecMainStatus", nb.unit])
            props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
            active, sub = props.get("ActiveState", "?"), props.get("SubState", "")
            running = active == "active" or (active == "activating" and sub != "auto-restart")
            words = f"service {nb.unit} on {nb.node.host_key} is {active}/{sub}"
            if not running and props.get("Result") not in (None, "success"):
                words += f", result {props.get('Result')}, exit status {props.get('ExecMainStatus')}"
            out[name] = (running, words)
        return out

    # -- preflight ------------------------------------------------------------------------

    def preflight(self, plan: Plan, bundle: Bundle, observed: Observed) -> None:
        version = bundle.topo.version
        pushing = any(isinstance(a, PrepareHost) and a.wants("kafka")
                      for a in plan.actions) and not bundle.topo.spec.kafka.download
        if pushing and dist.cached(version) is None and version not in dist.maven_versions():
            dist.require(version)   # raises the input error with the versions there are
        for a in plan.actions:
            if isinstance(a, PrepareHost) and any(not n.what for n in a.wants("java")):
                raise KopsError(f"{a.host}: no Java and no apt, dnf or yum to install it",
                                hint="install a Java 17+ runtime on the host, then re-run")
        if any(isinstance(a, (Create, Reconfigure)) and bundle.nodes[a.node].node.role == "connect"
               for a in plan.actions if a.node in bundle.nodes):
            plugins.ensure_all(bundle.topo.spec, log=self.log)   # a plugin Maven lacks: exit 2, nothing changed

    # -- apply ----------------------------------------------------------------------------

    def apply(self, step: list[Action], bundle: Bundle | None) -> None:
        """One step: every host's operations in its own thread, then the results checked."""
        from pyinfra.api.operation import add_op

        st = self.connect()
        bundle = bundle or self._bundle
        _reset_ops(st)
        metas: list[tuple[str, str, object]] = []
        notes: list[tuple[str, str]] = []

        def add(hname: str, label: str, op, **kwargs):
            res = add_op(st, op, host=st.inventory.get_host(hname), name=label, **kwargs)
            metas.extend((hname, label, m) for m in res.values())

        # kops's record of where each node is, before the node is placed (a failed first
        # start leaves files on the host: they are kops's to remove all the same)
        placing = [bundle.nodes[a.node] for a in step if isinstance(a, (Format, Create, Reconfigure, Start, Restart))
                   and a.node in bundle.nodes]
        self._note_placed(placing, bundle)
        for a in step:
            self._ops(a, bundle, add, notes)
        removed = [a for a in step if isinstance(a, Remove) and a.node]
        self._tidy_ops(removed, bundle, add, notes)
        self._run(st, sorted({h for h, _, _ in metas}))
        failed = [(h, label, m) for h, label, m in metas if not (m.is_complete() and m.did_succeed())]
        gone = [a.node for a in removed if not any(fh == a.host for fh, _, _ in failed)]
        if gone:   # removed from their hosts: no longer kops's to observe
            state.forget_placed(self.spec.name, gone)
            for n in gone:
                self._unlisted.pop(n, None)
        if failed:
            raise KopsError(self._failures(failed, step),
                            details="\n".join(self._failure_details(failed, step))[-6000:],
                            hint="run the same command again once the cause is fixed: it continues from "
                                 "what is in place")
        for _, line in notes:
            self.log(line)
        for a in step:
            if isinstance(a, Stop):
                self._after_stop(a, bundle)

    @staticmethod
    def _failures(failed, step) -> str:
        """The first failed operation of each host, in one line each."""
        firsts: dict[str, str] = {}
        for h, label, _m in failed:
            firsts.setdefault(h, label)
        if len(firsts) == 1:
            (h, label), = firsts.items()
            n = sum(1 for f in failed if f[0] == h)
            return f"{h}: {label} failed" + (f" ({n} step(s) in all)" if n > 1 else "")
        return f"{len(firsts)} hosts failed: " + "; ".join(f"{h}: {label}" for h, label in firsts.items())

    def _failure_details(self, failed, step) -> list[str]:
        out, seen = [], set()
        errors = getattr(self, "_op_errors", {})
        for h, label, m in failed:
            if h in seen:
                continue
            seen.add(h)
            if m.is_complete():
                text = m.stderr or m.stdout
            else:
                text = next((e for (eh, _), e in errors.items() if eh == h), "") or "(not run: an earlier step failed)"
            out.append(f"--- {h}: {label}\n{(text or '(no output)')[-2000:]}")
            node = next((a.node for a in step if a.node and a.host == h), None)
            if node and isinstance(next(a for a in step if a.node == node), (Create, Reconfigure, Start, Restart)):
                out.append(f"--- {node}, last log lines:\n{self.tail(node, 30)}")
        return out

    def _run(self, st, hosts: list[str]) -> None:
        """Run each host's operations in its own thread (pyinfra's greenlets only overlap
        when gevent patches the process, which kops does not do)."""
        from pyinfra.api.exceptions import PyinfraError
        from pyinfra.api.operations import run_host_op
        from pyinfra.context import ctx_host, ctx_state

        st.is_executing = True

        self._op_errors = errors = {}

        def one(hname):
            host = st.inventory.get_host(hname)
            with ctx_host.use(host):
                for op_hash in list(host.op_hash_order):
                    try:
                        if run_host_op(st, host, op_hash) is False:
                            return
                    except PyinfraError as exc:   # kept: the report names it, not "not run"
                        errors[(hname, op_hash)] = f"{type(exc).__name__}: {exc}"
                        return

        with ctx_state.use(st):
            with ThreadPoolExecutor(max_workers=max(1, len(hosts))) as pool:
                list(pool.map(one, hosts))

    def _ops(self, a: Action, bundle: Bundle, add, notes) -> None:
        from pyinfra.operations import files, server, systemd

        h = a.host
        if isinstance(a, PrepareHost):
            self._prepare_ops(a, bundle, add, notes)
            return
        if isinstance(a, RemoveHost):
            self._remove_host_ops(a, bundle, add, notes)
            return
        nb = self._nb(a.node, bundle)
        if isinstance(a, Reconfigure):
            add(h, f"{nb.name}: keep the current files for a rollback", server.shell,
                commands=[_backup_script(list(nb.files), _previous(nb))])
        if isinstance(a, (Format, Create, Reconfigure)):
            lay = nb.layout
            # configs readable by the service's group only (a secure cluster's hold keys and passwords)
            for d in sorted({lay.conf_dir} | {posixpath.dirname(p) for p in nb.files if p.startswith(lay.conf_dir)}):
                add(h, f"{nb.name}: {d}", files.directory, path=d, user="root", group=KAFKA_USER, mode="750")
            for d in (lay.data_dir, lay.log_dir):
                add(h, f"{nb.name}: {d}", files.directory, path=d, user=KAFKA_USER, group=KAFKA_USER, mode="750")
            for path, text in nb.files.items():
                owner = {"user": "root", "group": KAFKA_USER, "mode": "640"} if path in nb.secret else {"mode": "644"}
                add(h, f"{nb.name}: {posixpath.basename(path)}", files.put, src=io.StringIO(text), dest=path,
                    **owner)
            if nb.node.role == "connect" and bundle.topo.spec.connect.plugins:
                self._plugin_ops(nb, bundle, add)
        if isinstance(a, Bootstrap):
            add(h, f"{nb.name}: the brokers' SCRAM user in ZooKeeper", server.shell,
                commands=[shell_line(["runuser", "-u", KAFKA_USER, "--", *nb.scram_argv])])
            notes.append((h, f"{nb.name}: the brokers' SCRAM user written to ZooKeeper"))
        elif isinstance(a, Format):
            add(h, f"{nb.name}: format KRaft storage", server.shell,
                commands=[shell_line(["runuser", "-u", KAFKA_USER, "--",
                                      *(nb.join_format_argv if a.join else nb.format_argv)])])
            notes.append((h, f"{nb.name}: storage formatted on {h} (cluster id {a.cluster_id})"))
        elif isinstance(a, (Create, Start)):
            add(h, f"{nb.name}: start {nb.unit}", systemd.service, service=nb.unit, running=True, enabled=True,
                daemon_reload=isinstance(a, Create))
            notes.append((h, f"{nb.name}: started on {h}"))
        elif isinstance(a, Reconfigure):
            reload = any(c.endswith(".service") for c in a.changed)
            add(h, f"{nb.name}: restart {nb.unit}", systemd.service, service=nb.unit, running=True, enabled=True,
                restarted=True, daemon_reload=reload)
            notes.append((h, f"{nb.name}: restarted on {h} (files changed: {', '.join(a.changed) or 'definition'})"))
        elif isinstance(a, Restart):
            add(h, f"{nb.name}: restart {nb.unit}", systemd.service, service=nb.unit, running=True, restarted=True)
            notes.append((h, f"{nb.name}: restarted on {h}"))
        elif isinstance(a, Stop):
            add(h, f"{nb.name}: stop {nb.unit}", systemd.service, service=nb.unit, running=False)
        elif isinstance(a, Remove):
            lay = nb.layout
            add(h, f"{nb.name}: stop and disable {nb.unit}", systemd.service, service=nb.unit, running=False,
                enabled=False)
            add(h, f"{nb.name}: unit file", files.file, path=f"/etc/systemd/system/{nb.unit}", present=False)
            folders = nb.folders if isinstance(nb, PlacedNode) else node_folders(bundle.topo.name, nb.name, lay)
            for d in dict.fromkeys([lay.conf_dir, lay.data_dir, lay.log_dir, *folders]):
                add(h, f"{nb.name}: remove {d}", files.directory, path=d, present=False)
            notes.append((h, f"{nb.name}: unit, config, data and logs removed from {h}"))

    def _tidy_ops(self, removed: list[Remove], bundle: Bundle, add, notes) -> None:
        """After nodes left the inventory and were removed: systemd forgets their units, and a
        host where no node of the cluster stays loses the cluster's folders (empty by now), its
        login profile, and the distribution no kops unit uses any more (as a purge does)."""
        from pyinfra.operations import files, server, systemd

        hosts = sorted({a.host for a in removed if a.host})
        if not hosts:
            return
        leaving = {a.node for a in removed}
        name = self.spec.name
        for h in hosts:
            add(h, "systemd daemon-reload", systemd.daemon_reload)
            if any(a.node in bundle.nodes for a in removed if a.host == h):
                continue   # a purge of the inventory's nodes: the host's own removal follows
            stays = [n for n, nb in bundle.nodes.items() if nb.node.host_key == h and n not in leaving]
            stays += [n for n, r in self._records().items() if r["host"] == h and n not in leaving
                      and n not in bundle.nodes]
            if stays:
                continue
            homes = sorted({self._nb(a.node, bundle).layout.home for a in removed if a.host == h} - {""})
            dirs = " ".join(shlex.quote(f"{top}/{name}") for top in KOPS_TOPS)
            add(h, f"remove the empty folders of cluster {name}", server.shell,
                commands=[f"rmdir {dirs} 2>/dev/null || true"])
            add(h, "remove the login shells' profile", files.file, path=profile_path(bundle.topo), present=False)
            for home in homes:
                if home.startswith("/opt/kops/") and posixpath.normpath(home) == home:
                    add(h, f"remove {home} unless used", server.shell, commands=[
                        f"grep -qs {shlex.quote(home)} /etc/systemd/system/kops-*.service || rm -rf {shlex.quote(home)}"])
            add(h, "remove empty kops folders", server.shell,
                commands=["rmdir /etc/kops /var/lib/kops /var/log/kops /opt/kops 2>/dev/null || true"])
            notes.append((h, f"{h}: no node of cluster {name} is left there: its folders and profile removed"))

    def _plugin_ops(self, nb: NodeBundle, bundle: Bundle, add) -> None:
        """The extra Connect plugins' jars (kops.plugins), a folder each; folders of plugins
        no longer listed are removed."""
        from pyinfra.operations import files, server

        h, top = nb.node.host_key, f"{nb.layout.conf_dir}/{plugins.DIR}"
        jars = plugins.jars(bundle.topo.spec, nb.layout.conf_dir)
        keep = sorted({posixpath.basename(posixpath.dirname(p)) for p in jars})
        for d in [top] + [f"{top}/{k}" for k in keep]:
            add(h, f"{nb.name}: {d}", files.directory, path=d, user="root", group=KAFKA_USER, mode="755")
        add(h, f"{nb.name}: drop plugins no longer listed", server.shell, commands=[shell_line(
            ["find", top, "-mindepth", "1", "-maxdepth", "1", *[w for k in keep for w in ("!", "-name", k)],
             "-exec", "rm", "-rf", "{}", "+"])])
        for dest, local in jars.items():
            add(h, f"{nb.name}: plugin jar {posixpath.basename(dest)}", files.put, src=str(local), dest=dest,
                mode="644")

    def rollback(self, nodes: list[str], bundle: Bundle) -> list[str]:
        """Put back the files kept before a reconfigure, and restart onto them."""
        back, failed = [], []
        for n in nodes:
            nb = bundle.nodes[n]
            tar = _previous(nb)
            ok, text = self.run(nb.node.host_key, f"test -f {shlex.quote(tar)} || {{ echo {NOTHING_KEPT}; exit 0; }}; "
                                                  f"tar -C / -xf {shlex.quote(tar)} && systemctl daemon-reload && "
                                                  f"systemctl restart {shlex.quote(nb.unit)}")
            if ok and NOTHING_KEPT in text:
                continue   # nothing was kept for this node: nothing to put back
            if ok:
                back.append(n)
                self.log(f"{n}: the previous files were put back on {nb.node.host_key} and the service restarted")
            else:
                failed.append(f"{n} on {nb.node.host_key}: {text.strip()[-500:] or '(no output)'}")
        if failed:
            raise KopsError("could not put back the previous files of " + ", ".join(f.split(" on ")[0] for f in failed),
                            details="\n".join(failed))
        return back

    def settle(self, nodes: list[str]) -> None:
        for n in nodes:
            nb = self._bundle.nodes[n]
            self.run(nb.node.host_key, ["rm", "-f", _previous(nb)])

    def _after_stop(self, a: Stop, bundle: Bundle) -> None:
        nb = self._nb(a.node, bundle)
        ok, text = self.run(a.host, ["systemctl", "show", "-p", "Result", nb.unit])
        if "Result=timeout" in text:
            self.log(f"{a.node}: did not finish its graceful shutdown within {a.grace} s on {a.host} and was "
                     "killed (a KRaft node waits for a quorum that is gone); its logs are recovered on the next start")
            self.run(a.host, ["systemctl", "reset-failed", nb.unit])
        else:
            self.log(f"{a.node}: stopped on {a.host}")

    def _prepare_ops(self, a: PrepareHost, bundle: Bundle, add, notes) -> None:
        from pyinfra.operations import apt, files, server

        h = a.host
        topo = bundle.topo
        for need in a.needs:
            word = need.kind
            if word == "java":
                pkg, mgr = need.what, need.how
                if mgr == "apt":
                    # minimal Debian images drop /usr/share/man/*; the JRE's postinst
                    # (update-alternatives of java.1.gz) then fails without man1
                    add(h, "man1 folder for the JRE's update-alternatives", files.directory,
                        path="/usr/share/man/man1")
                    add(h, f"install {pkg}", apt.packages, packages=[pkg], update=True)
                else:
                    add(h, f"install {pkg}", server.packages, packages=[pkg])
                self.log(f"{h}: installing {pkg} with {mgr}")
            elif word == "user":
                add(h, f"system user {KAFKA_USER}", server.user, user=KAFKA_USER, system=True,
                    shell="/usr/sbin/nologin", ensure_home=False)
            elif word == "kafka":
                home = kafka_home(topo)
                remote_tgz = f"/opt/kops/kafka_2.13-{topo.version}.tgz"
                add(h, "/opt/kops", files.directory, path="/opt/kops", mode="755")
                dl = topo.spec.kafka.download
                if dl:
                    add(h, "download Kafka", server.shell,
                        commands=[_download_script(dl.url, dl.sha512.lower(), remote_tgz)])
                else:
                    tgz, digest = self._distribution(topo.version)
                    add(h, "push Kafka", files.put, src=str(tgz), dest=remote_tgz)
                    add(h, "check the pushed tarball's SHA-512", server.shell,
                        commands=[f"echo {shlex.quote(digest + '  ' + remote_tgz)} | sha512sum -c --status || "
                                  f"{{ rm -f {shlex.quote(remote_tgz)}; echo 'SHA-512 mismatch of the pushed "
                                  "tarball: removed' >&2; exit 1; }"])
                check = shell_line(["test", "-d", f"{home}/libs"])
                add(h, "unpack Kafka", server.shell, commands=[
                    f"tar -xzf {shlex.quote(remote_tgz)} -C /opt/kops && rm -f {shlex.quote(remote_tgz)} && "
                    f"{{ {check} || {{ echo {shlex.quote(f'the tarball has no kafka_2.13-{topo.version}/libs folder')} "
                    ">&2; exit 1; }; }"])
                self.log(f"{h}: installing Kafka {topo.version} in {home} ("
                         + ("downloaded by the host" if dl else "pushed from this machine") + ")")
            elif word == "tools":
                # the launchers of Kafka's tools (kops.tools), over whatever bin/ the distribution has
                home = kafka_home(topo)
                remote_tar = f"/opt/kops/.kops-tools-{topo.version}.tar"
                add(h, "push Kafka's tools", files.put, src=io.BytesIO(tools.tar_bytes(topo.version)), dest=remote_tar)
                add(h, "unpack Kafka's tools", server.shell, commands=[
                    f"tar -xf {shlex.quote(remote_tar)} -C {shlex.quote(home)} && rm -f {shlex.quote(remote_tar)}"])

            elif word == "registry":
                tgz, digest = self._registry_tarball()
                remote = f"/opt/kops/{tgz.name}"
                home = f"/opt/kops/{registry.HOME_NAME}"
                add(h, "/opt/kops", files.directory, path="/opt/kops", mode="755")
                add(h, "push the schema registry", files.put, src=str(tgz), dest=remote)
                check = shell_line(["test", "-f", f"{home}/{registry.RUNNER}"])
                add(h, "check and unpack the schema registry", server.shell, commands=[
                    f"echo {shlex.quote(digest + '  ' + remote)} | sha512sum -c --status || "
                    f"{{ rm -f {shlex.quote(remote)}; echo 'SHA-512 mismatch of the pushed tarball: removed' >&2; "
                    f"exit 1; }}; tar -xzf {shlex.quote(remote)} -C /opt/kops && rm -f {shlex.quote(remote)} && "
                    f"{{ {check} || {{ echo {shlex.quote(f'the tarball has no {registry.RUNNER}')} >&2; exit 1; }}; }}"])
                self.log(f"{h}: installing Apicurio Registry {registry.VERSION} in {home} (pushed from this machine)")

    def _registry_tarball(self) -> tuple[Path, str]:
        with self._lock:
            return registry.tarball(registry.app(log=self.log), paths.cache_dir() / "tarballs")

    def _distribution(self, version: str) -> tuple[Path, str]:
        """The tarball to push and its SHA-512 (a kept tarball is reused only when it still
        matches its digest)."""
        with self._lock:
            d = dist.require(version, log=self.log, extras=dist.needs_extras(self.spec))
            return dist.verified_tarball(d, paths.cache_dir() / "tarballs")

    def _remove_host_ops(self, a: RemoveHost, bundle: Bundle, add, notes) -> None:
        from pyinfra.operations import files, server, systemd

        h, name = a.host, self.spec.name
        for top in ("/etc/kops", "/var/lib/kops", "/var/log/kops"):
            add(h, f"remove {top}/{name}", files.directory, path=f"{top}/{name}", present=False)
        add(h, "remove the login shells' profile", files.file, path=profile_path(bundle.topo), present=False)
        add(h, "systemd daemon-reload", systemd.daemon_reload)
        homes = sorted({nb.layout.home for nb in bundle if nb.node.host_key == h})
        for home in homes:
            # the distribution goes when no kops unit of any cluster still uses it
            add(h, f"remove {home} unless used", server.shell, commands=[
                f"grep -qs {shlex.quote(home)} /etc/systemd/system/kops-*.service || rm -rf {shlex.quote(home)}"])
        add(h, "remove empty kops folders", server.shell,
            commands=["rmdir /etc/kops /var/lib/kops /var/log/kops /opt/kops 2>/dev/null || true"])
        notes.append((h, f"{h}: removed what was left of cluster {name}"))

    # -- logs and node-local probes --------------------------------------------------------

    def read_files(self, node: str, paths: list[str]) -> dict[str, str]:
        nb = self._nb(node)
        out: dict[str, str] = {}
        for path in paths:
            ok, text = self.run(nb.node.host_key, ["cat", path])
            if ok:
                out[path] = text
        return out

    def tail(self, node: str, lines: int = 30) -> str:
        nb = self._nb(node)
        ok, text = self.run(nb.node.host_key, ["journalctl", "-u", nb.unit, "-n", str(lines), "--no-pager",
                                               "-o", "cat"])
        return text if ok else f"(journalctl failed on {nb.node.host_key}: {text[-300:]})"

    def logs(self, nodes: list[str], *, lines: int = 100, since: float | None = None, follow: bool = False,
             prefix: bool = False):
        """journald lines of ``nodes`` (interleaved by time with a node prefix when
        ``prefix``); with ``follow``, new lines as they come, until interrupted."""

        label = _labeller(nodes, prefix)

        def argv(n, fmt):
            nb = self._nb(n)
            cmd = ["journalctl", "-u", nb.unit, "-n", str(lines), "--no-pager", "-o", fmt]
            if since:
                cmd += ["--since", f"@{int(time.time() - since)}"]
            return cmd + (["-f"] if follow else [])

        if not follow:
            # journalctl short-iso-precise: "<time> <host> <unit>[pid]: <message>"
            texts = {n: self.run(self._nb(n).node.host_key, argv(n, "short-iso-precise"))[1]
                     for n in nodes}
            yield from _interleaved(texts, label, prefix, lambda rest: rest.split(": ", 1)[-1])
            return

        def pump(n, out):
            host = self._host(self._nb(n).node.host_key)
            cmd = shell_line(argv(n, "cat"))
            if host.data.get("_sudo"):
                cmd = "sudo -n " + cmd
            _, stdout, _ = host.connector.client.exec_command(cmd)
            for line in stdout:
                out.put(label(n) + line.rstrip("\n"))
        yield from _merged(nodes, pump)

    def exec(self, node: str, argv: list[str], files: dict[str, str] | None = None,
             timeout: float = 180) -> tuple[int, str]:
        h = self._nb(node).node.host_key
        for path, text in (files or {}).items():   # content and path are positional words, never code
            ok, out = self.run(h, shell_line(["sh", "-c", 'printf %s "$1" > "$2" && chmod 0644 "$2"', "kops",
                                              text, path]))
            if not ok:
                return 1, out
        ok, out = self.run(h, ["runuser", "-u", KAFKA_USER, "--", *argv])
        return (0 if ok else 1), out

    def exec_attached(self, node: str, argv: list[str], *, tty: bool, env: dict[str, str] | None = None) -> int:
        """`kops exec`/`kops shell`: ``argv`` on the node's host as the login user (sudo when
        the host says so), in the node's environment with its Kafka tools first on PATH,
        through the system's ssh and the host keys kops verified."""
        import subprocess


        nb = self._nb(node)
        h = self.spec.hosts.get(nb.node.host_key) or self._record_hosts()[nb.node.host_key]
        self.connect()   # verifies the host keys (self._known holds exactly those)
        remote = ssh_remote({**nb.env, **(env or {})}, f"{nb.layout.home}/bin", argv, sudo=h.sudo)
        cmd = ssh_argv(address=h.address, port=h.port, user=h.user,
                       key=str(Path(h.key).expanduser()) if h.key else None, known_hosts=str(self._known),
                       tty=tty, remote=remote)
        return subprocess.call(cmd)

    def zk_srvr(self, node: str) -> str | None:
        n = self._nb(node).node
        if not n.ports.get("client"):
            return None
        try:
            return health.four_letter(n.hostname, n.ports["client"])
        except OSError:
            return None

    def quorum_state(self, node: str) -> dict | None:
        import json

        nb = self._nb(node)
        ok, text = self.run(nb.node.host_key, ["cat", f"{nb.layout.data_dir}/__cluster_metadata-0/quorum-state"])
        try:
            return json.loads(text) if ok else None
        except ValueError:
            return None

    # -- faults (`kops fault`): only on the nodes of the inventory or of kops's record ----------

    def _unit_signal(self, node: str, sig: str) -> None:
        nb = self._nb(node)
        unit = shlex.quote(nb.unit)
        ok, out = self.run(nb.node.host_key, f"pid=$(systemctl show -p MainPID --value {unit}); "
                                             f"[ \"${{pid:-0}}\" -gt 0 ] && kill -{sig} \"$pid\"")
        if not ok:
            raise KopsError(f"{node}: could not send SIG{sig} to {nb.unit} on {nb.node.host_key} (is it running?)",
                            details=out[-500:])

    def kill_node(self, node: str) -> None:
        """SIGKILL the unit's processes (systemd restarts it: Restart=on-failure)."""
        nb = self._nb(node)
        ok, out = self.run(nb.node.host_key, ["systemctl", "kill", "-s", "KILL", nb.unit])
        if not ok:
            raise KopsError(f"{node}: systemctl kill -s KILL {nb.unit} failed on {nb.node.host_key}",
                            details=out[-500:])

    def pause_node(self, node: str) -> None:
        """SIGSTOP the unit's main process (the JVM: every thread of it stops)."""
        self._unit_signal(node, "STOP")

    def resume_node(self, node: str) -> bool:
        """SIGCONT the unit's main process; a unit that is not active is started again."""
        nb = self._nb(node)
        unit = shlex.quote(nb.unit)
        ok, out = self.run(nb.node.host_key,
                           f"if systemctl is-active --quiet {unit}; then pid=$(systemctl show -p MainPID --value "
                           f"{unit}); [ \"${{pid:-0}}\" -gt 0 ] && kill -CONT \"$pid\"; else systemctl start {unit}; fi")
        if not ok:
            raise KopsError(f"{node}: could not resume {nb.unit} on {nb.node.host_key}", details=out[-500:])
        return True

    def node_peers(self, node: str) -> dict[str, str]:
        """The other nodes of the cluster on other hosts -> their host's address (a node on
        the same host shares its network: it cannot be cut off by address)."""
        mine = self._nb(node).node.host_key
        names = set(self._bundle.nodes if self._bundle is not None else ()) | set(self._records())
        out = {}
        for n in sorted(names - {node}):
            key = self._nb(n).node.host_key
            h = self.spec.hosts.get(key) or self._record_hosts().get(key)
            if key != mine and h is not None:
                out[n] = socket.gethostbyname(h.address)
        return out

    def net_script(self, node: str, script: str) -> tuple[int, str]:
        """``script`` (sh) as root on the node's host: its network is the host's (every node
        of that host shares it)."""
        nb = self._nb(node)
        ok, out = self.run(nb.node.host_key, shell_line(["sh", "-c", script]))
        return (0 if ok else 1), out


def _previous(nb: NodeBundle) -> str:
    return f"{nb.layout.conf_dir}/.previous.tar"


def _backup_script(paths: list[str], tar: str) -> str:
    """Tar the files of ``paths`` that exist (paths relative to /), for a rollback."""
    q = shlex.quote
    listed = " ".join(q(p) for p in paths)
    return (f"set --; for p in {listed}; do [ -e \"$p\" ] && set -- \"$@\" \"${{p#/}}\"; done; "
            f"rm -f {q(tar)}; [ $# -eq 0 ] || tar -C / -cf {q(tar)} \"$@\"")


def _download_script(url: str, sha512: str, dest: str) -> str:
    """Download on the host with whatever it has (curl, wget, python3), then check SHA-512:
    a mismatch removes the file and fails the step, so nothing unverified is unpacked."""
    q = shlex.quote
    fetch = (f"if command -v curl >/dev/null; then curl -fsSL -o {q(dest)} {q(url)}; "
             f"elif command -v wget >/dev/null; then wget -q -O {q(dest)} {q(url)}; "
             f"else python3 -c 'import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])' "
             f"{q(url)} {q(dest)}; fi")
    check = (f"echo {q(sha512 + '  ' + dest)} | sha512sum -c --status || "
             f"{{ rm -f {q(dest)}; echo {q(f'SHA-512 mismatch for {url}: the download was removed')} >&2; exit 1; }}")
    failed = f"{{ rm -f {q(dest)}; echo {q(f'download of {url} failed')} >&2; exit 1; }}"
    return f"{{ {fetch}; }} || {failed}; {check}"
