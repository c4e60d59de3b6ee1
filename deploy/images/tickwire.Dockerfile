# One image for every tickwire role; the command picks it:
#   ingest binance | simulate binance | normalize | bridge redis | bridge nats | topics apply | ...
# Built by `make images` (tickwire/infra/images.py) from a context the host prepares: wheels/deps (every
# runtime dependency, `pip wheel` on the host) and wheels/app (the tickwire wheel). Nothing is fetched
# from PyPI here: pip installs offline (--no-index).
ARG BASE=tickwire-base:bookworm

FROM ${BASE} AS deps
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*
COPY wheels/deps /wheels
RUN python3 -m venv /opt/tickwire \
 && /opt/tickwire/bin/pip install -q --no-index --no-cache-dir --find-links /wheels -r /wheels/requirements.txt

FROM ${BASE}
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends python3 ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && echo 'tickwire:x:10001:10001:tickwire:/app:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'tickwire:x:10001:' >> /etc/group \
 && mkdir -p /app && chown 10001:10001 /app
COPY --from=deps /opt/tickwire /opt/tickwire
# The application last: a source change rebuilds only this layer (dependencies stay cached).
COPY wheels/app /tmp/app
RUN /opt/tickwire/bin/pip install -q --no-index --no-cache-dir --no-deps /tmp/app/*.whl && rm -rf /tmp/app
ENV PATH=/opt/tickwire/bin:/usr/sbin:/usr/bin:/sbin:/bin PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /app
USER 10001:10001
# TICKWIRE_HEALTH_URL (the role's /metrics) when set, else the Kafka cluster answering.
HEALTHCHECK --interval=10s --timeout=8s --start-period=60s --retries=3 \
  CMD ["python3", "-m", "tickwire.infra.healthcheck"]
ENTRYPOINT ["tickwire"]
CMD ["--help"]
