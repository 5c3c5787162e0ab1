# Rendered by kops: cluster prod's Kafka tools (/opt/kops/kafka_2.13-3.9.2/bin) for login shells on this host.
if [ -z "${KOPS_CLUSTER:-}" ]; then
  export KOPS_CLUSTER=prod
  export KAFKA_BOOTSTRAP_SERVERS=10.0.0.11:19092,10.0.0.12:19092,10.0.0.13:19092
  export ZOOKEEPER_CONNECT=10.0.0.11:2181,10.0.0.12:2181,10.0.0.13:2181
  PATH=/opt/kops/kafka_2.13-3.9.2/bin:"$PATH"; export PATH
fi
