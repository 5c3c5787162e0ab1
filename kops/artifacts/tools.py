"""Kafka's own command-line tools in every node, under the names Kafka's distribution uses.

Kafka's ``bin/*.sh`` are not on Maven, so kops generates a small launcher per tool: it
runs the same main class as that version's own script (the table below, taken from
Kafka's ``bin/*.sh`` of each release line and checked against the jars), over
``<home>/libs/*``, with a client-side log config (WARN and above, to stderr) and a small
heap. Each tool is there as ``kafka-topics.sh`` and as ``kafka-topics``.

Like Kafka's ``kafka-run-class.sh``, a launcher honours ``KAFKA_HEAP_OPTS`` (default
``-Xmx256m``), ``KAFKA_JVM_PERFORMANCE_OPTS``, ``KAFKA_LOG4J_OPTS``, ``KAFKA_OPTS``,
``JAVA_HOME`` and ``CLASSPATH``; those are split into words (never globbed, never
evaluated), and the user's arguments go to the tool as they are (``"$@"``).

The same files go into the Docker image (:mod:`kops.images`) and onto SSH hosts (a small
tar pushed and unpacked into the distribution's home, :mod:`kops.providers.ssh`);
``bin/.kops-tools`` holds their fingerprint, so a host or an image with older launchers
is brought up to date.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass

# tool -> ((first version, main class), ...): a class applies from its version until the
# next entry's; None: the tool is gone from that version on. From Kafka's bin/*.sh of the
# 3.0 ... 3.9 branches and the 4.x jars (a class that moved is the one its script runs).
TABLE: dict[str, tuple[tuple[str, str | None], ...]] = {
    "kafka-acls": (("3.0", "kafka.admin.AclCommand"), ("4.0", "org.apache.kafka.tools.AclCommand")),
    "kafka-broker-api-versions": (("3.0", "kafka.admin.BrokerApiVersionsCommand"),
                                  ("4.0", "org.apache.kafka.tools.BrokerApiVersionsCommand")),
    "kafka-client-metrics": (("3.7", "org.apache.kafka.tools.ClientMetricsCommand"),),
    "kafka-cluster": (("3.0", "kafka.tools.ClusterTool"), ("3.5", "org.apache.kafka.tools.ClusterTool")),
    "kafka-configs": (("3.0", "kafka.admin.ConfigCommand"), ("4.4", "org.apache.kafka.tools.ConfigCommand")),
    "kafka-console-consumer": (("3.0", "kafka.tools.ConsoleConsumer"),
                               ("3.8", "org.apache.kafka.tools.consumer.ConsoleConsumer")),
    "kafka-console-producer": (("3.0", "kafka.tools.ConsoleProducer"), ("4.0", "org.apache.kafka.tools.ConsoleProducer")),
    "kafka-console-share-consumer": (("4.0", "org.apache.kafka.tools.consumer.ConsoleShareConsumer"),),
    "kafka-consumer-groups": (("3.0", "kafka.admin.ConsumerGroupCommand"),
                              ("3.8", "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand")),
    "kafka-consumer-perf-test": (("3.0", "kafka.tools.ConsumerPerformance"),
                                 ("3.5", "org.apache.kafka.tools.ConsumerPerformance")),
    "kafka-delegation-tokens": (("3.0", "kafka.admin.DelegationTokenCommand"),
                                ("3.5", "org.apache.kafka.tools.DelegationTokenCommand")),
    "kafka-delete-records": (("3.0", "kafka.admin.DeleteRecordsCommand"),
                             ("3.6", "org.apache.kafka.tools.DeleteRecordsCommand")),
    "kafka-dump-log": (("3.0", "kafka.tools.DumpLogSegments"), ("4.3", "org.apache.kafka.tools.DumpLogSegments")),
    "kafka-e2e-latency": (("3.5", "org.apache.kafka.tools.EndToEndLatency"),),
    "kafka-features": (("3.0", "kafka.admin.FeatureCommand"), ("3.6", "org.apache.kafka.tools.FeatureCommand")),
    "kafka-get-offsets": (("3.0", "kafka.tools.GetOffsetShell"), ("3.7", "org.apache.kafka.tools.GetOffsetShell")),
    "kafka-groups": (("4.0", "org.apache.kafka.tools.GroupsCommand"),),
    "kafka-jmx": (("3.5", "org.apache.kafka.tools.JmxTool"),),
    "kafka-leader-election": (("3.0", "kafka.admin.LeaderElectionCommand"),
                              ("3.7", "org.apache.kafka.tools.LeaderElectionCommand")),
    "kafka-log-dirs": (("3.0", "kafka.admin.LogDirsCommand"), ("3.6", "org.apache.kafka.tools.LogDirsCommand")),
    "kafka-metadata-quorum": (("3.3", "kafka.admin.MetadataQuorumCommand"),
                              ("3.4", "org.apache.kafka.tools.MetadataQuorumCommand")),
    "kafka-mirror-maker": (("3.0", "kafka.tools.MirrorMaker"), ("4.0", None)),
    "kafka-producer-perf-test": (("3.0", "org.apache.kafka.tools.ProducerPerformance"),),
    "kafka-reassign-partitions": (("3.0", "kafka.admin.ReassignPartitionsCommand"),
                                  ("3.7", "org.apache.kafka.tools.reassign.ReassignPartitionsCommand")),
    "kafka-replica-verification": (("3.0", "kafka.tools.ReplicaVerificationTool"),
                                   ("3.6", "org.apache.kafka.tools.ReplicaVerificationTool")),
    "kafka-share-consumer-perf-test": (("4.1", "org.apache.kafka.tools.ShareConsumerPerformance"),),
    "kafka-share-groups": (("4.0", "org.apache.kafka.tools.consumer.group.ShareGroupCommand"),),
    "kafka-storage": (("3.0", "kafka.tools.StorageTool"),),
    "kafka-streams-application-reset": (("3.0", "kafka.tools.StreamsResetter"),
                                        ("3.5", "org.apache.kafka.tools.StreamsResetter")),
    "kafka-streams-groups": (("4.1", "org.apache.kafka.tools.streams.StreamsGroupCommand"),),
    "kafka-topics": (("3.0", "kafka.admin.TopicCommand"), ("3.7", "org.apache.kafka.tools.TopicCommand")),
    "kafka-transactions": (("3.0", "org.apache.kafka.tools.TransactionsCommand"),),
    "kafka-verifiable-consumer": (("3.0", "org.apache.kafka.tools.VerifiableConsumer"),),
    "kafka-verifiable-producer": (("3.0", "org.apache.kafka.tools.VerifiableProducer"),),
    "kafka-verifiable-share-consumer": (("4.1", "org.apache.kafka.tools.VerifiableShareConsumer"),),
    "connect-distributed": (("3.0", "org.apache.kafka.connect.cli.ConnectDistributed"),),
    "connect-standalone": (("3.0", "org.apache.kafka.connect.cli.ConnectStandalone"),),
    "connect-plugin-path": (("3.6", "org.apache.kafka.tools.ConnectPluginPath"),),
    "zookeeper-security-migration": (("3.0", "kafka.admin.ZkSecurityMigrator"), ("4.0", None)),
    "zookeeper-shell": (("3.0", "org.apache.zookeeper.ZooKeeperMainWithTlsSupportForKafka"), ("4.0", None)),
}
# Words Kafka's script puts before the user's arguments.
LEADING_ARGS: dict[str, tuple[str, ...]] = {"zookeeper-shell": ("-server",)}
# Heaps other than the client default (Connect workers run connectors).
HEAP: dict[str, str] = {"connect-distributed": "512m", "connect-standalone": "512m"}
DEFAULT_HEAP = "256m"
RUN_CLASS = "kafka-run-class"   # Kafka's generic launcher: its first argument is the main class
MARKER = "bin/.kops-tools"
LOG3 = "config/kops-tools-log4j.properties"
LOG4 = "config/kops-tools-log4j2.yaml"
STAMP = "# Generated by kops (kops.tools): do not edit."

_LOG4J = """\
# Generated by kops: Kafka's tools log warnings and errors to stderr (stdout stays the tool's own).
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.appender.stderr.Target=System.err
"""
_LOG4J2 = """\
# Generated by kops: Kafka's tools log warnings and errors to stderr (stdout stays the tool's own).
Configuration:
  Appenders:
    Console:
      name: STDERR
      target: SYSTEM_ERR
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDERR
"""


@dataclass(frozen=True)
class Tool:
    name: str                 # kafka-topics (the file is kafka-topics.sh, kafka-topics links to it)
    main: str                 # the main class
    args: tuple[str, ...] = ()
    heap: str = DEFAULT_HEAP


def _v(version: str) -> tuple[int, ...]:
    return tuple(int(x) for x in version.split(".")[:2])


def table(version: str) -> dict[str, Tool]:
    """tool -> Tool for Kafka ``version`` (only the tools that version has)."""
    out = {}
    for name, rows in TABLE.items():
        main = None
        for since, cls in rows:
            if _v(version) >= _v(since):
                main = cls
        if main is not None:
            out[name] = Tool(name, main, LEADING_ARGS.get(name, ()), HEAP.get(name, DEFAULT_HEAP))
    return out


def log_config(version: str) -> tuple[str, str]:
    """(path under the home, text) of the tools' log config."""
    return (LOG3, _LOG4J) if _v(version) < (4, 0) else (LOG4, _LOG4J2)


def _log_flag(version: str) -> str:
    path, _ = log_config(version)
    if _v(version) < (4, 0):
        return f'-Dlog4j.configuration=file:$home/{path}'
    return f'-Dlog4j2.configurationFile=$home/{path}'


def launcher(version: str, tool: Tool | None) -> str:
    """The launcher's text (``tool`` None: kafka-run-class.sh, whose first argument is the
    main class). POSIX sh; the user's arguments are only ever ``"$@"``."""
    if tool is None:
        what = f"{RUN_CLASS}.sh: runs the main class given as its first argument (Kafka {version}'s classes)"
        main = ""
        heap = DEFAULT_HEAP
        # Kafka's own scripts call it as `kafka-run-class.sh [-daemon] [-name N] [-loggc] CLASS ...`
        pre = ('while [ $# -gt 0 ]; do\n'
               '  case "$1" in\n'
               '    -name) shift; [ $# -gt 0 ] && shift ;;\n'
               '    -loggc) shift ;;\n'
               '    -daemon) echo "kafka-run-class.sh: -daemon is not supported here; run it in the foreground" >&2; '
               'exit 2 ;;\n'
               '    *) break ;;\n'
               '  esac\n'
               'done\n'
               '[ $# -gt 0 ] || { echo "usage: kafka-run-class.sh CLASS [ARGS...]" >&2; exit 2; }\n')
    else:
        what = f"{tool.name}.sh: Kafka {version}'s {tool.main}, as Kafka's own bin/{tool.name}.sh runs it"
        main = " " + " ".join([tool.main, *tool.args])
        heap = tool.heap
        pre = ""
    return (
        "#!/bin/sh\n"
        f"# {what}.\n"
        f"{STAMP}\n"
        "# KAFKA_HEAP_OPTS, KAFKA_JVM_PERFORMANCE_OPTS, KAFKA_LOG4J_OPTS and KAFKA_OPTS are split into\n"
        "# words as Kafka's kafka-run-class.sh does (never globbed); the arguments go as they are.\n"
        "set -f\n"
        'self=$(readlink -f "$0" 2>/dev/null || echo "$0")\n'
        'home=$(dirname "$(dirname "$self")")\n'
        'if [ -n "${JAVA_HOME:-}" ]; then java="$JAVA_HOME/bin/java"; else java=java; fi\n'
        f'KAFKA_HEAP_OPTS=${{KAFKA_HEAP_OPTS:--Xmx{heap}}}\n'
        'KAFKA_JVM_PERFORMANCE_OPTS=${KAFKA_JVM_PERFORMANCE_OPTS:--XX:+UseSerialGC -Djava.awt.headless=true}\n'
        f'KAFKA_LOG4J_OPTS=${{KAFKA_LOG4J_OPTS:-{_log_flag(version)}}}\n'
        "# kops's images carry an archive of Kafka's classes (kops.cds): a tool starts in about half the\n"
        "# time. Only for the class path it was made with; quiet when the JVM cannot map it.\n"
        "cds=\n"
        'if [ -z "${CLASSPATH:-}" ] && [ -r "$home/cds/kafka.jsa" ]; then\n'
        '  cds="-XX:SharedArchiveFile=$home/cds/kafka.jsa -Xlog:cds=off -Xlog:cds+dynamic=off"\n'
        "fi\n"
        f"{pre}"
        'exec "$java" $KAFKA_HEAP_OPTS $KAFKA_JVM_PERFORMANCE_OPTS $cds $KAFKA_LOG4J_OPTS '
        f'-cp "${{CLASSPATH:+$CLASSPATH:}}$home/libs/*" $KAFKA_OPTS{main} "$@"\n'
    )


@dataclass(frozen=True)
class Item:
    path: str                 # relative to the Kafka home
    text: str | None = None   # a file ...
    link: str | None = None   # ... or a symlink to this name (same folder)
    mode: int = 0o755


def items(version: str) -> list[Item]:
    """Every file kops adds to a distribution for its tools, the marker last."""
    out: list[Item] = []
    for tool in [*table(version).values(), None]:
        name = tool.name if tool else RUN_CLASS
        out.append(Item(f"bin/{name}.sh", launcher(version, tool)))
        out.append(Item(f"bin/{name}", link=f"{name}.sh"))
    path, text = log_config(version)
    out.append(Item(path, text, mode=0o644))
    out.append(Item(MARKER, fingerprint(version) + "\n", mode=0o644))
    return out


def fingerprint(version: str) -> str:
    """Changes when any launcher or the log config of ``version`` would."""
    h = hashlib.sha256(version.encode())
    for tool in [*table(version).values(), None]:
        h.update(launcher(version, tool).encode())
    h.update(log_config(version)[1].encode())
    return h.hexdigest()[:16]


def add_to_tar(tar: tarfile.TarFile, version: str, prefix: str = "") -> set[str]:
    """Add the tools' files under ``prefix`` (root-owned); returns their paths (relative)."""
    import time

    now = int(time.time())
    for it in items(version):
        ti = tarfile.TarInfo(prefix + it.path)
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = "root"
        ti.mtime = now
        if it.link is not None:
            ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, it.link, 0o777
            tar.addfile(ti)
        else:
            data = it.text.encode()
            ti.size, ti.mode = len(data), it.mode
            tar.addfile(ti, io.BytesIO(data))
    return {it.path for it in items(version)}


def tar_bytes(version: str) -> bytes:
    """A tar of the tools' files, relative to the Kafka home (for SSH hosts)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        add_to_tar(tar, version)
    return buf.getvalue()


def write(home, version: str) -> None:
    """Write the tools into a distribution folder (``kops dist fetch``)."""
    import os
    from pathlib import Path

    home = Path(home)
    for it in items(version):
        dest = home / it.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.is_symlink() or dest.exists():
            dest.unlink()
        if it.link is not None:
            os.symlink(it.link, dest)
        else:
            dest.write_text(it.text)
            dest.chmod(it.mode)

