#!/bin/bash
# Entry point of the Kafka image: `start` (default) runs one KRaft node, `health` checks it.
# Environment:
#   KAFKA_NODE_ID          this node's id (1, 2, 3)
#   KAFKA_VOTERS           static quorum: id@host:controller_port,... (the same on every node)
#   KAFKA_CLUSTER_ID       storage cluster id (the same on every node; base64 of 16 bytes)
#   KAFKA_PORT             client listener port; KAFKA_CONTROLLER_PORT the controller port
#   KAFKA_HOST             address to listen on and advertise (host networking: 127.0.0.1)
#   KAFKA_HEAP             JVM max heap (default 512m)
set -euo pipefail
props=/var/lib/kafka/server.properties
data=/var/lib/kafka/data

if [[ ${1:-start} == health ]]; then
  # Healthy once the client listener accepts and this node has logged its start.
  exec 3<>"/dev/tcp/${KAFKA_HOST}/${KAFKA_PORT}" && grep -q "Kafka Server started" /var/lib/kafka/started
  exit
fi

: "${KAFKA_NODE_ID:?}" "${KAFKA_VOTERS:?}" "${KAFKA_CLUSTER_ID:?}" "${KAFKA_PORT:?}" "${KAFKA_CONTROLLER_PORT:?}"
{
  cat /opt/kafka/cluster.properties
  echo "node.id=${KAFKA_NODE_ID}"
  echo "controller.quorum.voters=${KAFKA_VOTERS}"
  echo "listeners=PLAINTEXT://${KAFKA_HOST}:${KAFKA_PORT},CONTROLLER://${KAFKA_HOST}:${KAFKA_CONTROLLER_PORT}"
  echo "advertised.listeners=PLAINTEXT://${KAFKA_HOST}:${KAFKA_PORT}"
  echo "log.dirs=${data}"
} > "$props"
jvm=(-Xms128m "-Xmx${KAFKA_HEAP:-512m}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError
     -Djava.awt.headless=true -Dlog4j2.configurationFile=/opt/kafka/log4j2.properties -cp '/opt/kafka/libs/*')
if [[ ! -f $data/meta.properties ]]; then
  java "${jvm[@]}" -Xmx256m kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$props" --ignore-formatted
fi
rm -f /var/lib/kafka/started
# The log goes to stdout (docker logs) and the start line to a file the health check reads.
exec java "${jvm[@]}" kafka.Kafka "$props" > >(tee -p >(grep --line-buffered -m1 "Kafka Server started" > /var/lib/kafka/started))
