"""The JVM's class data sharing archives (AppCDS) built into kops's images.

A JVM that maps an archive of the classes Kafka loads at start skips reading, parsing and
verifying them again: a broker is ready in about half the time on a small machine. The
image build runs a short training cluster inside the image (ZooKeeper + broker on 3.x, a
combined KRaft node on 4.x), a produce and a consume through Kafka's own perf tools, and
a clean stop; each JVM writes the classes it loaded to a dynamic archive at exit
(``-XX:ArchiveClassesAtExit``, JDK 13+). Nodes then start with ``-XX:SharedArchiveFile``.

An archive is only valid for the JVM and the class path it was made with, which is why it
is made inside the image and used only by nodes that run that image (kops's own images on
the Docker driver). With the default ``-Xshare:auto`` a JVM that cannot map it starts
normally, only slower, so a user's own ``kafka.image`` without archives is fine.
"""

from __future__ import annotations

import hashlib

DIR = "/opt/kafka/cds"
TRAIN_DEADLINE = 180   # seconds the training cluster may take in the image build


def archive(role: str) -> str:
    """The archive a role's JVM maps: ZooKeeper has its own; brokers, controllers and
    kops's one-shot tools (storage format) share the broker's."""
    return f"{DIR}/{'zookeeper' if role == 'zookeeper' else 'kafka'}.jsa"


def flags(role: str) -> list[str]:
    return [f"-XX:SharedArchiveFile={archive(role)}"]


# Runs as root in the image build, with only sh, grep, sleep and java from the base image.
# $1: the Kafka major version. Class path and home are the ones nodes use (launch.Launch),
# so the archives validate at run time.
TRAIN_SCRIPT = r"""#!/bin/sh
set -eu
MAJOR="$1"
W=/tmp/kops-cds; CP='/opt/kafka/libs/*'; DEADLINE=__DEADLINE__
rm -rf "$W"; mkdir -p "$W" /opt/kafka/cds
if [ "$MAJOR" -lt 4 ]; then LOG="-Dlog4j.configuration=file:/opt/kafka/config/log4j.properties"
else LOG="-Dlog4j2.configurationFile=/opt/kafka/config/log4j2.yaml"; fi
set -f   # no globbing: the class path's '*' goes to java as it is (as in the nodes' argv)
J="java -Xmx256m -Xms256m -XX:+UseG1GC -Djava.awt.headless=true -Dkafka.logs.dir=$W $LOG -cp $CP"
fail() { set +f; echo "kops-cds: $*" >&2; for f in "$W"/*.out; do echo "== $f" >&2; tail -n 40 "$f" >&2 || true; done; exit 1; }
await() {   # file, pattern
  n=0
  until grep -q "$2" "$1" 2>/dev/null; do
    n=$((n + 1)); [ "$n" -le $((DEADLINE * 10)) ] || fail "no '$2' in $1 after ${DEADLINE} s"
    sleep 0.1
  done
}
stop() { kill -TERM "$1"; wait "$1" || true; }
cat > "$W/server.properties" <<EOF
log.dirs=$W/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
EOF
if [ "$MAJOR" -lt 4 ]; then
  printf 'dataDir=%s/zk\nclientPort=21810\nadmin.enableServer=false\n' "$W" > "$W/zoo.cfg"
  $J -XX:ArchiveClassesAtExit=/opt/kafka/cds/zookeeper.jsa \
     org.apache.zookeeper.server.quorum.QuorumPeerMain "$W/zoo.cfg" > "$W/zookeeper.out" 2>&1 &
  ZK=$!
  await "$W/zookeeper.out" "binding to port"
  printf 'broker.id=1\nzookeeper.connect=localhost:21810\nlisteners=PLAINTEXT://localhost:19099\n' >> "$W/server.properties"
else
  printf 'process.roles=broker,controller\nnode.id=1\ncontroller.quorum.voters=1@localhost:19098\n' >> "$W/server.properties"
  printf 'controller.listener.names=CONTROLLER\nlisteners=PLAINTEXT://localhost:19099,CONTROLLER://localhost:19098\n' >> "$W/server.properties"
  $J kafka.tools.StorageTool format -t kopsCdsTrainingAAAAAAA -c "$W/server.properties" > "$W/format.out" 2>&1 \
    || fail "storage format failed"
fi
$J -XX:ArchiveClassesAtExit=/opt/kafka/cds/kafka.jsa kafka.Kafka "$W/server.properties" > "$W/kafka.out" 2>&1 &
KAFKA=$!
await "$W/kafka.out" "started (kafka.server"
$J org.apache.kafka.tools.ProducerPerformance --topic kops-cds --num-records 2000 --record-size 100 \
   --throughput -1 --producer-props bootstrap.servers=localhost:19099 acks=all > "$W/producer.out" 2>&1 \
   || fail "the training producer failed"
$J org.apache.kafka.tools.ConsumerPerformance --bootstrap-server localhost:19099 --topic kops-cds \
   --messages 2000 --timeout 60000 > "$W/consumer.out" 2>&1 || fail "the training consumer failed"
stop "$KAFKA"
[ "$MAJOR" -lt 4 ] && stop "$ZK"
ARCHIVES=/opt/kafka/cds/kafka.jsa; [ "$MAJOR" -lt 4 ] && ARCHIVES="$ARCHIVES /opt/kafka/cds/zookeeper.jsa"
for a in $ARCHIVES; do [ -s "$a" ] || fail "no archive $a"; chmod 0444 "$a"; done
rm -rf "$W"
echo "kops-cds: archives $(ls /opt/kafka/cds)"
""".replace("__DEADLINE__", str(TRAIN_DEADLINE))


def digest() -> str:
    return hashlib.sha256(TRAIN_SCRIPT.encode()).hexdigest()[:12]
