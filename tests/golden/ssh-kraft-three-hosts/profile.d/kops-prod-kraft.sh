# Rendered by kops: cluster prod-kraft's Kafka tools (/opt/kops/kafka_2.13-4.4.0/bin) for login shells on this host.
if [ -z "${KOPS_CLUSTER:-}" ]; then
  export KOPS_CLUSTER=prod-kraft
  export KAFKA_BOOTSTRAP_SERVERS=10.0.0.11:19092,10.0.0.12:19092,10.0.0.13:19092
  PATH=/opt/kops/kafka_2.13-4.4.0/bin:"$PATH"; export PATH
fi
