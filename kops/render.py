"""Jinja environment; renders each node's files and the whole bundle.

Templates live under ``templates/`` and render with ``StrictUndefined``: a missing value
is an error naming the template and its line, never an empty string in a config. The
rendered files are the single source of truth: the Docker driver copies them into
containers, the SSH driver places them on hosts, and the compose bundle mounts them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2

from . import paths
from .errors import KopsError
from .launch import Launch, container_command, log_config_name, shell_line
from .topology import Node, Topology

LABEL = "io.kops"
KAFKA_USER = "kafka"


@dataclass(frozen=True)
class Layout:
    """Where a node's files live on its machine (container or host)."""

    home: str
    conf_dir: str
    data_dir: str
    log_dir: str


def layout(topo: Topology, node: Node) -> Layout:
    if topo.driver == "docker":
        data = "/var/lib/zookeeper" if node.role == "zookeeper" else "/var/lib/kafka/data"
        return Layout("/opt/kafka", "/etc/kafka", data, "/var/log/kafka")
    base = f"{topo.name}/{node.name}"
    return Layout(f"/opt/kops/kafka_2.13-{topo.version}", f"/etc/kops/{base}",
                  f"/var/lib/kops/{base}" + ("" if node.role == "zookeeper" else "/data"),
                  f"/var/log/kops/{base}")


def launch_for(topo: Topology, node: Node) -> Launch:
    lay = layout(topo, node)
    java = "java" if topo.driver == "docker" else "/usr/bin/java"
    jmx = node.ports.get("jmx")
    # JMX hands out an RMI address: it must be the one clients reach (like EXTERNAL).
    return Launch(topo.version, home=lay.home, conf_dir=lay.conf_dir, log_dir=lay.log_dir,
                  heap=node.heap, java=java, jmx_port=jmx,
                  jmx_host=topo.advertised_host(node) if jmx else None)


def _propvalue(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _compose_escape(argv: list[str]) -> list[str]:
    return [a.replace("$", "$$") for a in argv]


@lru_cache(maxsize=1)
def env() -> jinja2.Environment:
    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(paths.templates_dir())),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    e.filters["propvalue"] = _propvalue
    e.filters["join_listener"] = lambda item: f"{item[0]}://{item[1]}"
    e.filters["compose_escape"] = _compose_escape
    e.policies["json.dumps_kwargs"] = {"sort_keys": False}
    return e


def render_template(name: str, **ctx) -> str:
    try:
        return env().get_template(name).render(**ctx)
    except jinja2.TemplateSyntaxError as exc:
        raise KopsError(f"template {exc.name or name} line {exc.lineno}: {exc.message}",
                        hint="fix the template under templates/") from exc
    except jinja2.TemplateNotFound as exc:
        raise KopsError(f"template {exc.name} not found under {paths.templates_dir()}") from exc
    except jinja2.UndefinedError as exc:
        raise KopsError(f"template {name}{_template_line(exc, name)}: {exc.message}",
                        hint="a value the template needs is missing from the render context") from exc


def _template_line(exc: BaseException, name: str) -> str:
    tb, lineno = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            lineno = tb.tb_lineno
        tb = tb.tb_next
    return f" line {lineno}" if lineno else ""


def default_log_config(version: str) -> tuple[str, str]:
    name = log_config_name(version)
    return name, render_template(f"log/{name}.j2", version=version)


# -- per node -----------------------------------------------------------------------------

def _server_properties(topo: Topology, node: Node, lay: Layout) -> str:
    listeners = topo.listeners(node)
    protocol_map = ",".join(f"{name}:PLAINTEXT" for name in listeners)
    if node.is_kafka and topo.mode == "kraft" and "CONTROLLER" not in listeners:
        protocol_map += ",CONTROLLER:PLAINTEXT"  # brokers reach the controllers through it
    return render_template(
        "kafka/server.properties.j2", cluster=topo.name, node=node, version=topo.version,
        mode=topo.mode, zookeeper_connect=topo.zookeeper_connect, quorum_voters=topo.quorum_voters,
        listeners=[(name, bind) for name, (bind, _) in listeners.items()],
        advertised=[f"{name}://{adv}" for name, (_, adv) in listeners.items() if adv],
        protocol_map=protocol_map, data_dir=lay.data_dir, replication=topo.replication_defaults,
        overrides=node.config)


def node_files(topo: Topology, node: Node) -> dict[str, str]:
    """File name -> content: everything this node needs in its config folder."""
    lay = layout(topo, node)
    launch = launch_for(topo, node)
    role = "zookeeper" if node.role == "zookeeper" else "kafka"
    files: dict[str, str] = {}
    if node.role == "zookeeper":
        files["zoo.cfg"] = render_template(
            "zookeeper/zoo.cfg.j2", cluster=topo.name, node=node, data_dir=lay.data_dir,
            zookeepers=topo.zookeepers, overrides=node.config)
        files["myid"] = render_template("zookeeper/myid.j2", node=node)
    else:
        files["server.properties"] = _server_properties(topo, node, lay)
    name = log_config_name(topo.version)
    files[name] = render_template(f"log/{name}.j2", version=topo.version,
                                  level=topo.spec.kafka.log_level)
    files["jvm.env"] = launch.env_file(role)
    return files


def config_hash(files: dict[str, str], extra: str = "") -> str:
    h = hashlib.sha256(extra.encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name].encode() + b"\0")
    return h.hexdigest()[:16]


def unit_name(topo: Topology, node: Node) -> str:
    return f"kops-{topo.name}-{node.name}.service"


def systemd_unit(topo: Topology, node: Node) -> str:
    lay = layout(topo, node)
    launch = launch_for(topo, node)
    role = "zookeeper" if node.role == "zookeeper" else "kafka"
    exec_line = (f"{launch.java} $KOPS_JVM_OPTS -cp {launch.classpath} "
                 + shell_line(launch.main(role)))
    ctx = dict(cluster=topo.name, node=node, version=topo.version, layout=lay, user=KAFKA_USER,
               exec_line=exec_line)
    if role == "zookeeper":
        return render_template("systemd/zookeeper.service.j2", **ctx)
    cid = topo.cluster_id if topo.mode == "kraft" else None
    after = [unit_name(topo, z) for z in topo.zookeepers if z.host_key == node.host_key]
    return render_template("systemd/kafka.service.j2", cluster_id=cid, after=after,
                           format_line=shell_line(launch.format_storage(cid)) if cid else "", **ctx)


# -- containers (Docker driver and compose bundle share this) ------------------------------

def container_name(topo: Topology, node: Node) -> str:
    return f"{topo.name}-{node.name}"


def volume_name(topo: Topology, node: Node) -> str:
    return f"{topo.name}-{node.name}-data"


def container_plan(topo: Topology, node: Node) -> dict:
    lay = layout(topo, node)
    launch = launch_for(topo, node)
    files = node_files(topo, node)
    cid = topo.cluster_id if topo.mode == "kraft" and node.is_kafka else None
    # Clients advertised on loopback get the port on loopback only (not on the LAN).
    adv = topo.spec.brokers.advertised_host
    bind = "127.0.0.1" if adv in ("127.0.0.1", "localhost") else "0.0.0.0"
    if node.role == "zookeeper":
        cmd = container_command(launch, "zookeeper", zk_data_dir=lay.data_dir)
        health = ["CMD-SHELL", f"bash -c 'exec 3<>/dev/tcp/127.0.0.1/{node.ports['client']} && "
                  "printf srvr >&3 && timeout 5 cat <&3' | grep -q Mode"]
        published = {f"{node.ports['client']}/tcp": [bind, node.ports["client"]]}
        stop_timeout = 30
    else:
        cmd = container_command(launch, "kafka", cluster_id=cid)
        probe = node.ports.get("internal") or node.ports["controller"]
        health = ["CMD-SHELL", f"nc -z 127.0.0.1 {probe}"]
        # DOCKER must listen where host.docker.internal (the bridge gateway) lands: all interfaces.
        published = {f"{node.ports['external']}/tcp": [bind, node.ports["external"]],
                     f"{node.ports['docker']}/tcp": ["0.0.0.0", node.ports["docker"]]} if node.is_broker else {}
        if "jmx" in node.ports:
            published[f"{node.ports['jmx']}/tcp"] = [bind, node.ports["jmx"]]
        stop_timeout = 120
    image = topo.spec.kafka.image_ref
    labels = {
        f"{LABEL}.cluster": topo.name,
        f"{LABEL}.node": node.name,
        f"{LABEL}.role": node.role,
        f"{LABEL}.node-id": str(node.id),
        f"{LABEL}.mode": topo.mode,
        f"{LABEL}.kafka-version": topo.version,
        f"{LABEL}.config-hash": config_hash(files, json.dumps([image, cmd, published])),
        **{f"{LABEL}.user.{k}": v for k, v in topo.spec.labels.items()},
    }
    if cid:
        labels[f"{LABEL}.cluster-id"] = cid
    if node.is_broker:
        labels[f"{LABEL}.external"] = topo.external_address(node)
        labels[f"{LABEL}.internal"] = f"{node.hostname}:{node.ports['internal']}"
        labels[f"{LABEL}.docker"] = f"host.docker.internal:{node.ports['docker']}"
        if "jmx" in node.ports:
            labels[f"{LABEL}.jmx"] = f"{topo.advertised_host(node)}:{node.ports['jmx']}"
    if node.role == "zookeeper":
        labels[f"{LABEL}.client-port"] = str(node.ports["client"])
    return {
        "name": container_name(topo, node), "hostname": node.name, "image": image,
        "command": cmd, "ports": published, "volume": volume_name(topo, node),
        "data_mount": str(Path(lay.data_dir)) if node.role == "zookeeper" else "/var/lib/kafka/data",
        "conf_dir": lay.conf_dir, "files": files, "healthcheck": health, "labels": labels,
        "stop_timeout": stop_timeout,
        "depends_on": [z.name for z in topo.zookeepers] if node.is_kafka else [],
    }


def compose_file(topo: Topology) -> str:
    containers = [container_plan(topo, n) for n in topo.nodes]
    return render_template("compose/docker-compose.yml.j2", cluster=topo.name, mode=topo.mode,
                           version=topo.version, containers=containers,
                           bootstrap=topo.bootstrap_servers, internal_bootstrap=topo.internal_bootstrap)


def bundle(topo: Topology) -> dict[str, str]:
    """Relative path -> content: every node's files, plus compose (docker) or units (ssh)."""
    out: dict[str, str] = {}
    for node in topo.nodes:
        for name, text in node_files(topo, node).items():
            out[f"{node.name}/{name}"] = text
        if topo.driver == "ssh":
            out[f"{node.name}/{unit_name(topo, node)}"] = systemd_unit(topo, node)
    if topo.driver == "docker":
        out["docker-compose.yml"] = compose_file(topo)
    return out


def write_bundle(files: dict[str, str], out_dir: Path) -> list[Path]:
    written = []
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)
        written.append(path)
    return written
