"""Local development servers (Kafka KRaft from Maven jars, Redis, NATS JetStream) started by the project.

Entry points: ``tickwire infra up|down|status`` (``tickwire.infra.cli``) and the ``ensure_*`` helpers used
by the test fixtures. Ports, paths and versions live in ``tickwire.infra.config``.
"""

from __future__ import annotations

from tickwire.infra.config import InfraConfig, load_config

__all__ = ["InfraConfig", "load_config"]
