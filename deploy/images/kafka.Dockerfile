# One Apache Kafka KRaft node (broker+controller) per container: the Maven Central jars the project
# resolves (tickwire/infra/kafka.py) on Debian's Java 17 runtime. The node is configured by environment
# (see kafka-node.sh); the cluster-wide settings (replication 3, min ISR 2, no unclean election,
# transaction log 3/2) come from the same code as `tickwire infra up --brokers 3` (cluster.properties).
ARG BASE=tickwire-base:bookworm
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && echo 'kafka:x:10002:10002:kafka:/var/lib/kafka:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'kafka:x:10002:' >> /etc/group \
 && mkdir -p /var/lib/kafka/data && chown -R 10002:10002 /var/lib/kafka
COPY libs /opt/kafka/libs
COPY cluster.properties log4j2.properties kafka-node.sh /opt/kafka/
USER 10002:10002
ENV KAFKA_HOST=127.0.0.1 KAFKA_HEAP=512m
VOLUME /var/lib/kafka
HEALTHCHECK --interval=5s --timeout=5s --start-period=180s --retries=5 CMD ["/opt/kafka/kafka-node.sh", "health"]
ENTRYPOINT ["/opt/kafka/kafka-node.sh"]
CMD ["start"]
