"""The SSH driver: the same rendered files, placed on hosts with pyinfra's Python API.

Every run starts from facts read on the hosts in one round trip each (file checksums,
Java, the distribution, units, KRaft ``meta.properties``), computes what differs from the
rendered bundle, and only then changes anything: pyinfra operations place packages, the
distribution, configs and units; systemd restarts only the services whose files changed,
brokers one at a time behind the readiness gate. A host that cannot be reached stops the
run before any host is changed.
"""

from __future__ import annotations

import io
import logging
import posixpath
import shlex
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .. import dist, health, paths, state
from ..errors import EngineError, KopsError, NotFoundError
from ..render import KAFKA_USER, layout, node_files, systemd_unit, unit_name
from ..topology import Node, Topology, build
from .base import Action, ClusterStatus, Driver, NodeStatus, UpResult

SETTLE = 10.0  # see drivers/docker.py
KRAFT_STOP_GRACE = 40  # see drivers/docker.py
JAVA_PACKAGES = {"apt": "openjdk-17-jre-headless", "dnf": "java-17-openjdk-headless",
                 "yum": "java-17-openjdk-headless"}


@dataclass
class HostFacts:
    sums: dict[str, str] = field(default_factory=dict)      # path -> sha256
    java: str = ""
    dist: bool = False
    kafka_user: bool = False
    units: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # unit -> (active, enabled, since)
    cluster_ids: dict[str, str] = field(default_factory=dict)             # node -> cluster.id
    pkg: str = ""


class _Lines(logging.Handler):
    """Collects pyinfra's warnings and errors (colour codes removed)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record):
        import re

        self.lines.append(re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()))


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


class SSHDriver(Driver):
    def __init__(self, log):
        super().__init__(log)
        self.state = None

    # -- connection ---------------------------------------------------------------------

    def _connect(self, spec):
        """Connect to every host of the spec; name each one that fails and why, change nothing."""
        from pyinfra.api import Config, Inventory, State
        from pyinfra.api.connect import connect_all
        from pyinfra.api.exceptions import PyinfraError
        from pyinfra.api.state import BaseStateCallback

        logging.getLogger("pyinfra").setLevel(logging.CRITICAL)
        problems = []

        def reach(item):
            name, h = item
            try:
                with socket.create_connection((h.address, h.port), timeout=5):
                    return None
            except OSError as exc:
                return f"{name} ({h.address}:{h.port}): cannot open a TCP connection: {exc.strerror or exc}"

        with ThreadPoolExecutor(max_workers=8) as pool:
            problems = [p for p in pool.map(reach, spec.hosts.items()) if p]
        if problems:
            raise EngineError("cannot reach every host; nothing was changed on any host:\n  - "
                              + "\n  - ".join(problems),
                              hint="is the host up, the address right and sshd listening on that port?")
        hosts = []
        for name, h in spec.hosts.items():
            data = {"ssh_user": h.user, "ssh_port": h.port, "ssh_hostname": h.address,
                    "ssh_strict_host_key_checking": "no", "ssh_known_hosts_file": "/dev/null"}
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

        st = State(inventory=Inventory((hosts, {})), config=Config(FAIL_PERCENT=100))
        st.add_callback_handler(_Reasons())
        try:
            connect_all(st)
        except PyinfraError as exc:
            # pyinfra raises "No hosts remaining!" when every host failed: they are named below
            if "No hosts remaining" not in str(exc):
                reasons.setdefault("", str(exc))
        failed = [h.name for h in st.inventory if not h.connected]
        if failed:
            raise EngineError("SSH login failed; nothing was changed on any host:\n  - " + "\n  - ".join(
                f"{n} ({spec.hosts[n].user}@{spec.hosts[n].address}:{spec.hosts[n].port}): login failed: "
                + reasons.get(n, reasons.get("", "key refused")) for n in failed),
                hint="check hosts.<name>.user and .key (ssh -i KEY USER@ADDRESS must log in without a password)")
        self.state = st
        for host in st.inventory:
            ok, out = host.run_shell_command("true", _sudo=spec.hosts[host.name].sudo)
            if not ok:
                raise EngineError(f"{host.name}: sudo failed: {' '.join(out.stderr_lines[-3:])}",
                                  hint="the user needs passwordless sudo, or log in as root")
        return st

    def _disconnect(self):
        from pyinfra.api.connect import disconnect_all

        if self.state is not None:
            disconnect_all(self.state)
            self.state = None

    def _host(self, name):
        return self.state.inventory.get_host(name)

    def _run(self, spec, host_name: str, cmd: str) -> tuple[bool, str]:
        ok, out = self._host(host_name).run_shell_command(cmd, _sudo=spec.hosts[host_name].sudo)
        text = "\n".join(out.stdout_lines if ok else out.stdout_lines + out.stderr_lines)
        return ok, text

    # -- facts --------------------------------------------------------------------------

    def _facts(self, spec, topo: Topology) -> dict[str, HostFacts]:
        def one(host_name):
            nodes = [n for n in topo.nodes if n.host_key == host_name]
            files = [p for n in nodes for p in self._desired(topo, n)]
            units = [unit_name(topo, n) for n in nodes]
            metas = [(n.name, posixpath.join(layout(topo, n).data_dir, "meta.properties"))
                     for n in nodes if n.is_kafka]
            home = layout(topo, nodes[0]).home if nodes else "/nonexistent"
            script = "; ".join([
                *(f"[ -f {shlex.quote(p)} ] && sha256sum {shlex.quote(p)}" for p in files),
                "echo JAVA=$(command -v java || true)",
                f"[ -d {home}/libs ] && echo DIST=yes",
                f"id -u {KAFKA_USER} >/dev/null 2>&1 && echo USER=yes",
                "for p in apt-get dnf yum; do command -v $p >/dev/null && echo PKG=$p && break; done",
                *(f"echo UNIT {u} $(systemctl is-active {u} 2>/dev/null || true) "
                  f"$(systemctl is-enabled {u} 2>/dev/null || true) "
                  f"$(systemctl show -p ActiveEnterTimestampMonotonic --value {u} 2>/dev/null)" for u in units),
                *(f"[ -f {m} ] && echo META {n} $(sed -n 's/^cluster.id=//p' {m})" for n, m in metas),
                "true",
            ])
            ok, text = self._run(spec, host_name, script)
            f = HostFacts()
            for line in text.splitlines():
                parts = line.split()
                if len(parts) == 2 and len(parts[0]) == 64:
                    f.sums[parts[1]] = parts[0]
                elif line.startswith("JAVA="):
                    f.java = line[5:].strip()
                elif line == "DIST=yes":
                    f.dist = True
                elif line == "USER=yes":
                    f.kafka_user = True
                elif line.startswith("PKG="):
                    f.pkg = line[4:].replace("-get", "")
                elif line.startswith("UNIT ") and len(parts) >= 3:
                    f.units[parts[1]] = (parts[2], parts[3] if len(parts) > 3 else "", parts[4] if len(parts) > 4 else "")
                elif line.startswith("META ") and len(parts) == 3:
                    f.cluster_ids[parts[1]] = parts[2]
            return host_name, f

        with ThreadPoolExecutor(max_workers=8) as pool:
            return dict(pool.map(one, list(spec.hosts)))

    def _desired(self, topo: Topology, node: Node) -> dict[str, str]:
        """Remote path -> content, for one node."""
        lay = layout(topo, node)
        out = {}
        for name, text in node_files(topo, node).items():
            out[posixpath.join(lay.conf_dir, name)] = text
        if node.role == "zookeeper":
            out[posixpath.join(lay.data_dir, "myid")] = out[posixpath.join(lay.conf_dir, "myid")]
        out[f"/etc/systemd/system/{unit_name(topo, node)}"] = systemd_unit(topo, node)
        return out

    def _topology(self, spec, facts_cb=None) -> tuple[Topology, dict[str, HostFacts]]:
        # The cluster id lives on the hosts (meta.properties): read it before rendering.
        provisional = build(spec, spec.kafka.cluster_id or state.cluster_id(spec, persist=False)
                            if spec.mode == "kraft" else "n/a")
        facts = self._facts(spec, provisional)
        if spec.mode != "kraft":
            return provisional, facts
        found = sorted({cid for f in facts.values() for cid in f.cluster_ids.values()})
        if len(found) > 1:
            raise KopsError(f"the hosts hold data of different Kafka clusters: {', '.join(found)}",
                            hint="another cluster used these data directories; purge it or change the name")
        if found and spec.kafka.cluster_id and spec.kafka.cluster_id != found[0]:
            raise KopsError(f"kafka.cluster_id {spec.kafka.cluster_id} differs from the id on the hosts ({found[0]})",
                            hint="an existing cluster keeps its id; remove kafka.cluster_id")
        cid = state.cluster_id(spec, found[0] if found else None)
        topo = build(spec, cid)
        if topo.cluster_id != provisional.cluster_id:
            facts = self._facts(spec, topo)
        return topo, facts

    # -- up -----------------------------------------------------------------------------

    def up(self, spec, *, timeout: float, dry_run: bool = False) -> UpResult:
        t0 = time.monotonic()
        deadline = t0 + timeout
        self._connect(spec)
        try:
            topo, facts = self._topology(spec)
            actions, changed_nodes, host_changes = self._plan(spec, topo, facts)
            if dry_run:
                for h, changes in host_changes.items():
                    for c in changes:
                        self.log(f"{h}: would {c}")
                return UpResult(actions, None, time.monotonic() - t0, bool(host_changes) or any(
                    a.action != "unchanged" for a in actions), dry_run=True)
            if not host_changes and all(a.action == "unchanged" for a in actions):
                self.log(f"cluster {spec.name}: every service is running with its current config on every "
                         "host; nothing to change")
                return UpResult(actions, self._status(spec, topo, facts), time.monotonic() - t0, False)
            self._converge(spec, topo, facts, host_changes)
            self._services(spec, topo, facts, actions, changed_nodes, deadline)
            facts = self._facts(spec, topo)
            return UpResult(actions, self._status(spec, topo, facts), time.monotonic() - t0, True)
        finally:
            self._disconnect()

    def _plan(self, spec, topo, facts):
        actions, changed_nodes = [], set()
        host_changes: dict[str, list[str]] = {}
        for h, f in facts.items():
            ch = []
            nodes = [n for n in topo.nodes if n.host_key == h]
            if not nodes:
                continue
            if not f.java:
                ch.append(f"install Java ({JAVA_PACKAGES.get(f.pkg, 'no package manager found')})")
            if not f.kafka_user:
                ch.append(f"create the system user {KAFKA_USER}")
            if not f.dist:
                ch.append(f"install Kafka {topo.version} under {layout(topo, nodes[0]).home}")
            for n in nodes:
                diff = [p for p, text in self._desired(topo, n).items() if f.sums.get(p) != _sha(text)]
                if diff:
                    ch.append(f"write {len(diff)} file(s) of {n.name}: " + ", ".join(posixpath.basename(p) for p in diff))
                    changed_nodes.add(n.name)
            if ch:
                host_changes[h] = ch
        for n in topo.nodes:
            active = facts[n.host_key].units.get(unit_name(topo, n), ("inactive", "", ""))
            if n.name in changed_nodes:
                new = active[0] != "active"
                actions.append(Action(n.name, "create" if new else "restart",
                                      "new service" if new else "rendered files changed"))
            elif active[0] != "active" or active[1] != "enabled":
                actions.append(Action(n.name, "start", f"service is {active[0]}/{active[1] or 'not enabled'}"))
            else:
                actions.append(Action(n.name, "unchanged", "running, files unchanged"))
        return actions, changed_nodes, host_changes

    def _converge(self, spec, topo: Topology, facts, host_changes) -> None:
        from pyinfra.api.operation import add_op
        from pyinfra.api.operations import run_ops
        from pyinfra.operations import files, server

        st = self.state
        dl = spec.kafka.download
        d = self._distribution(topo.version) if not dl and any(not f.dist for f in facts.values()) else None
        for hname, f in facts.items():
            nodes = [n for n in topo.nodes if n.host_key == hname]
            if not nodes or hname not in host_changes:
                continue
            host = self._host(hname)
            if not f.java:
                pkg = JAVA_PACKAGES.get(f.pkg)
                if not pkg:
                    raise KopsError(f"{hname}: no Java and no apt, dnf or yum to install it",
                                    hint="install a Java 17+ runtime on the host, then re-run")
                self.log(f"{hname}: installing {pkg} with {f.pkg}")
                if f.pkg == "apt":
                    from pyinfra.operations import apt

                    # minimal Debian images drop /usr/share/man/*; the JRE's postinst
                    # (update-alternatives of java.1.gz) then fails without man1
                    add_op(st, server.shell, commands=["mkdir -p /usr/share/man/man1"], host=host,
                           name="man1 for the JRE's update-alternatives")
                    add_op(st, apt.packages, packages=[pkg], update=True, host=host,
                           name=f"Install {pkg}")
                else:
                    add_op(st, server.packages, packages=[pkg], host=host, name=f"Install {pkg}")
            add_op(st, server.user, user=KAFKA_USER, system=True, shell="/usr/sbin/nologin",
                   ensure_home=False, host=host, name="kafka user")
            if not f.dist:
                home = layout(topo, nodes[0]).home
                remote_tgz = f"/opt/kops/kafka_2.13-{topo.version}.tgz"
                add_op(st, files.directory, path="/opt/kops", host=host, name="/opt/kops")
                if dl:
                    add_op(st, server.shell, commands=[_download_script(dl.url, dl.sha512.lower(), remote_tgz)],
                           host=host, name="download Kafka")
                else:
                    add_op(st, files.put, src=str(d), dest=remote_tgz, host=host, name="push Kafka")
                add_op(st, server.shell, commands=[
                    f"tar -xzf {remote_tgz} -C /opt/kops && rm -f {remote_tgz} && {{ test -d {home}/libs || "
                    f"{{ echo 'the tarball has no kafka_2.13-{topo.version}/libs folder' >&2; exit 1; }}; }}"],
                    host=host, name="unpack Kafka")
            for n in nodes:
                lay = layout(topo, n)
                add_op(st, files.directory, path=lay.conf_dir, mode="755", host=host, name=f"{n.name} conf")
                for dpath in (lay.data_dir, lay.log_dir):
                    add_op(st, files.directory, path=dpath, user=KAFKA_USER, group=KAFKA_USER, mode="750",
                           host=host, name=f"{n.name} {dpath}")
                for path, text in self._desired(topo, n).items():
                    if f.sums.get(path) == _sha(text):
                        continue
                    owner = {"user": KAFKA_USER, "group": KAFKA_USER} if path.startswith(lay.data_dir) else {}
                    add_op(st, files.put, src=io.StringIO(text), dest=path, mode="644", host=host,
                           name=f"{n.name} {posixpath.basename(path)}", **owner)
            self.log(f"{hname}: " + "; ".join(host_changes[hname]))
        from pyinfra.api.exceptions import PyinfraError

        # pyinfra's log is silenced; keep what it says about a failed step for the error
        pylog, errors = logging.getLogger("pyinfra"), _Lines()
        pylog.addHandler(errors)
        pylog.setLevel(logging.WARNING)
        try:
            run_ops(st)
        except PyinfraError as exc:
            if "No hosts remaining" not in str(exc):  # raised when every host of the run failed
                raise KopsError(f"changes failed: {exc}", details="\n".join(errors.lines[-30:]) or None) from exc
        finally:
            pylog.removeHandler(errors)
            pylog.setLevel(logging.CRITICAL)
        failed = [h.name for h in st.inventory if h in st.failed_hosts]
        if failed:
            raise KopsError(f"changes failed on {', '.join(failed)}",
                            details="\n".join(errors.lines[-30:]) or None,
                            hint="run again with the same inventory; the lines above name the failed step")
        for hname in host_changes:
            if any(n.host_key == hname for n in topo.nodes):
                self._run(spec, hname, "systemctl daemon-reload")

    def _distribution(self, version: str) -> Path:
        d = dist.cached(version)
        if d is None:
            self.log(f"Kafka {version} is not cached on this machine: fetching it (apache)")
            d = dist.fetch(version, "apache", log=self.log)
        out = paths.cache_dir() / "tarballs"
        tgz = out / f"kafka_2.13-{version}.tgz"
        if not tgz.exists():
            dist.tarball(d, out)
        return tgz

    def _systemctl(self, spec, node: Node, topo: Topology, verb: str) -> None:
        unit = unit_name(topo, node)
        ok, text = self._run(spec, node.host_key, f"systemctl {verb} {unit}")
        if not ok:
            raise KopsError(f"{node.name} on {node.host_key}: systemctl {verb} {unit} failed",
                            details=text + "\n" + self._journal(spec, node, topo, 30),
                            hint=f"kops logs {node.name} shows more")

    def _journal(self, spec, node, topo, lines: int) -> str:
        _, text = self._run(spec, node.host_key,
                            f"journalctl -u {unit_name(topo, node)} -n {lines} --no-pager -o cat 2>/dev/null || true")
        return text

    def _services(self, spec, topo, facts, actions, changed_nodes, deadline) -> None:
        act = {a.node: a.action for a in actions}

        def apply(n, action):
            if action == "create" or action == "start":
                self._systemctl(spec, n, topo, "enable --now")
                self.log(f"{n.name}: started on {n.host_key}")
            elif action == "restart":
                self._systemctl(spec, n, topo, "enable")
                self._systemctl(spec, n, topo, "restart")
                self.log(f"{n.name}: restarted on {n.host_key} (files changed)")

        zks = [n for n in topo.zookeepers if act[n.name] != "unchanged"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda n: apply(n, act[n.name]), zks))
        if zks:
            self._wait_zookeeper(spec, topo, deadline)
        kafka = [n for n in topo.nodes if n.is_kafka and act[n.name] != "unchanged"]
        live = any(act[n.name] == "unchanged" for n in topo.nodes if n.is_kafka)
        if not live:
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda n: apply(n, act[n.name]), kafka))
        else:
            # A live cluster: one node at a time, controllers last, each back to ready first.
            for n in sorted(kafka, key=lambda n: n.is_controller):
                apply(n, act[n.name])
                self._wait_kafka(spec, topo, deadline, quiet=True, settle=SETTLE)
        was_live = any(act[n.name] == "unchanged" for n in topo.nodes if n.is_kafka)
        self._wait_kafka(spec, topo, deadline, settle=SETTLE if was_live else 0.0)

    def _fail_fast(self, spec, topo, nodes):
        def check():
            for n in nodes:
                ok, text = self._run(spec, n.host_key, f"systemctl is-failed {unit_name(topo, n)} || true")
                if text.strip() == "failed":
                    raise KopsError(f"{n.name} on {n.host_key}: service {unit_name(topo, n)} failed while starting",
                                    details=self._journal(spec, n, topo, 30),
                                    hint=f"its last log lines are above; `kops logs {n.name}` shows more")
        return check

    def _wait_zookeeper(self, spec, topo, deadline) -> None:
        t0 = time.monotonic()

        def probe():
            modes = {}
            for z in topo.zookeepers:
                try:
                    modes[z.name] = health.zk_mode(health.four_letter(z.hostname, z.ports["client"]))
                except OSError as exc:
                    raise health.NotYet(f"{z.name} ({z.hostname}:{z.ports['client']}): {exc}") from exc
            if not all(modes.values()) or (len(modes) > 1 and list(modes.values()).count("leader") != 1):
                raise health.NotYet(f"modes {modes}")
            return modes

        modes = health.wait_until("the ZooKeeper ensemble", probe, deadline=deadline,
                                  fail_fast=self._fail_fast(spec, topo, topo.zookeepers))
        self.log(f"zookeeper ready in {time.monotonic() - t0:.1f} s: " + ", ".join(f"{k} {v}" for k, v in modes.items()))

    def _wait_kafka(self, spec, topo, deadline, quiet=False, settle: float = 0.0) -> None:
        t0 = time.monotonic()
        want = {b.id for b in topo.brokers}

        def probe():
            h = health.kafka_health(topo.bootstrap_servers, timeout=3)
            if h.error:
                raise health.NotYet(h.error)
            if want - set(h.brokers):
                raise health.NotYet(f"brokers registered {sorted(want & set(h.brokers))} of {sorted(want)}")
            if h.offline or h.under_replicated:
                raise health.NotYet(f"offline {h.offline[:5]}, under-replicated {h.under_replicated[:5]}")
            for b in topo.brokers:
                hb = health.kafka_health(topo.external_address(b), timeout=3)
                if hb.error or not hb.brokers:
                    raise health.NotYet(f"{b.name} does not answer on {topo.external_address(b)}")
            return h, health.round_trip(topo.bootstrap_servers, min(3, len(want)), timeout=15)

        _, secs = health.wait_until("Kafka to be ready", probe, deadline=deadline, settle=settle,
                                    fail_fast=self._fail_fast(spec, topo, [n for n in topo.nodes if n.is_kafka]))
        if not quiet:
            self.log(f"kafka ready in {time.monotonic() - t0:.1f} s: {len(want)} broker(s) registered, "
                     f"produce/consume round trip {secs * 1000:.0f} ms")

    # -- status ---------------------------------------------------------------------------

    def status(self, spec=None, name: str | None = None) -> ClusterStatus:
        if spec is None:
            raise KopsError("the SSH driver needs the inventory (-i FILE) to find a cluster's hosts")
        self._connect(spec)
        try:
            topo, facts = self._topology(spec)
            return self._status(spec, topo, facts)
        finally:
            self._disconnect()

    def _status(self, spec, topo: Topology, facts) -> ClusterStatus:
        kh = health.kafka_health(topo.bootstrap_servers, timeout=4)
        nodes, problems = [], []
        for n in topo.nodes:
            active, enabled, _since = facts[n.host_key].units.get(unit_name(topo, n), ("missing", "", ""))
            addrs = {}
            if n.role == "zookeeper":
                addrs = {"host": f"{n.hostname}:{n.ports['client']}"}
                try:
                    hs = health.zk_mode(health.four_letter(n.hostname, n.ports["client"])) or "no answer"
                except OSError:
                    hs = "no answer"
                ok = hs in ("leader", "follower", "standalone")
            else:
                if n.is_broker:
                    addrs = {"host": topo.external_address(n), "network": f"{n.hostname}:{n.ports['internal']}"}
                    hs = "registered" if n.id in kh.brokers else "not registered"
                    ok = n.id in kh.brokers
                else:
                    hs, ok = ("running" if active == "active" else ""), active == "active"
            ok = ok and active == "active"
            if not ok:
                problems.append(f"{n.name} on {n.host_key}: service {active}" + (f", {hs}" if hs else ""))
            nodes.append(NodeStatus(n.name, n.role, n.id, active, addrs, hs, ok, _since or None, n.host_key))
        if kh.error and any(a.state == "active" for a in nodes if a.role != "zookeeper"):
            problems.append(f"kafka: {kh.error}")
        if kh.offline:
            problems.append(f"kafka: {len(kh.offline)} offline partition(s): {', '.join(kh.offline[:5])}")
        if kh.under_replicated:
            problems.append(f"kafka: {len(kh.under_replicated)} under-replicated partition(s)")
        if not any(x.state == "active" for x in nodes):
            st = "stopped" if any(x.state not in ("missing", "") for x in nodes) else "not-found"
        else:
            st = "healthy" if not problems else "degraded"
        k = kh.as_dict()
        k["brokers_expected"] = len(topo.brokers)
        return ClusterStatus(spec.name, "ssh", topo.mode, topo.version, nodes, k, st, problems, topo.bootstrap_servers)

    # -- down, logs ---------------------------------------------------------------------

    def down(self, spec=None, name: str | None = None, purge: bool = False) -> list[str]:
        if spec is None:
            raise KopsError("the SSH driver needs the inventory (-i FILE) to find a cluster's hosts")
        self._connect(spec)
        try:
            topo = build(spec, "n/a")  # paths and unit names do not depend on the id
            stopped = []
            for group in (topo.brokers, [c for c in topo.controllers if c.role == "controller"], topo.zookeepers):
                def stop(n):
                    unit = unit_name(topo, n)
                    grace = KRAFT_STOP_GRACE if spec.mode == "kraft" and n.is_kafka else 0
                    stop_cmd = (f"systemctl stop {unit}" if not grace else
                                f"{{ timeout {grace} systemctl stop {unit} || {{ systemctl kill -s KILL {unit}; "
                                f"systemctl stop {unit}; systemctl reset-failed {unit}; echo KILLED; }}; }}")
                    ok, text = self._run(spec, n.host_key, f"systemctl is-active {unit} >/dev/null 2>&1 && "
                                                           f"{stop_cmd} && echo STOPPED || true")
                    if "KILLED" in text:
                        self.log(f"{n.name}: did not finish its controlled shutdown within {grace} s on "
                                 f"{n.host_key} and was killed (no KRaft quorum left to acknowledge it); "
                                 "its logs are recovered on the next start")
                    if "STOPPED" in text:
                        if "KILLED" not in text:
                            self.log(f"{n.name}: stopped on {n.host_key}")
                        return n.name
                    return None
                # All of a group at once: KRaft brokers need the controllers' quorum to finish
                # a controlled shutdown, so the nodes must not leave one by one (the last
                # one alone would wait minutes for a quorum that is gone).
                with ThreadPoolExecutor(max_workers=8) as pool:
                    stopped += [x for x in pool.map(stop, group) if x]
            if purge:
                for hname in spec.hosts:
                    nodes = [n for n in topo.nodes if n.host_key == hname]
                    if not nodes:
                        continue
                    cmds = []
                    for n in nodes:
                        lay, unit = layout(topo, n), unit_name(topo, n)
                        cmds += [f"systemctl disable {unit} >/dev/null 2>&1 || true",
                                 f"rm -f /etc/systemd/system/{unit}",
                                 f"rm -rf {lay.conf_dir} {lay.data_dir} {lay.log_dir}"]
                    # everything under the cluster's folders is the cluster's (a broker's data dir is
                    # <node>/data, so rmdir of the cluster folder would leave <node>/ behind)
                    cmds += [f"rm -rf /etc/kops/{spec.name} /var/lib/kops/{spec.name} /var/log/kops/{spec.name}",
                             "systemctl daemon-reload",
                             # the distribution goes when no kops unit of any cluster still uses it
                             f"grep -qs {layout(topo, nodes[0]).home} /etc/systemd/system/kops-*.service || "
                             f"rm -rf {layout(topo, nodes[0]).home}",
                             "rmdir /etc/kops /var/lib/kops /var/log/kops /opt/kops 2>/dev/null || true"]
                    self._run(spec, hname, " ; ".join(cmds))
                    self.log(f"{hname}: removed kops units, configs, data and logs of {spec.name}")
                state.forget(spec.name)
            return stopped
        finally:
            self._disconnect()

    def restart_node(self, spec, node: str) -> None:
        topo = build(spec, "n/a")
        n = topo.node(node)
        self._connect(spec)
        try:
            self._systemctl(spec, n, topo, "restart")
        finally:
            self._disconnect()

    def logs(self, spec=None, name: str | None = None, node: str = "", tail: int = 100) -> str:
        if spec is None:
            raise KopsError("the SSH driver needs the inventory (-i FILE)")
        topo = build(spec, "n/a")
        try:
            n = topo.node(node)
        except KeyError:
            raise NotFoundError(f"cluster {spec.name} has no node {node!r}",
                                hint="nodes: " + ", ".join(x.name for x in topo.nodes)) from None
        self._connect(spec)
        try:
            return self._journal(spec, n, topo, tail) + "\n"
        finally:
            self._disconnect()


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
