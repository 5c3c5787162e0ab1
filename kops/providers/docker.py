"""The Docker provider: one cluster = one bridge network, one container and one named volume
per node, all found again by their ``io.kops.cluster`` label (no state file).

Containers get their rendered files through ``put_archive`` (no bind mounts of local
paths), so a remote engine (``DOCKER_HOST=ssh://`` or ``tcp://``) works as well. What a
container runs, where its files go and how long it may take to stop all come from the
bundle; this module only carries them out.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import socket
import tarfile
import time
from datetime import datetime, timezone

from kops.artifacts import dist, images, plugins
from kops.services import registry
from kops.core.errors import EngineError, InputError, KopsError, run_all
from kops.plan import Action, Bootstrap, Create, Format, HostObs, Need, NodeObs, Observed, Plan, PrepareHost, Reconfigure, Remove, RemoveHost, Restart, Start, Stop
from kops.providers.base import ProviderInfo
from kops.providers.common import interleaved as _interleaved, labeller as _labeller, merged as _merged
from kops.bundle.render import GATEWAY, LABEL, Bundle, NodeBundle, network_name
from kops.artifacts import tools
from kops.core import engine
from kops.providers.attach import docker_exec

ENGINE = "docker"     # the one "host" of this provider
PREVIOUS = "-previous"  # a reconfigured node's old container, kept stopped until the new one is ready
CLEAN_EXIT = (0, 143)  # a JVM that exited on SIGTERM


def _jar_tar(jars: dict) -> bytes:
    """Connect plugins' jars (path in the container -> local file), 0644 root."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for dest, local in jars.items():
            ti = tar.gettarinfo(str(local), arcname=dest.lstrip("/"))
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mode = 0o644
            with open(local, "rb") as f:
                tar.addfile(ti, f)
    return buf.getvalue()


def _tar(files: dict[str, str], secret: frozenset[str] = frozenset(), gid: int = 0) -> bytes:
    """A tar of absolute paths (relative to /), for ``put_archive("/", ...)``: files 0644,
    secrets 0640 root:<the service user's group>, their folders 0750."""
    buf = io.BytesIO()
    now = int(time.time())
    with tarfile.open(fileobj=buf, mode="w") as tar:
        dirs = sorted({p.rsplit("/", 1)[0] for p in secret if p.rsplit("/", 1)[0] not in ("", "/etc/kafka")})
        for d in dirs:
            ti = tarfile.TarInfo(d.lstrip("/"))
            ti.type, ti.mode, ti.gid, ti.mtime = tarfile.DIRTYPE, 0o750, gid, now
            tar.addfile(ti)
        for path, text in files.items():
            data = text.encode()
            ti = tarfile.TarInfo(path.lstrip("/"))
            ti.size, ti.mtime = len(data), now
            ti.mode, ti.gid = (0o640, gid) if path in secret else (0o644, 0)
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _epoch(docker_time: str | None) -> float | None:
    """Docker's RFC 3339 time (nanoseconds, Z) as epoch seconds; None for the zero time."""
    if not docker_time or docker_time.startswith("0001-"):
        return None
    try:
        whole = datetime.strptime(docker_time[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return whole.timestamp() + 1.0  # the fraction dropped, rounded up


class DockerProvider:
    name = "docker"
    # what this provider can do (planning asks this, never the driver's name)
    info = ProviderInfo(sees_unlisted_nodes=True, one_shot_jobs=True, keeps_previous=True,
                        handles=frozenset({PrepareHost, Format, Bootstrap, Create, Reconfigure, Start, Restart,
                                           Stop, Remove, RemoveHost}))

    def __init__(self, cluster: str, log):
        self.cluster = cluster
        self.log = log
        self._cli = None

    @property
    def cli(self):
        if self._cli is None:

            self._cli = engine.client(timeout=180)
        return self._cli

    def close(self) -> None:
        if self._cli is not None:
            self._cli.close()
            self._cli = None

    def _gateway(self) -> str:
        """The engine's default bridge gateway: where ``host.docker.internal`` (host-gateway)
        lands for other containers, so the DOCKER listener is published there only."""
        if getattr(self, "_gw", None) is None:
            import ipaddress

            cfg = (self.cli.networks.get("bridge").attrs.get("IPAM") or {}).get("Config") or []
            gw = next((c.get("Gateway") for c in cfg if c.get("Gateway")), None)
            if not gw:   # older engines leave it implicit: the subnet's first address
                subnet = next((c.get("Subnet") for c in cfg if c.get("Subnet") and ":" not in c["Subnet"]), None)
                gw = str(ipaddress.ip_network(subnet, strict=False)[1]) if subnet else None
            if not gw:
                raise EngineError("the Docker engine's bridge network has no gateway address",
                                  hint="the DOCKER listener is published on it; is the default bridge enabled?")
            self._gw = gw
        return self._gw

    # -- observe --------------------------------------------------------------------------

    def containers(self, *, previous: bool = False) -> dict:
        """node -> container (``previous``: the copies kept for a rollback instead)."""
        found = self.cli.containers.list(all=True, filters={"label": f"{LABEL}.cluster={self.cluster}"}, ignore_removed=True)
        return {c.labels[f"{LABEL}.node"]: c for c in found if f"{LABEL}.node" in c.labels
                and c.name.endswith(PREVIOUS) == previous}

    def engine_facts(self) -> dict:
        """The engine's version and host, for a debug bundle."""
        v = self.cli.version()
        info = self.cli.info()
        return {"version": v.get("Version"), "api": v.get("ApiVersion"), "os": info.get("OperatingSystem"),
                "kernel": info.get("KernelVersion"), "cpus": info.get("NCPU"), "memory": info.get("MemTotal"),
                "storage_driver": info.get("Driver"), "cgroup": info.get("CgroupVersion")}

    def remains(self) -> list[str]:
        return self.leftovers().get(self.cluster, [])

    def leftovers(self) -> dict[str, list[str]]:
        """cluster -> its volumes and networks, for every cluster that has no container."""
        with_containers = set(self.clusters())
        out: dict[str, list[str]] = {}
        for kind, items in (("volume", self.cli.volumes.list(filters={"label": f"{LABEL}.cluster"})),
                            ("network", self.cli.networks.list(filters={"label": f"{LABEL}.cluster"}))):
            for item in items:
                name = (item.attrs.get("Labels") or {}).get(f"{LABEL}.cluster")
                if name and name not in with_containers:
                    out.setdefault(name, []).append(f"{kind} {item.name}")
        return out

    def clusters(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for c in self.cli.containers.list(all=True, filters={"label": f"{LABEL}.cluster"}, ignore_removed=True):
            out.setdefault(c.labels[f"{LABEL}.cluster"], []).append(c)
        return out

    @staticmethod
    def _node(c) -> NodeObs:
        lab, st = c.labels, (c.attrs.get("State") or {})
        role = lab.get(f"{LABEL}.role", "")
        files = dict(item.split("=", 1) for item in lab.get(f"{LABEL}.sums", "").split(",") if "=" in item)
        code = st.get("ExitCode") if c.status in ("exited", "dead") else None
        addresses = {}
        for key, label in (("host", "external"), ("network", "internal"), ("containers", "docker"),
                           ("jmx", "jmx")):
            if lab.get(f"{LABEL}.{label}"):
                addresses[key] = lab[f"{LABEL}.{label}"]
        if role == "zookeeper":
            port = lab.get(f"{LABEL}.client-port", "2181")
            addresses = {"host": f"127.0.0.1:{port}", "network": f"{lab.get(f'{LABEL}.node')}:{port}"}
        if role in ("connect", "registry") and lab.get(f"{LABEL}.rest"):
            port = lab[f"{LABEL}.rest"].rsplit(":", 1)[1]
            addresses = {"host": lab[f"{LABEL}.rest"], "network": f"{lab.get(f'{LABEL}.node')}:{port}"}
        if lab.get(f"{LABEL}.metrics"):
            addresses["metrics"] = lab[f"{LABEL}.metrics"]
        return NodeObs(
            name=lab[f"{LABEL}.node"], role=role, id=int(lab.get(f"{LABEL}.node-id", "0")), exists=True,
            running=c.status == "running", state=c.status, files=files or None,
            digest=lab.get(f"{LABEL}.config-hash"), formatted=True if role != "zookeeper" else None,
            cluster_id=lab.get(f"{LABEL}.cluster-id"), exit_code=code, oom=bool(st.get("OOMKilled")),
            crashed=c.status in ("exited", "dead") and (code not in CLEAN_EXIT or bool(st.get("OOMKilled"))),
            finished_at=_epoch(st.get("FinishedAt")), started_at=st.get("StartedAt"),
            stop_grace=int(lab.get(f"{LABEL}.stop-grace", "30")),
            addresses=addresses, where=c.name,
            # KRaft nodes made before kops knew dynamic quorums have no label: static
            quorum=(lab.get(f"{LABEL}.quorum") or "static") if lab.get(f"{LABEL}.cluster-id") else None)

    def observe(self, bundle: Bundle | None) -> Observed:
        found = self.cli.containers.list(all=True, filters={"label": f"{LABEL}.cluster={self.cluster}"},
                                         ignore_removed=True)
        cs = {c.labels[f"{LABEL}.node"]: c for c in found
              if f"{LABEL}.node" in c.labels and not c.name.endswith(PREVIOUS)}
        kept_aside = sorted(c.labels[f"{LABEL}.node"] for c in found
                            if f"{LABEL}.node" in c.labels and c.name.endswith(PREVIOUS))
        nodes = {n: self._node(c) for n, c in cs.items()}
        missing: list[Need] = []
        if not self.cli.networks.list(filters={"label": f"{LABEL}.cluster={self.cluster}"}):
            missing.append(Need("network", network_name(self.cluster)))
        if bundle is not None:
            ref = bundle.topo.spec.kafka.image_ref
            if not self._image_present(ref, extras=dist.needs_extras(bundle.topo.spec)):
                stale = self._image_present(ref)
                missing.append(Need("image", ref, note="built before Connect and the metrics agent were in it: "
                                                       "built again" if stale else ""))
            if bundle.topo.registries and not self._registry_image_current():
                missing.append(Need("registry-image", registry.IMAGE))
        meta = {}
        # what the cluster runs is what its Kafka nodes run (a ZooKeeper left stopped after a
        # migration to KRaft says "zookeeper"), running ones first
        for c in sorted(cs.values(), key=lambda c: (c.labels.get(f"{LABEL}.role") in ("broker", "combined",
                                                                                       "controller"),
                                                    c.status == "running")):
            meta = {"mode": c.labels.get(f"{LABEL}.mode", "?"),
                    "version": c.labels.get(f"{LABEL}.kafka-version", "?"),
                    **({"security": c.labels[f"{LABEL}.security"]} if c.labels.get(f"{LABEL}.security") else {})}
        if kept_aside:   # a roll interrupted before its node was ready: `up` drops them once healthy
            meta["kept_aside"] = ",".join(kept_aside)
        return Observed(nodes=nodes, hosts={ENGINE: HostObs(ENGINE, tuple(missing))}, meta=meta)

    def node_states(self, names: list[str]) -> dict[str, tuple[bool, str]]:
        cs = self.containers()
        return {n: ((cs[n].status == "running"), self._state_words(cs[n])) if n in cs else (False, "missing")
                for n in names}

    @staticmethod
    def _state_words(c) -> str:
        st = c.attrs.get("State") or {}
        if c.status in ("exited", "dead"):
            return f"container {c.name} exited with code {st.get('ExitCode')}" + \
                (", OOM-killed" if st.get("OOMKilled") else "")
        return f"container {c.name} {c.status}"

    def _image_present(self, ref: str, *, extras: bool = False) -> bool:
        """The image is there (``extras``: and, kops's own image, built with the
        distribution's extras, else it is built again, once)."""
        import docker

        try:
            img = self.cli.images.get(ref)
        except docker.errors.ImageNotFound:
            return False
        own = (img.labels or {}).get(f"{LABEL}.image") == "kafka"
        if own and not _tools_current(img.labels):
            return False   # built before its Kafka tools were (kops.tools): built again, once
        return not (extras and own and (img.labels or {}).get(images.EXTRAS_LABEL) != dist.EXTRAS)

    def _registry_image_current(self) -> bool:
        import docker

        try:
            img = self.cli.images.get(registry.IMAGE)
        except docker.errors.ImageNotFound:
            return False
        return (img.labels or {}).get(f"{LABEL}.registry.version") == registry.VERSION

    # -- preflight ------------------------------------------------------------------------

    def preflight(self, plan: Plan, bundle: Bundle, observed: Observed) -> None:
        starting = [a.node for a in plan.actions if isinstance(a, (Create, Reconfigure, Start))]
        if starting:
            self._check_ports(bundle, starting)
        if any(isinstance(a, PrepareHost) and a.wants("image") for a in plan.actions):
            self._image_source(bundle)
        if any(bundle.nodes[n].node.role == "connect" for n in starting if n in bundle.nodes):
            plugins.ensure_all(bundle.topo.spec, log=self.log)   # a plugin Maven lacks: exit 2, nothing changed

    def _image_source(self, bundle: Bundle, *, fetch: bool = False):
        """The image is missing: it is built from the distribution (fetched when not cached,
        and only when ``fetch``); a version that does not exist is bad input."""
        spec = bundle.topo.spec
        ref = spec.kafka.image_ref
        if spec.kafka.image:
            raise InputError(f"kafka.image: {ref} is not on the Docker engine",
                             hint="pull or load it first, or remove kafka.image to use kops's own image "
                                  f"(kops image build {spec.kafka.version})")
        if fetch:
            return dist.require(spec.kafka.version, log=self.log, extras=dist.needs_extras(spec))
        if dist.cached(spec.kafka.version) is None and spec.kafka.version not in dist.maven_versions():
            dist.require(spec.kafka.version)   # raises the input error with the versions there are
        return None

    def _port_holders(self) -> dict[int, str]:
        held = {}
        for c in self.cli.containers.list(ignore_removed=True):
            for binds in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
                for b in binds or []:
                    if b.get("HostPort"):
                        held[int(b["HostPort"])] = c.name
        return held

    def _check_ports(self, bundle: Bundle, nodes: list[str]) -> None:
        held = self._port_holders()
        local = not os.environ.get("DOCKER_HOST", "").startswith(("tcp://", "ssh://"))
        problems = []
        for name in nodes:
            c = bundle.nodes[name].container
            for _ip, hport in c["ports"].values():
                holder = held.get(hport)
                if holder and holder != c["name"]:
                    problems.append(f"port {hport} (for {name}) is taken by container {holder}")
                elif not holder and local and not _port_free(hport):
                    problems.append(f"port {hport} (for {name}) is taken by another process on "
                                    f"this machine{_who_listens(hport)}")
        if problems:
            raise InputError("host ports are not free; nothing was created:\n  - " + "\n  - ".join(problems),
                             hint="stop what holds them, or give this cluster other ports "
                                  "(brokers.external_port, brokers.docker_port, zookeeper.client_port) "
                                  "and another name")

    # -- apply ----------------------------------------------------------------------------

    def apply(self, step: list[Action], bundle: Bundle | None) -> None:
        run_all([lambda a=a: self._apply_one(a, bundle) for a in step])

    def _apply_one(self, a: Action, bundle: Bundle | None) -> None:
        import docker

        handler = getattr(self, "_" + type(a).__name__.lower(), None)
        if type(a) not in self.info.handles or handler is None:
            raise KopsError(f"the Docker provider cannot carry out {a.describe()!r}",
                            hint="this is a kops bug: the executor hands a provider its own actions only")
        try:
            handler(a, bundle)
        except docker.errors.APIError as exc:
            # e.g. a host port taken between the port check and the start (another cluster)
            raise KopsError(f"{a.node or a.host}: the Docker engine refused to {a.kind}: "
                            f"{exc.explanation or exc}",
                            hint="if a port is named, something took it after kops checked it: free "
                                 "it (docker ps, ss -ltnp) and run `kops up` again; it starts what is "
                                 "missing") from exc

    def _preparehost(self, a: PrepareHost, bundle: Bundle) -> None:
        for need in a.needs:
            if need.kind == "network":
                # No subnet given: the engine picks a free one, so clusters never overlap.
                self.cli.networks.create(network_name(self.cluster), driver="bridge",
                                         labels={f"{LABEL}.cluster": self.cluster}, check_duplicate=True)
                self.log(f"network {network_name(self.cluster)} created")
            elif need.kind == "image":
                d = self._image_source(bundle, fetch=True)
                base = images.default_base()
                ref = bundle.topo.spec.kafka.image_ref
                self.log(f"image {ref} {'out of date' if need.note else 'missing'}: building it from the "
                         f"cached distribution on {base}")
                images.ensure(d, base=base, tag=ref, log=self.log)
            elif need.kind == "registry-image":
                images.ensure_registry(log=self.log)

    def _volume(self, nb: NodeBundle):
        import docker

        vol = nb.container["volume"]
        try:
            return self.cli.volumes.get(vol)
        except docker.errors.NotFound:
            return self.cli.volumes.create(vol, labels={f"{LABEL}.cluster": self.cluster,
                                                        f"{LABEL}.node": nb.name})

    def _one_shot(self, nb: NodeBundle, argv: list[str], what: str, *, volume: bool) -> None:
        """Run ``argv`` in a throwaway container of the node's image, with the node's files
        (and data volume), on the cluster network; fail with its log lines."""
        import docker

        name = f"{nb.container['name']}-{what.split()[0]}"
        try:  # a leftover of an interrupted run
            self.cli.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
        vols = {nb.container["volume"]: {"bind": nb.container["data_mount"], "mode": "rw"}} if volume else {}
        c = self.cli.containers.create(
            nb.container["image"], argv, name=name, labels={f"{LABEL}.cluster": self.cluster, f"{LABEL}.job": what},
            volumes=vols, hostname=f"{nb.name}-job", network=nb.container["network"])
        try:
            c.put_archive("/", _tar(nb.files, nb.secret, self._kafka_gid(nb.container["image"]) if nb.secret else 0))
            c.start()
            code = c.wait(timeout=180).get("StatusCode")
            if code != 0:
                raise KopsError(f"{nb.name}: {what} failed (exit code {code})",
                                details=f"--- {nb.name} ({what}), last log lines:\n"
                                        + c.logs(tail=30).decode(errors="replace"),
                                hint="the lines above are Kafka's own")
        finally:
            c.remove(force=True)

    def _format(self, a: Format, bundle: Bundle) -> None:
        """KRaft storage, formatted once by a one-shot container on the node's data volume."""
        nb = bundle.nodes[a.node]
        self._volume(nb)
        try:
            self._one_shot(nb, nb.join_format_argv if a.join else nb.format_argv, "formatting KRaft storage",
                           volume=True)
        except KopsError as exc:
            exc.hint = ("the lines above are kafka-storage's; a cluster id mismatch means the volume holds "
                        "another cluster's data")
            raise
        self.log(f"{nb.name}: storage formatted (cluster id {a.cluster_id})")

    def _bootstrap(self, a: Bootstrap, bundle: Bundle) -> None:
        nb = bundle.nodes[a.node]
        self._one_shot(nb, nb.scram_argv, "writing the brokers' SCRAM user to ZooKeeper", volume=False)
        self.log(f"{nb.name}: the brokers' SCRAM user written to ZooKeeper")

    def _kafka_gid(self, image: str) -> int:
        """The group id of the image's service user (secret files are readable by it only)."""
        cache = getattr(self, "_gids", None)
        if cache is None:
            cache = self._gids = {}
        if image not in cache:
            out = self.cli.containers.run(image, ["id", "-g", "kafka"], remove=True, network_mode="none")
            cache[image] = int(out.decode().strip())
        return cache[image]

    def _create(self, a: Action, bundle: Bundle) -> None:
        nb = bundle.nodes[a.node]
        plan = nb.container
        self._volume(nb)
        leftover = self.containers(previous=True).get(a.node) if isinstance(a, Create) else None
        if leftover is not None:   # kept aside by a run that was interrupted: the new one replaces it
            leftover.remove(force=True, v=True)
        api = self.cli.api
        host_config = api.create_host_config(
            binds={plan["volume"]: {"bind": plan["data_mount"], "mode": "rw"}},
            port_bindings={cport: (self._gateway() if ip == GATEWAY else ip, hport)
                           for cport, (ip, hport) in plan["ports"].items()},
            extra_hosts={"host.docker.internal": "host-gateway"},
        )
        net_config = api.create_networking_config(
            {plan["network"]: api.create_endpoint_config(aliases=[nb.name])})
        created = api.create_container(
            plan["image"], command=plan["command"], name=plan["name"], hostname=plan["hostname"],
            labels=plan["labels"], ports=[int(p.split("/")[0]) for p in plan["ports"]],
            host_config=host_config, networking_config=net_config, stop_signal="SIGTERM",
            environment=plan.get("environment") or None,
            stop_timeout=nb.stop_grace,
            # for `docker ps` only (kops's gates probe the nodes themselves): every 15 s, not
            # every 2, as each check is an exec through the engine (a few % of a core per node)
            healthcheck={"test": plan["healthcheck"], "interval": HEALTH_INTERVAL_NS,
                         "timeout": 5_000_000_000, "retries": 4, "start_period": 60_000_000_000},
        )
        container = self.cli.containers.get(created["Id"])
        container.put_archive("/", _tar(nb.files, nb.secret, self._kafka_gid(plan["image"]) if nb.secret else 0))
        if nb.node.role == "connect" and bundle.topo.spec.connect.plugins:
            container.put_archive("/", _jar_tar(plugins.jars(bundle.topo.spec, nb.layout.conf_dir)))
        container.start()
        self.log(f"{nb.name}: created and started ({plan['name']})")

    def _reconfigure(self, a: Reconfigure, bundle: Bundle) -> None:
        """The old container is stopped and kept aside (renamed) until the new one is ready,
        so that a config Kafka refuses can be rolled back; the data volume stays."""
        nb = bundle.nodes[a.node]
        old = self.containers(previous=True).get(a.node)
        if old is not None:   # a leftover of an earlier run: the running one is the truth now
            _gone(old.remove, force=True, v=True)
        c = self.containers().get(a.node)
        if c is not None:
            c.stop(timeout=nb.stop_grace)
            c.rename(c.name + PREVIOUS)
            self.log(f"{nb.name}: stopped the old container and kept it aside (volume {nb.container['volume']} kept)")
        self._create(a, bundle)

    def rollback(self, nodes: list[str], bundle: Bundle) -> list[str]:
        """Put back the previous container of ``nodes`` (removing the new one); returns the
        nodes that had one."""
        import docker

        back, failed = [], []
        previous = self.containers(previous=True)
        current = self.containers()
        for n in nodes:
            old = previous.get(n)
            if old is None:
                continue
            try:
                if n in current:
                    current[n].remove(force=True, v=True)
                old.rename(old.name[: -len(PREVIOUS)])
                old.start()
            except docker.errors.APIError as exc:
                failed.append(f"{n}: {exc.explanation or exc}")
                continue
            back.append(n)
            self.log(f"{n}: the new container was removed and the previous one started again (data kept)")
        if failed:
            raise KopsError("could not put back the previous container of " + ", ".join(f.split(":")[0] for f in failed),
                            details="\n".join(failed))
        return back

    def settle(self, nodes: list[str]) -> None:
        """The new containers of ``nodes`` are ready: drop the copies kept for a rollback."""
        previous = self.containers(previous=True)
        for n in nodes:
            if n in previous:
                previous[n].remove(force=True, v=True)

    def _start(self, a: Start, bundle) -> None:
        self.containers()[a.node].start()
        self.log(f"{a.node}: started")

    def _restart(self, a: Restart, bundle) -> None:
        c = self.containers().get(a.node)
        if c is None:
            raise KopsError(f"{a.node}: no container to restart", hint="kops up brings it back")
        c.restart(timeout=a.grace)
        self.log(f"{a.node}: restarted")

    def _stop(self, a: Stop, bundle) -> None:
        c = self.containers().get(a.node)
        if c is None:
            return
        t0 = time.monotonic()
        c.stop(timeout=a.grace)
        c.reload()
        if (c.attrs.get("State") or {}).get("ExitCode") == 137:
            self.log(f"{a.node}: did not finish its graceful shutdown within {a.grace} s and was killed "
                     "(a KRaft node waits for a quorum that is gone); its logs are recovered on the next start")
        else:
            self.log(f"{a.node}: stopped in {time.monotonic() - t0:.1f} s")

    def _remove(self, a: Remove, bundle) -> None:
        import docker

        c = self.containers().get(a.node)
        vol = None
        old = self.containers(previous=True).get(a.node)
        if old is not None:
            _gone(old.remove, force=True, v=True)
        if c is not None:
            vol = next((m.get("Name") for m in c.attrs.get("Mounts", []) if m.get("Type") == "volume"), None)
            if _gone(c.remove, force=True, v=True):
                self.log(f"{a.node}: container removed")
        for v in self.cli.volumes.list(filters={"label": [f"{LABEL}.cluster={self.cluster}",
                                                          f"{LABEL}.node={a.node}"]}):
            if _gone(v.remove, force=True):
                self.log(f"volume {v.name} removed")
            vol = None if v.name == vol else vol
        if vol:
            try:
                self.cli.volumes.get(vol).remove(force=True)
                self.log(f"volume {vol} removed")
            except docker.errors.NotFound:
                pass

    def _removehost(self, a: RemoveHost, bundle) -> None:
        flt = {"label": f"{LABEL}.cluster={self.cluster}"}
        for c in self.cli.containers.list(all=True, filters=flt, ignore_removed=True):   # one-shot leftovers
            _gone(c.remove, force=True, v=True)
        for v in self.cli.volumes.list(filters=flt):
            if _gone(v.remove, force=True):
                self.log(f"volume {v.name} removed")
        for net in self.cli.networks.list(filters=flt):
            if _gone(net.remove):
                self.log(f"network {net.name} removed")

    # -- logs and node-local probes --------------------------------------------------------

    def tail(self, node: str, lines: int = 30) -> str:
        c = self.containers().get(node)
        if c is None:
            return "(no container)"
        return c.logs(tail=lines).decode(errors="replace").rstrip()

    def logs(self, nodes: list[str], *, lines: int = 100, since: float | None = None, follow: bool = False,
             prefix: bool = False):
        """Log lines of ``nodes`` (interleaved by time, each prefixed with its node when
        ``prefix``); with ``follow``, new lines as they come, until interrupted."""
        cs = self.containers()
        label = _labeller(nodes, prefix)
        kw = {"tail": lines, "timestamps": True}
        if since:
            kw["since"] = int(time.time() - since)
        if not follow:
            # docker's timestamps=True lines: "<RFC 3339 time> <the line>"
            yield from _interleaved({n: cs[n].logs(**kw).decode(errors="replace") for n in nodes},
                                    label, prefix, lambda rest: rest)
            return

        def pump(n, out):
            buf = b""
            for chunk in cs[n].logs(stream=True, follow=True, **kw):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    out.put(label(n) + line.decode(errors="replace").partition(" ")[2])
        yield from _merged(nodes, pump)

    def exec(self, node: str, argv: list[str], files: dict[str, str] | None = None,
             timeout: float = 180) -> tuple[int, str]:
        c = self.containers().get(node)
        if c is None or c.status != "running":
            raise KopsError(f"{node} is not running: cannot run {argv[-1] if argv else 'a tool'} in it")
        if files:
            c.put_archive("/", _tar(files))
        code, out = c.exec_run(argv, user="kafka", demux=False)
        return code, (out or b"").decode(errors="replace")

    def read_files(self, node: str, paths: list[str]) -> dict[str, str]:
        import docker
        import io
        import tarfile

        c = self.containers().get(node)
        out: dict[str, str] = {}
        for path in paths if c is not None else []:
            try:
                stream, _ = c.get_archive(path)
                with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
                    member = tar.next()
                    f = tar.extractfile(member) if member is not None else None
                    if f is not None:
                        out[path] = f.read().decode(errors="replace")
            except (docker.errors.APIError, tarfile.TarError):
                continue
        return out

    def exec_attached(self, node: str, argv: list[str], *, tty: bool, env: dict[str, str] | None = None) -> int:
        """`kops exec`/`kops shell`: ``argv`` in the node's container, as its service user,
        attached to this terminal (kops.providers.attach); the command's exit code."""

        c = self.containers().get(node)
        if c is None or c.status != "running":
            raise KopsError(f"{node} is not running")
        return docker_exec(self.cli.api, c.id, argv, tty=tty, env=env)

    def zk_srvr(self, node: str) -> str | None:
        c = self.containers().get(node)
        if c is None or c.status != "running":
            return None
        port = int(c.labels.get(f"{LABEL}.client-port", "2181"))
        # Not `echo srvr | nc`: Debian's nc may quit on stdin EOF before ZooKeeper answers.
        for _ in range(3):   # a busy engine's exec can fail once: the node would read as "no answer"
            res = c.exec_run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf srvr >&3 "
                                            "&& timeout 5 cat <&3"])
            if res.exit_code == 0:
                return res.output.decode(errors="replace")
            time.sleep(0.3)
        return None

    def quorum_state(self, node: str) -> dict | None:
        c = self.containers().get(node)
        if c is None or c.status != "running":
            return None
        for attempt in range(3):   # a busy engine's exec can fail once: one unread voter makes the leader unknown
            res = c.exec_run(["cat", "/var/lib/kafka/data/__cluster_metadata-0/quorum-state"])
            try:
                if res.exit_code == 0:
                    return json.loads(res.output)
            except ValueError:
                pass
            time.sleep(0.3)
        return None

    # -- faults (`kops fault`): only on the nodes found by the cluster's label -----------------

    FAULT_IMAGE = "kops/faults:1"   # the base + nftables and iproute2, run in a node's network namespace

    def _fault_container(self, node: str, *, running: bool = True):
        c = self.containers().get(node)
        if c is None:
            raise InputError(f"cluster {self.cluster} has no node {node!r}",
                             hint="nodes: " + (", ".join(sorted(self.containers())) or "none (kops ls)"))
        if running and c.status != "running":
            raise KopsError(f"{node} is {c.status}, not running: no fault to inject into it",
                            hint=f"kops fault heal {node} --name {self.cluster} first, or `kops up`")
        return c

    def kill_node(self, node: str) -> None:
        """SIGKILL the node's JVM (its container's main process): a crash."""
        self._fault_container(node).kill(signal="SIGKILL")

    def pause_node(self, node: str) -> None:
        """Freeze every process of the node (the cgroup freezer: `docker pause`)."""
        self._fault_container(node).pause()

    def resume_node(self, node: str) -> bool:
        """Thaw a paused node (or start a killed one); True when something was done."""
        c = self._fault_container(node, running=False)
        if c.status == "paused":
            c.unpause()
            return True
        if c.status in ("exited", "created", "dead"):
            c.start()
            return True
        return False

    def node_peers(self, node: str) -> dict[str, str]:
        """The other nodes of the cluster -> their address on the cluster's network."""
        net = network_name(self.cluster)
        out = {}
        for n, c in self.containers().items():
            ip = ((c.attrs.get("NetworkSettings") or {}).get("Networks") or {}).get(net, {}).get("IPAddress")
            if n != node and ip:
                out[n] = ip
        return out

    def _fault_image(self) -> str:
        """kops/faults:1, built once from the base image kops builds on (apt: nftables)."""
        import docker

        try:
            self.cli.images.get(self.FAULT_IMAGE)
            return self.FAULT_IMAGE
        except docker.errors.ImageNotFound:
            pass
        base = images.default_base()
        self.log(f"building {self.FAULT_IMAGE} from {base} (nftables and iproute2, for network faults)")
        recipe = (f"FROM {base}\nUSER root\nRUN apt-get update && apt-get install -y --no-install-recommends "
                  "nftables iproute2 && rm -rf /var/lib/apt/lists/*\n").encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            ti = tarfile.TarInfo("Dockerfile")
            ti.size = len(recipe)
            tar.addfile(ti, io.BytesIO(recipe))
        buf.seek(0)
        out = []
        try:
            for chunk in self.cli.api.build(fileobj=buf, custom_context=True, tag=self.FAULT_IMAGE, rm=True,
                                            forcerm=True, decode=True, pull=False,
                                            labels={f"{LABEL}.image": "faults"}):
                out.append(chunk.get("stream", ""))
                if "error" in chunk:
                    raise EngineError(f"image build of {self.FAULT_IMAGE} failed: {chunk['error'].strip()}",
                                      details="".join(out[-15:]),
                                      hint="it installs nftables with apt from the base image's mirror")
        except docker.errors.APIError as exc:
            raise EngineError(f"image build of {self.FAULT_IMAGE} failed: {exc.explanation or exc}") from exc
        return self.FAULT_IMAGE

    def net_script(self, node: str, script: str) -> tuple[int, str]:
        """``script`` (sh) as root with NET_ADMIN in the node's network namespace, from a
        short-lived helper container (the node's own image has neither nft nor the right)."""
        import docker

        c = self._fault_container(node)
        image = self._fault_image()
        try:
            helper = self.cli.containers.run(
                image, ["sh", "-c", script], entrypoint=[], user="root", network_mode=f"container:{c.id}",
                cap_add=["NET_ADMIN"], detach=True, labels={f"{LABEL}.fault-helper": self.cluster},
                name=f"{c.name}-fault-{os.getpid()}-{int(time.time() * 1000) % 100000}")
        except docker.errors.APIError as exc:
            raise EngineError(f"{node}: the network fault helper could not start: {exc.explanation or exc}") from exc
        try:
            code = helper.wait(timeout=60).get("StatusCode", 1)
            return code, helper.logs().decode(errors="replace")
        finally:
            helper.remove(force=True)


HEALTH_INTERVAL_NS = 15_000_000_000


def _tools_current(labels: dict) -> bool:
    """A kops image carries the launchers of Kafka's tools its version has now."""

    version = labels.get(f"{LABEL}.kafka.version", "")
    return not dist.VERSION_RE.fullmatch(version) or labels.get(images.TOOLS_LABEL) == tools.fingerprint(version)


def _gone(remove, **kwargs) -> bool:
    """Remove something; True when this call removed it, False when it was already gone
    (a purge is safe to repeat, and to run while another one finishes)."""
    import docker

    try:
        remove(**kwargs)
        return True
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        # the engine may answer 409/500 instead of 404 while another removal of it finishes
        text = str(exc.explanation or exc)
        if "No such container" in text or "is already in progress" in text or "No such volume" in text:
            return False
        raise


def _port_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # SO_REUSEADDR: connections in TIME_WAIT (a cluster just stopped) do not hold a port.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("0.0.0.0", port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return False
        raise
    finally:
        s.close()
    return True


def _who_listens(port: int) -> str:
    import shutil
    import subprocess

    if not shutil.which("ss"):
        return ""
    try:
        out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True,
                             timeout=3).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    m = re.search(r'users:\(\("([^"]+)",pid=(\d+)', out)
    if not m:
        return ""
    if m.group(1) == "docker-proxy":
        # no running container publishes it (checked before): a proxy a killed engine left behind
        return (f" (docker-proxy, pid {m.group(2)}, which no running container owns: a container starting "
                f"this moment, or a proxy left by an engine that was killed; then `kill {m.group(2)}` frees it)")
    return f" ({m.group(1)}, pid {m.group(2)})"


__all__ = ["DockerProvider", "EngineError"]
