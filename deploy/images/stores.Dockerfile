# Redis and NATS (JetStream) from Debian's packages, one image, the command picks the server:
#   redis-server --bind 127.0.0.1 --port 6379 ...   |   nats-server -js -sd /data/jetstream ...
ARG BASE=tickwire-base:bookworm
FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends redis-server nats-server \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && echo 'stores:x:10004:10004:stores:/data:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'stores:x:10004:' >> /etc/group \
 && mkdir -p /data && chown 10004:10004 /data
WORKDIR /data
USER 10004:10004
VOLUME /data
