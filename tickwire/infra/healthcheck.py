"""Container health check of the tickwire image (``HEALTHCHECK``): exit 0 healthy, 1 not.

``TICKWIRE_HEALTH_URL`` set (a role's own ``/metrics``, e.g. ``http://127.0.0.1:9102/metrics``): healthy
when it answers 200. Otherwise (one-shot roles, roles without a metrics port): healthy when the Kafka
cluster of ``KAFKA_BOOTSTRAP_SERVERS`` returns metadata naming at least one broker.
"""

from __future__ import annotations

import logging
import os
import sys
import urllib.error
import urllib.request

from tickwire.contract.kafka_security import client_conf
from tickwire.logs import kv

log = logging.getLogger(__name__)


def check_url(url: str, timeout: float = 5.0) -> tuple[bool, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status) == 200, f"HTTP {r.status}"
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return False, f"{type(e).__name__}: {e}"


def check_kafka(bootstrap: str, timeout: float = 5.0) -> tuple[bool, str]:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(client_conf(bootstrap) | {"log_level": 0, "socket.timeout.ms": 4000})
    try:
        brokers = admin.list_topics(timeout=timeout).brokers
    except Exception as e:  # unreachable, auth: unhealthy with the reason
        return False, f"{type(e).__name__}: {e}"
    return bool(brokers), f"{len(brokers)} broker(s)"


def main(env: dict[str, str] | None = None) -> int:
    e = dict(os.environ) if env is None else env
    url = e.get("TICKWIRE_HEALTH_URL")
    if url:
        ok, why = check_url(url)
        target = url
    else:
        target = e.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
        ok, why = check_kafka(target)
    print(f"{'healthy' if ok else 'unhealthy'} {kv(target=target, detail=why)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
