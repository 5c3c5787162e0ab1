"""The Docker driver: one cluster = one bridge network, one container and one named volume
per node, all found again by their ``io.kops.cluster`` label (no state file).

Containers get their rendered files through ``put_archive`` (no bind mounts of local
paths), so a remote engine (``DOCKER_HOST=ssh://`` or ``tcp://``) works as well.
"""

from __future__ import annotations

import errno
import io
import os
import socket
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor

from .. import health, state
from ..errors import EngineError, InputError, KopsError, NotFoundError
from ..render import LABEL, container_plan
from ..topology import Topology, build
from .base import Action, ClusterStatus, Driver, NodeStatus, UpResult

# Seconds a restarted cluster must stay ready before `up` says so (the controller may not
# have seen a killed broker's new incarnation yet when metadata first looks whole).
SETTLE = 10.0
# A KRaft broker's controlled shutdown needs a controller quorum; when a whole cluster
# stops, the last nodes may have none and would wait minutes. Past this grace: SIGKILL.
KRAFT_STOP_GRACE = 40
ROLE_ORDER = {"zookeeper": 0, "controller": 1, "combined": 2, "broker": 2}


def _tar(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, text in files.items():
            data = text.encode()
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, int(time.time())
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class DockerDriver(Driver):
    def __init__(self, log):
        super().__init__(log)
        self._cli = None

    @property
    def cli(self):
        if self._cli is None:
            from .. import engine

            self._cli = engine.client(timeout=180)
        return self._cli

    # -- discovery ----------------------------------------------------------------------

    def containers(self, name: str) -> dict:
        found = self.cli.containers.list(all=True, filters={"label": f"{LABEL}.cluster={name}"})
        return {c.labels.get(f"{LABEL}.node", c.name): c for c in found}

    def clusters(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for c in self.cli.containers.list(all=True, filters={"label": f"{LABEL}.cluster"}):
            out.setdefault(c.labels[f"{LABEL}.cluster"], []).append(c)
        return out

    def _topology(self, spec, existing: dict, persist: bool) -> Topology:
        found = next((c.labels.get(f"{LABEL}.cluster-id") for c in existing.values()
                      if c.labels.get(f"{LABEL}.cluster-id")), None)
        if spec.mode != "kraft":
            return build(spec, "n/a")
        if spec.kafka.cluster_id and found and spec.kafka.cluster_id != found:
            raise InputError(f"kafka.cluster_id: {spec.kafka.cluster_id!r} differs from the id of the "
                             f"running cluster {spec.name!r} ({found})",
                             hint="an existing cluster keeps its id: remove kafka.cluster_id, or "
                                  "`kops down --purge` first (deletes its data)")
        return build(spec, state.cluster_id(spec, found, persist=persist))

    # -- up -----------------------------------------------------------------------------

    def plan(self, spec, persist: bool = True):
        existing = self.containers(spec.name)
        topo = self._topology(spec, existing, persist)
        plans = {n.name: container_plan(topo, n) for n in topo.nodes}
        actions = []
        for n in topo.nodes:
            c, p = existing.get(n.name), plans[n.name]
            if c is None:
                actions.append(Action(n.name, "create", "new node"))
            elif c.labels.get(f"{LABEL}.config-hash") != p["labels"][f"{LABEL}.config-hash"]:
                actions.append(Action(n.name, "recreate", "rendered config or image changed; data volume kept"))
            elif c.status != "running":
                actions.append(Action(n.name, "start", f"container is {c.status}"))
            else:
                actions.append(Action(n.name, "unchanged", "running, config unchanged"))
        for name in sorted(set(existing) - set(plans)):
            actions.append(Action(name, "orphan", "not in the inventory: left alone "
                                  "(kops down --purge removes the whole cluster)"))
        return topo, plans, existing, actions

    def up(self, spec, *, timeout: float, dry_run: bool = False) -> UpResult:
        t0 = time.monotonic()
        deadline = t0 + timeout
        topo, plans, existing, actions = self.plan(spec, persist=not dry_run)
        todo = [a for a in actions if a.action in ("create", "recreate", "start")]
        if todo:
            self._check_ports(plans, todo, existing)
            self._check_image(spec, build_missing=not dry_run)
        if dry_run:
            return UpResult(actions, None, time.monotonic() - t0, bool(todo), dry_run=True)
        if not todo:
            self.log(f"cluster {spec.name}: every node is running with its current config; nothing to change")
            st = self.status(spec)
            return UpResult(actions, st, time.monotonic() - t0, False)
        net = self._network(spec.name)
        by_action = {a.node: a.action for a in actions}
        zks = [n for n in topo.zookeepers if by_action[n.name] != "unchanged"]
        zk_started = None
        if zks:
            zk_started = time.time()
            self._parallel(lambda n: self._apply(topo, n, plans[n.name], by_action[n.name], existing, net), zks)
            self._wait_zookeeper(topo, deadline)
        kafka = [n for n in topo.nodes if n.is_kafka and by_action[n.name] != "unchanged"]
        if topo.mode == "zookeeper":
            self._await_zk_sessions(topo, kafka, existing, zk_started, deadline)
        fresh = [n for n in kafka if by_action[n.name] in ("create", "start")]
        rolling = [n for n in kafka if by_action[n.name] == "recreate"]
        if fresh:
            self._parallel(lambda n: self._apply(topo, n, plans[n.name], by_action[n.name], existing, net), fresh)
        if rolling and (fresh or len(rolling) == len(topo.of("broker", "combined", "controller"))):
            # Nothing is serving yet (or everything changes at once): no roll needed.
            self._parallel(lambda n: self._apply(topo, n, plans[n.name], "recreate", existing, net), rolling)
            rolling = []
        # Changed nodes of a live cluster: one at a time, controllers last, each back to ready.
        for n in sorted(rolling, key=lambda n: n.is_controller):
            self.log(f"{n.name}: config changed; recreating it (data kept), then waiting for the cluster")
            self._apply(topo, n, plans[n.name], "recreate", existing, net)
            self._wait_kafka(topo, deadline, quiet=True, settle=SETTLE)
        # Nodes of a cluster that was already serving came back: make sure it stays whole.
        was_live = any(by_action[n.name] == "unchanged" for n in topo.nodes if n.is_kafka)
        self._wait_kafka(topo, deadline, settle=SETTLE if was_live else 0.0)
        st = self.status(spec)
        return UpResult(actions, st, time.monotonic() - t0, True)

    def _await_zk_sessions(self, topo: Topology, nodes, existing: dict, zk_started: float | None,
                           deadline: float) -> None:
        """A ZooKeeper-mode broker that died without closing its session (docker kill, OOM)
        leaves /brokers/ids/<id> behind until ZooKeeper expires the session; started before
        that, it exits at once ("node already exists"). Wait for the expiry: until the other
        brokers stop listing the id, at most the session timeout after the death (or after
        ZooKeeper restarted, which restores the sessions it had)."""
        waits = {}
        for n in nodes:
            c = existing.get(n.name)
            st = (c.attrs.get("State") or {}) if c is not None else {}
            if c is None or c.status not in ("exited", "dead") or (
                    st.get("ExitCode") in (0, 143) and not st.get("OOMKilled")):
                continue  # new, or stopped cleanly (SIGTERM): its session was closed
            died = _epoch(st.get("FinishedAt"))
            if died is None:
                continue
            session = float(n.config.get("zookeeper.session.timeout.ms", 18000)) / 1000
            base = max(died, zk_started or 0.0)
            waits[n.name] = (n.id, base + session + 3.0, st.get("ExitCode"))  # + a ZooKeeper tick
        until = max((w[1] for w in waits.values()), default=0.0)
        if until <= time.time():
            return
        names = ", ".join(f"{k} (exit code {w[2]})" for k, w in sorted(waits.items()))
        self.log(f"{names} stopped without closing its ZooKeeper session: waiting up to "
                 f"{until - time.time():.0f} s for the session to expire, so it can register again")
        ids = {w[0] for w in waits.values()}
        while time.time() < until and time.monotonic() < deadline:
            h = health.kafka_health(topo.bootstrap_servers, timeout=2)
            if not h.error and h.brokers and not ids & set(h.brokers):
                return  # the controller saw the registrations go: the sessions are gone
            time.sleep(1)

    def _check_image(self, spec, build_missing: bool) -> None:
        import docker

        ref = spec.kafka.image_ref
        try:
            self.cli.images.get(ref)
            return
        except docker.errors.ImageNotFound:
            pass
        from .. import dist, images

        hint = (f"build it: kops image build {spec.kafka.version} "
                f"(offline: --base kops-base:bookworm-jre17 after scripts/build-base-image.sh)")
        if spec.kafka.image or not build_missing:
            raise KopsError(f"image {ref} is not on the Docker engine", hint=hint)
        d = dist.cached(spec.kafka.version)
        if d is None:
            raise KopsError(f"image {ref} is not on the Docker engine and Kafka {spec.kafka.version} "
                            "is not in the distribution cache", hint=hint)
        base = os.environ.get("KOPS_BASE_IMAGE", images.DEFAULT_BASE)
        self.log(f"image {ref} missing: building it from the cached distribution on {base}")
        images.ensure(d, base=base, tag=ref, log=self.log)

    def _port_holders(self) -> dict[int, str]:
        held = {}
        for c in self.cli.containers.list():
            for binds in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
                for b in binds or []:
                    if b.get("HostPort"):
                        held[int(b["HostPort"])] = c.name
        return held

    def _check_ports(self, plans: dict, todo: list[Action], existing: dict) -> None:
        held = self._port_holders()
        local = not os.environ.get("DOCKER_HOST", "").startswith(("tcp://", "ssh://"))
        problems = []
        for a in todo:
            mine = existing.get(a.node)
            for _ip, hport in plans[a.node]["ports"].values():
                holder = held.get(hport)
                if holder and not (mine is not None and holder == mine.name):
                    problems.append(f"port {hport} (for {a.node}) is taken by container {holder}")
                elif not holder and local and not _port_free(hport):
                    problems.append(f"port {hport} (for {a.node}) is taken by another process on "
                                    f"this machine{_who_listens(hport)}")
        if problems:
            raise InputError("host ports are not free; nothing was created:\n  - " + "\n  - ".join(problems),
                             hint="stop what holds them, or give this cluster other ports "
                                  "(brokers.external_port, brokers.docker_port, zookeeper.client_port) "
                                  "and another name")

    def _network(self, name: str):
        net_name = f"kops-{name}"
        nets = self.cli.networks.list(filters={"label": f"{LABEL}.cluster={name}"})
        if nets:
            return nets[0]
        # No subnet given: the engine picks a free one, so clusters never overlap.
        return self.cli.networks.create(net_name, driver="bridge", labels={f"{LABEL}.cluster": name},
                                        check_duplicate=True)

    def _volume(self, name: str, node: str, vol: str):
        import docker

        try:
            return self.cli.volumes.get(vol)
        except docker.errors.NotFound:
            return self.cli.volumes.create(vol, labels={f"{LABEL}.cluster": name, f"{LABEL}.node": node})

    def _apply(self, topo: Topology, node, plan: dict, action: str, existing: dict, net) -> None:
        import docker

        try:
            self._apply_one(topo, node, plan, action, existing, net)
        except docker.errors.APIError as exc:
            # e.g. a host port taken between the port check and the start (another cluster)
            raise KopsError(f"{node.name}: the Docker engine refused to {action} {plan['name']}: "
                            f"{exc.explanation or exc}",
                            hint="if a port is named, something took it after kops checked it: free "
                                 "it (docker ps, ss -ltnp) and run `kops up` again; it starts what is "
                                 "missing") from exc

    def _apply_one(self, topo: Topology, node, plan: dict, action: str, existing: dict, net) -> None:
        c = existing.get(node.name)
        if action == "start":
            c.start()
            self.log(f"{node.name}: started")
            return
        if action == "recreate" and c is not None:
            c.stop(timeout=plan["stop_timeout"])
            c.remove(v=True)  # v: the image's anonymous volumes; the named data volume stays
            self.log(f"{node.name}: stopped and removed the old container (volume {plan['volume']} kept)")
        self._volume(topo.name, node.name, plan["volume"])
        api = self.cli.api
        host_config = api.create_host_config(
            binds={plan["volume"]: {"bind": plan["data_mount"], "mode": "rw"}},
            port_bindings={cport: (ip, hport) for cport, (ip, hport) in plan["ports"].items()},
            extra_hosts={"host.docker.internal": "host-gateway"},
        )
        net_config = api.create_networking_config({net.name: api.create_endpoint_config(aliases=[node.name])})
        created = api.create_container(
            plan["image"], command=plan["command"], name=plan["name"], hostname=plan["hostname"],
            labels=plan["labels"], ports=[int(p.split("/")[0]) for p in plan["ports"]],
            host_config=host_config, networking_config=net_config, stop_signal="SIGTERM",
            stop_timeout=plan["stop_timeout"],
            healthcheck={"test": plan["healthcheck"], "interval": 2_000_000_000,
                         "timeout": 5_000_000_000, "retries": 60},
        )
        container = self.cli.containers.get(created["Id"])
        container.put_archive(plan["conf_dir"], _tar(plan["files"]))
        container.start()
        existing[node.name] = container
        self.log(f"{node.name}: created and started ({plan['name']})")

    @staticmethod
    def _parallel(fn, items) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(items))) as pool:
            for f in [pool.submit(fn, i) for i in items]:
                f.result()

    # -- waits ------------------------------------------------------------------------

    def _fail_fast(self, topo: Topology, nodes=None):
        """Raise when one of ``nodes`` (default: all of the topology) has exited."""
        names = {n.name for n in (nodes if nodes is not None else topo.nodes)}

        def check():
            for name, c in self.containers(topo.name).items():
                if name in names and c.status in ("exited", "dead"):
                    code = c.attrs.get("State", {}).get("ExitCode")
                    raise KopsError(f"{name} ({c.name}) exited with code {code} while starting",
                                    details=_tail(c, 30),
                                    hint=f"its last log lines are above; `kops logs {name}` shows more")
        return check

    def _zk_mode(self, container, port: int) -> str | None:
        # Not `echo srvr | nc`: Debian's nc may quit on stdin EOF before ZooKeeper answers
        # (an empty reply, exit 0: "no answer" on a healthy node). bash reads to the close.
        res = container.exec_run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf srvr >&3 "
                                                "&& timeout 5 cat <&3"])
        return health.zk_mode(res.output.decode(errors="replace")) if res.exit_code == 0 else None

    def _wait_zookeeper(self, topo: Topology, deadline: float) -> None:
        t0 = time.monotonic()

        def probe():
            cs = self.containers(topo.name)
            modes = {z.name: self._zk_mode(cs[z.name], z.ports["client"]) for z in topo.zookeepers}
            missing = [n for n, m in modes.items() if not m]
            if missing:
                raise health.NotYet(f"no quorum answer yet from {', '.join(missing)}")
            if len(modes) > 1 and list(modes.values()).count("leader") != 1:
                raise health.NotYet(f"modes {modes}")
            return modes

        modes = health.wait_until("the ZooKeeper ensemble", probe, deadline=deadline,
                                  fail_fast=self._fail_fast(topo, topo.zookeepers),
                                  describe=lambda: self._describe_tails(topo, "zookeeper"))
        self.log(f"zookeeper ready in {time.monotonic() - t0:.1f} s: "
                 + ", ".join(f"{k} {v}" for k, v in modes.items()))

    def _wait_kafka(self, topo: Topology, deadline: float, quiet: bool = False, settle: float = 0.0) -> None:
        t0 = time.monotonic()
        want = {b.id for b in topo.brokers}
        seen = {"n": -1}

        def probe():
            h = health.kafka_health(topo.bootstrap_servers, timeout=3)
            if h.error:
                raise health.NotYet(h.error)
            have = want & set(h.brokers)
            if len(have) != seen["n"] and not quiet:
                seen["n"] = len(have)
                self.log(f"brokers registered {len(have)}/{len(want)}")
            if have != want:
                raise health.NotYet(f"brokers registered {sorted(have)} of {sorted(want)}")
            if h.controller is None:
                raise health.NotYet("no active controller yet")
            if h.offline:
                raise health.NotYet(f"offline partitions: {', '.join(h.offline[:5])}")
            if h.under_replicated:
                raise health.NotYet(f"under-replicated partitions: {', '.join(h.under_replicated[:5])}")
            for b in topo.brokers:  # every broker answers on its own advertised address
                hb = health.kafka_health(topo.external_address(b), timeout=3)
                if hb.error or not hb.brokers:
                    raise health.NotYet(f"{b.name} does not answer on {topo.external_address(b)}")
            secs = health.round_trip(topo.bootstrap_servers, min(3, len(want)), timeout=15)
            return h, secs

        h, secs = health.wait_until("Kafka to be ready", probe, deadline=deadline, settle=settle,
                                    fail_fast=self._fail_fast(topo),
                                    describe=lambda: self._describe_tails(topo, "kafka"))
        if not quiet:
            ctl = f", controller {h.controller}" if topo.mode == "zookeeper" else ""
            self.log(f"kafka ready in {time.monotonic() - t0:.1f} s: {len(want)} broker(s) registered{ctl}, "
                     f"produce/consume round trip {secs * 1000:.0f} ms")

    def _describe_tails(self, topo: Topology, kind: str) -> str:
        out = []
        for name, c in sorted(self.containers(topo.name).items()):
            is_zk = c.labels.get(f"{LABEL}.role") == "zookeeper"
            if (kind == "zookeeper") == is_zk:
                out.append(f"--- {name} ({c.status}), last lines:\n{_tail(c, 12)}")
        return "\n".join(out)

    # -- status -------------------------------------------------------------------------

    def status(self, spec=None, name: str | None = None) -> ClusterStatus:
        name = spec.name if spec else name
        cs = self.containers(name)
        mode = spec.mode if spec else next((c.labels.get(f"{LABEL}.mode") for c in cs.values()), "?")
        version = spec.kafka.version if spec else next((c.labels.get(f"{LABEL}.kafka-version") for c in cs.values()), "?")
        if not cs:
            return ClusterStatus(name, "docker", mode, version, [], {}, "not-found",
                                 [f"no containers with label {LABEL}.cluster={name}"])
        expected = {}
        if spec:
            topo = build(spec, "n/a" if spec.mode != "kraft" else (state.cluster_id(spec, persist=False)))
            expected = {n.name: n for n in topo.nodes}
        brokers = {c.labels[f"{LABEL}.node"]: c for c in cs.values() if c.labels.get(f"{LABEL}.external")}
        bootstrap = ",".join(c.labels[f"{LABEL}.external"] for _, c in sorted(brokers.items()))
        running = {n for n, c in cs.items() if c.status == "running"}

        def zk_probe(item):
            n, c = item
            if c.status != "running":
                return n, None
            try:
                return n, self._zk_mode(c, int(c.labels.get(f"{LABEL}.client-port", "2181")))
            except Exception:  # noqa: BLE001
                return n, None

        zks = [(n, c) for n, c in cs.items() if c.labels.get(f"{LABEL}.role") == "zookeeper"]
        live_brokers = [c for n, c in sorted(brokers.items()) if c.status == "running"]
        with ThreadPoolExecutor(max_workers=4) as pool:
            kh_f = pool.submit(health.kafka_health, bootstrap, 4) if live_brokers else None
            voters = [c for c in cs.values() if c.status == "running"
                      and c.labels.get(f"{LABEL}.role") in ("controller", "combined")]
            q_f = pool.submit(self._quorum_fast, voters, live_brokers) if voters and mode == "kraft" else None
            zk_modes = dict(pool.map(zk_probe, zks))
            kh = kh_f.result() if kh_f else health.KafkaHealth(error="no broker is running")
            quorum = q_f.result() if q_f else {}
        nodes, problems = [], []
        if mode == "kraft" and live_brokers:
            # In KRaft, clients are shown a random broker as "controller": the quorum leader is the truth.
            kh.controller = quorum.get("leader")
            if kh.controller is None:
                alive = sum(1 for c in cs.values() if c.status == "running"
                            and c.labels.get(f"{LABEL}.role") in ("controller", "combined"))
                problems.append(f"kraft: the controller quorum has no leader ({alive} voter(s) running)")
        for n, c in sorted(cs.items(), key=lambda kv: (ROLE_ORDER.get(kv[1].labels.get(f"{LABEL}.role"), 9), kv[0])):
            role = c.labels.get(f"{LABEL}.role", "?")
            nid = int(c.labels.get(f"{LABEL}.node-id", "0"))
            addrs = {}
            if role == "zookeeper":
                port = c.labels.get(f"{LABEL}.client-port", "2181")
                addrs = {"host": f"127.0.0.1:{port}", "network": f"{n}:{port}"}
                zmode = zk_modes.get(n)
                hs, ok = (zmode or "no answer"), zmode in ("leader", "follower", "standalone")
            else:
                if c.labels.get(f"{LABEL}.external"):
                    addrs = {"host": c.labels[f"{LABEL}.external"], "network": c.labels[f"{LABEL}.internal"],
                             "containers": c.labels[f"{LABEL}.docker"]}
                    if c.labels.get(f"{LABEL}.jmx"):
                        addrs["jmx"] = c.labels[f"{LABEL}.jmx"]
                parts, ok = [], True
                if c.status != "running":
                    parts, ok = [], False
                elif role in ("broker", "combined"):
                    reg = nid in kh.brokers
                    parts.append("registered" if reg else "not registered")
                    ok = reg
                if c.status == "running" and role in ("controller", "combined") and quorum:
                    lag = quorum.get("lag", {}).get(nid)
                    parts.append("active controller" if kh.controller == nid else
                                 ("voter" + (f", lag {lag}" if lag else "") if nid in quorum.get("voters", ())
                                  else "not a voter"))
                    if role == "controller":
                        ok = nid in quorum.get("voters", ())
                elif c.status == "running" and role in ("controller", "combined") and kh.controller == nid:
                    parts.append("active controller")
                hs = ", ".join(parts) or ("running" if c.status == "running" else "")
                if role == "controller" and not quorum:
                    ok = c.status == "running"
            ok = ok and c.status == "running"
            if not ok:
                code = (c.attrs.get("State") or {}).get("ExitCode")
                why = (f" (exit code {code}{', OOM-killed' if c.attrs['State'].get('OOMKilled') else ''}; "
                       f"kops logs {n})") if c.status == "exited" else ""
                problems.append(f"{n}: {c.status}{why}" + (f", {hs}" if hs and c.status == "running" else ""))
            started = c.attrs.get("State", {}).get("StartedAt")
            nodes.append(NodeStatus(n, role, nid, c.status, addrs, hs, ok, started, c.name))
        for n in sorted(set(expected) - set(cs)):
            node = expected[n]
            problems.append(f"{n}: missing (in the inventory, no container)")
            nodes.append(NodeStatus(n, node.role, node.id, "missing", {}, "", False, None, ""))
        if brokers and running & set(brokers):
            if kh.error:
                problems.append(f"kafka: {kh.error}")
            else:
                if kh.controller is None and mode != "kraft":  # KRaft: reported above
                    problems.append("kafka: no active controller")
                if kh.offline:
                    problems.append(f"kafka: {len(kh.offline)} offline partition(s): {', '.join(kh.offline[:5])}")
                if kh.under_replicated:
                    problems.append(f"kafka: {len(kh.under_replicated)} under-replicated partition(s): "
                                    f"{', '.join(kh.under_replicated[:5])}")
        if not running:
            st = "stopped"
        else:
            st = "healthy" if not problems else "degraded"
        kafka = kh.as_dict()
        kafka["brokers_expected"] = len(brokers)
        return ClusterStatus(name, "docker", mode, version, nodes, kafka, st, problems, bootstrap)

    def _quorum_fast(self, voters: list, live_brokers: list) -> dict:
        """The KRaft leader as the voters record it in ``quorum-state`` (a file read, no JVM):
        the highest epoch that the running voters agree on. Falls back to MetadataQuorumCommand."""
        import json as _json

        def read(c):
            res = c.exec_run(["cat", "/var/lib/kafka/data/__cluster_metadata-0/quorum-state"])
            try:
                return _json.loads(res.output) if res.exit_code == 0 else None
            except ValueError:
                return None

        with ThreadPoolExecutor(max_workers=len(voters)) as pool:
            states = [s for s in pool.map(read, voters) if s]
        known = [(s.get("leaderEpoch", -1), s.get("leaderId", -1)) for s in states if s.get("leaderId", -1) >= 0]
        if known and len(states) == len(voters):
            epoch, leader = max(known)
            ids = {v["voterId"] for s in states for v in s.get("currentVoters") or [] if "voterId" in v}
            ids = ids or {int(c.labels.get(f"{LABEL}.node-id", "-1")) for c in voters}
            # a majority of the configured voters must be running for the leader to lead
            return {"leader": leader if 2 * len(voters) > len(ids) else None, "voters": ids, "epoch": epoch}
        return self._quorum(live_brokers[0]) if live_brokers else {}

    def _quorum(self, broker_container) -> dict:
        """KRaft quorum as MetadataQuorumCommand reports it, run inside a broker container."""
        import json as _json
        import re

        internal = broker_container.labels.get(f"{LABEL}.internal")
        res = broker_container.exec_run(
            ["sh", "-c", "java -Xmx128m -cp '/opt/kafka/libs/*' org.apache.kafka.tools.MetadataQuorumCommand "
                         f"--bootstrap-server {internal} describe --status 2>/dev/null"])
        text = res.output.decode(errors="replace")
        if res.exit_code != 0:
            return {}
        out: dict = {"voters": set(), "lag": {}}
        m = re.search(r"^LeaderId:\s+(-?\d+)", text, re.M)
        out["leader"] = int(m.group(1)) if m and int(m.group(1)) >= 0 else None
        m = re.search(r"^CurrentVoters:\s+(.*)$", text, re.M)
        if m:
            try:
                out["voters"] = {v["id"] if isinstance(v, dict) else int(v) for v in _json.loads(m.group(1))}
            except ValueError:
                out["voters"] = {int(x) for x in re.findall(r"\d+", m.group(1))}
        return out

    # -- down, logs ---------------------------------------------------------------------

    def down(self, spec=None, name: str | None = None, purge: bool = False) -> list[str]:
        name = spec.name if spec else name
        cs = self.containers(name)
        done = []
        groups: dict[int, list] = {}
        for n, c in cs.items():
            rank = {"broker": 0, "combined": 0, "controller": 1, "zookeeper": 2}.get(c.labels.get(f"{LABEL}.role"), 0)
            groups.setdefault(rank, []).append((n, c))
        for rank in sorted(groups):
            running = [(n, c) for n, c in groups[rank] if c.status in ("running", "restarting", "paused")]
            if running:
                # All at once: a KRaft broker's controlled shutdown needs the quorum, which
                # stopping them one by one would take away from the last ones.
                self._parallel(lambda nc: self._stop(nc[0], nc[1]), running)
                done += [n for n, _ in running]
        if purge:
            for n, c in cs.items():
                c.remove(force=True, v=True)  # also the image's anonymous volumes (named ones below)
                self.log(f"{n}: container removed")
            for v in self.cli.volumes.list(filters={"label": f"{LABEL}.cluster={name}"}):
                v.remove(force=True)
                self.log(f"volume {v.name} removed")
            for net in self.cli.networks.list(filters={"label": f"{LABEL}.cluster={name}"}):
                net.remove()
                self.log(f"network {net.name} removed")
            state.forget(name)
        return done

    def _stop(self, name, c) -> None:
        t0 = time.monotonic()
        role, kraft = c.labels.get(f"{LABEL}.role"), c.labels.get(f"{LABEL}.mode") == "kraft"
        grace = 30 if role == "zookeeper" else (KRAFT_STOP_GRACE if kraft else 120)
        c.stop(timeout=grace)
        c.reload()
        code = (c.attrs.get("State") or {}).get("ExitCode")
        if code == 137:
            self.log(f"{name}: did not finish its controlled shutdown within {grace} s and was killed "
                     "(no KRaft quorum left to acknowledge it); its logs are recovered on the next start")
        else:
            self.log(f"{name}: stopped in {time.monotonic() - t0:.1f} s")

    def logs(self, spec=None, name: str | None = None, node: str = "", tail: int = 100) -> str:
        name = spec.name if spec else name
        cs = self.containers(name)
        if node not in cs:
            raise NotFoundError(f"cluster {name} has no node {node!r}",
                                hint=f"nodes: {', '.join(sorted(cs)) or '(none: the cluster does not exist)'}")
        return cs[node].logs(tail=tail).decode(errors="replace")

    def restart_node(self, spec, node: str) -> None:
        """Restart one node's container in place (SIGTERM, controlled shutdown, start)."""
        cs = self.containers(spec.name)
        if node not in cs:
            raise NotFoundError(f"cluster {spec.name} has no node {node!r}")
        c = cs[node]
        c.restart(timeout=30 if c.labels.get(f"{LABEL}.role") == "zookeeper" else 120)


def _epoch(docker_time: str | None) -> float | None:
    """Docker's RFC 3339 time (nanoseconds, Z) as epoch seconds; None for the zero time."""
    from datetime import datetime, timezone

    if not docker_time or docker_time.startswith("0001-"):
        return None
    try:
        whole = datetime.strptime(docker_time[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return whole.timestamp() + 1.0  # the fraction dropped, rounded up


def _tail(container, n: int) -> str:
    try:
        return container.logs(tail=n).decode(errors="replace").rstrip()
    except Exception as exc:  # noqa: BLE001
        return f"(no logs: {exc})"


def _port_free(port: int) -> bool:
    for fam, addr in ((socket.AF_INET, "0.0.0.0"),):
        s = socket.socket(fam, socket.SOCK_STREAM)
        # SO_REUSEADDR: connections in TIME_WAIT (a cluster just stopped) do not hold a port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
        finally:
            s.close()
    return True


def _who_listens(port: int) -> str:
    import shutil
    import subprocess

    if not shutil.which("ss"):
        return ""
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, timeout=3).stdout
    except Exception:  # noqa: BLE001
        return ""
    import re

    m = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    return f" ({m.group(1)}, pid {m.group(2)})" if m else ""


__all__ = ["DockerDriver", "EngineError"]
