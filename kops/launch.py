"""The java command line of each role, matching what Kafka's bin/*.sh scripts run.

Kafka's scripts are not on Maven, so kops starts the main classes itself. The same line
works with a Maven-assembled distribution, the official tarball and the official
``apache/kafka`` image: all of them have ``<home>/libs``.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

KAFKA_MAIN = "kafka.Kafka"
ZOOKEEPER_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
STORAGE_TOOL = "kafka.tools.StorageTool"

PERF_OPTS = [
    "-server", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
]


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
    heap: str = "512m"
    jmx_port: int | None = None
    jmx_host: str | None = None
    java: str = "java"
    extra_opts: list[str] = field(default_factory=list)

    def jvm_opts(self, role: str) -> list[str]:
        """The flags Kafka's scripts add, for ``kafka`` or ``zookeeper``."""
        name = "zookeeper" if role == "zookeeper" else "kafkaServer"
        opts = [f"-Xmx{self.heap}", f"-Xms{self.heap}", *PERF_OPTS,
                f"-Xlog:gc*:file={self.log_dir}/{name}-gc.log:time,tags:filecount=10,filesize=100M"]
        if self.jmx_port:
            opts += ["-Dcom.sun.management.jmxremote=true",
                     "-Dcom.sun.management.jmxremote.authenticate=false",
                     "-Dcom.sun.management.jmxremote.ssl=false",
                     f"-Dcom.sun.management.jmxremote.port={self.jmx_port}",
                     f"-Dcom.sun.management.jmxremote.rmi.port={self.jmx_port}"]
            if self.jmx_host:
                opts.append(f"-Djava.rmi.server.hostname={self.jmx_host}")
        return [*opts, f"-Dkafka.logs.dir={self.log_dir}",
                log_config_flag(self.version, f"{self.conf_dir}/{log_config_name(self.version)}"),
                *self.extra_opts]

    def env_file(self, role: str) -> str:
        """``jvm.env``: read by the systemd unit (EnvironmentFile) and the container command."""
        return f'KOPS_JVM_OPTS="{" ".join(self.jvm_opts(role))}"\n'

    @property
    def classpath(self) -> str:
        return f"{self.home}/libs/*"

    def main(self, role: str) -> list[str]:
        if role == "zookeeper":
            return [ZOOKEEPER_MAIN, f"{self.conf_dir}/zoo.cfg"]
        return [KAFKA_MAIN, f"{self.conf_dir}/server.properties"]

    def argv(self, role: str) -> list[str]:
        """The whole command line, flags expanded (for running outside systemd or sh)."""
        return [self.java, *self.jvm_opts(role), "-cp", self.classpath, *self.main(role)]

    def format_storage(self, cluster_id: str) -> list[str]:
        """Format KRaft storage; ``--ignore-formatted`` makes it a no-op on a formatted node."""
        return [self.java, "-Xmx128m", f"-Dkafka.logs.dir={self.log_dir}",
                log_config_flag(self.version, f"{self.conf_dir}/{log_config_name(self.version)}"),
                "-cp", self.classpath, STORAGE_TOOL, "format", "-t", cluster_id,
                "-c", f"{self.conf_dir}/server.properties", "--ignore-formatted"]


def shell_line(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def container_command(launch: Launch, role: str, cluster_id: str | None = None,
                      zk_data_dir: str = "/var/lib/zookeeper") -> list[str]:
    """``sh -c``: read jvm.env, make the log dir, place myid / format KRaft once, exec the JVM."""
    steps = ["set -f", f". {launch.conf_dir}/jvm.env", f"mkdir -p {shlex.quote(launch.log_dir)}"]
    if role == "zookeeper":
        steps.append(f"cp {launch.conf_dir}/myid {zk_data_dir}/myid")
    elif cluster_id:
        steps.append(shell_line(launch.format_storage(cluster_id)) + " >/dev/null")
    steps.append(f"exec {launch.java} $KOPS_JVM_OPTS -cp {shlex.quote(launch.classpath)} "
                 + shell_line(launch.main(role)))
    return ["sh", "-c", " && ".join(steps[1:]).join(["set -f; ", ""])]
