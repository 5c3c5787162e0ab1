"""The java command line of each role, matching what Kafka's bin/*.sh scripts run.

Kafka's scripts are not on Maven, so kops starts the main classes itself. The same line
works with a Maven-assembled distribution, the official tarball and the official
``apache/kafka`` image: all of them have ``<home>/libs``.

Everything here is an argv (a list of words): containers get it as their command, systemd
units get it quoted by systemd's rules, and the one place that needs a shell (the compose
bundle, which has no kops to format storage) quotes every word. No inventory value is
ever sourced or evaluated by a shell.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from kops.artifacts import cds

KAFKA_MAIN = "kafka.Kafka"
CONNECT_MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
CONNECT_PROPERTIES = "connect-distributed.properties"
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
STORAGE_TOOL = "kafka.tools.StorageTool"

PERF_OPTS = [
    "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
]
# The fast profile: a JVM that starts quickly and stays small (tests, laptops): the client
# compiler only, the serial collector, a heap that grows from 64 MiB as needed.
FAST_OPTS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData", "-Djava.awt.headless=true"]


def log_config_name(version: str) -> str:
    return "log4j.properties" if int(version.split(".")[0]) < 4 else "log4j2.yaml"


def log_config_flag(version: str, path: str) -> str:
    if int(version.split(".")[0]) < 4:
        return f"-Dlog4j.configuration=file:{path}"
    return f"-Dlog4j2.configurationFile={path}"


@dataclass
class Launch:
    """Where things are on the node, and how big the JVM may grow."""

    version: str
    home: str = "/opt/kafka"
    conf_dir: str = "/etc/kafka"
    log_dir: str = "/var/log/kafka"
    data_dir: str = "/var/lib/kafka/data"
    heap: str = "512m"
    jmx_port: int | None = None
    jmx_host: str | None = None
    jmx_bind: str | None = None      # the address JMX listens on (None: every interface of a container)
    java: str = "java"
    cds: bool = False                # map the image's class data sharing archives (kops.cds)
    fast: bool = False               # the fast profile's JVM (FAST_OPTS)
    java_agent: str | None = None    # e.g. the Prometheus JMX exporter: -javaagent:JAR=HOST:PORT:RULES
    extra_opts: list[str] = field(default_factory=list)
    # a ZooKeeper-mode broker rolled back out of a KRaft migration: the metadata log it kept
    # in migration mode is removed before it starts (Kafka's rollback procedure)
    drop_metadata_log: bool = False

    def jvm_opts(self, role: str) -> list[str]:
        """The flags Kafka's scripts add, for ``kafka`` or ``zookeeper``."""
        name = {"zookeeper": "zookeeper", "connect": "connect"}.get(role, "kafkaServer")
        opts = [f"-Xmx{self.heap}", "-Xms64m" if self.fast else f"-Xms{self.heap}",
                *(FAST_OPTS if self.fast else PERF_OPTS), *self._cds(role),
                f"-Xlog:gc*:file={self.log_dir}/{name}-gc.log:time,tags:filecount=10,filesize=100M"]
        if self.jmx_port:
            opts += ["-Dcom.sun.management.jmxremote=true",
                     "-Dcom.sun.management.jmxremote.authenticate=false",
                     "-Dcom.sun.management.jmxremote.ssl=false",
                     f"-Dcom.sun.management.jmxremote.port={self.jmx_port}",
                     f"-Dcom.sun.management.jmxremote.rmi.port={self.jmx_port}"]
            if self.jmx_bind:
                opts.append(f"-Dcom.sun.management.jmxremote.host={self.jmx_bind}")
            if self.jmx_host:
                opts.append(f"-Djava.rmi.server.hostname={self.jmx_host}")
        if self.java_agent:
            opts.append(self.java_agent)
        return [*opts, f"-Dkafka.logs.dir={self.log_dir}",
                log_config_flag(self.version, f"{self.conf_dir}/{log_config_name(self.version)}"),
                *self.extra_opts]

    def _cds(self, role: str) -> list[str]:

        return cds.flags(role) if self.cds else []

    @property
    def classpath(self) -> str:
        return f"{self.home}/libs/*"

    def main(self, role: str) -> list[str]:
        if role == "zookeeper":
            return [ZOOKEEPER_MAIN, f"{self.conf_dir}/zoo.cfg"]
        if role == "connect":
            return [CONNECT_MAIN, f"{self.conf_dir}/{CONNECT_PROPERTIES}"]
        return [KAFKA_MAIN, f"{self.conf_dir}/server.properties"]

    def argv(self, role: str) -> list[str]:
        """The whole command line of the node's service."""
        if role == "registry":   # a Quarkus application, not Kafka's class path (kops.registry)
            from kops.services import registry

            return registry.jvm_argv(self.java, self.home, self.conf_dir, self.heap)
        return [self.java, *self.jvm_opts(role), "-cp", self.classpath, *self.main(role)]

    def prestart(self, role: str) -> list[list[str]]:
        """Commands run before the service on every start: ZooKeeper's ``myid`` goes from
        the rendered files into the data folder (the one way it is placed)."""
        if role == "zookeeper":
            return [["/bin/cp", f"{self.conf_dir}/myid", f"{self.data_dir}/myid"]]
        if role == "kafka" and self.drop_metadata_log:
            return [["/bin/rm", "-rf", f"{self.data_dir}/__cluster_metadata-0"]]
        return []

    def format_storage(self, cluster_id: str) -> list[str]:
        """Format KRaft storage; ``--ignore-formatted`` makes it a no-op on a formatted node."""
        return [self.java, "-Xmx128m", *(FAST_OPTS if self.fast else []), *self._cds("kafka"),
                f"-Dkafka.logs.dir={self.log_dir}",
                log_config_flag(self.version, f"{self.conf_dir}/{log_config_name(self.version)}"),
                "-cp", self.classpath, STORAGE_TOOL, "format", "-t", cluster_id,
                "-c", f"{self.conf_dir}/server.properties", "--ignore-formatted"]


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def container_command(launch: Launch, role: str, cluster_id: str | None = None,
                      format_argv: list[str] | None = None) -> list[str]:
    """The container's command: the service's argv, after the prestart steps (and, for a
    standalone bundle with no kops to plan it, KRaft storage formatting when not yet done).
    The argv is passed as positional parameters (``exec "$@"``), never parsed by the shell."""
    steps = [shell_line(p) for p in launch.prestart(role)]
    if cluster_id:
        meta = shlex.quote(f"{launch.data_dir}/meta.properties")
        fmt = format_argv or launch.format_storage(cluster_id)
        steps.append(f"{{ [ -f {meta} ] || {shell_line(fmt)} >/dev/null; }}")
    argv = launch.argv(role)
    if not steps:
        return argv
    return ["sh", "-c", " && ".join([*steps, 'exec "$@"']), "kops-node", *argv]


_SYSTEMD_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./*-]+")


def systemd_quote(word: str) -> str:
    """One word of an ExecStart= line: systemd splits on spaces, expands $VAR and %x."""
    word = word.replace("%", "%%").replace("$", "$$")
    if _SYSTEMD_PLAIN.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_line(argv: list[str]) -> str:
    return " ".join(systemd_quote(a) for a in argv)
