"""Kafka client security: one set of settings for every tickwire process, one function that turns it
into librdkafka configuration.

Every ``Producer``/``Consumer``/``AdminClient`` of tickwire is built from ``client_conf(bootstrap, ...)``,
so producers, the normalizer's consumers and transactional producers, admin clients, the bridges and the
tooling join a secured cluster the same way. The settings are unprefixed ``KAFKA_*`` variables shared by
every process, like ``KAFKA_BOOTSTRAP_SERVERS``:

``KAFKA_SECURITY_PROTOCOL`` (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), ``KAFKA_SASL_MECHANISM``
(SCRAM-SHA-512 by default when SASL is on), ``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``,
``KAFKA_SSL_CA_LOCATION``, ``KAFKA_SSL_CERTIFICATE_LOCATION``, ``KAFKA_SSL_KEY_LOCATION``,
``KAFKA_SSL_KEY_PASSWORD``, ``KAFKA_SSL_ENDPOINT_IDENTIFICATION`` (true = verify the broker host name).

Passwords are ``SecretStr``: the settings object's repr, logs and errors never show them; only the dict
handed to librdkafka holds the plain value.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import AliasChoices, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tickwire.logs import kv

log = logging.getLogger(__name__)

Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# Typo guard: a KAFKA_SSL_*/KAFKA_SASL_*/KAFKA_SECURITY_* variable that names no field fails loudly.
_GUARDED_PREFIXES = ("KAFKA_SSL_", "KAFKA_SASL_", "KAFKA_SECURITY_")


class KafkaSecurityError(ValueError):
    pass


def _alias(name: str) -> Any:
    return Field(None, validation_alias=AliasChoices(name.lower(), name))


class KafkaSecurity(BaseSettings):
    """Client-side Kafka security of a tickwire process (frozen; unknown keys rejected)."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    security_protocol: Protocol = Field(
        "PLAINTEXT", validation_alias=AliasChoices("security_protocol", "KAFKA_SECURITY_PROTOCOL")
    )
    sasl_mechanism: Mechanism | None = _alias("KAFKA_SASL_MECHANISM")
    sasl_username: str | None = _alias("KAFKA_SASL_USERNAME")
    sasl_password: SecretStr | None = _alias("KAFKA_SASL_PASSWORD")
    ssl_ca_location: str | None = _alias("KAFKA_SSL_CA_LOCATION")
    ssl_certificate_location: str | None = _alias("KAFKA_SSL_CERTIFICATE_LOCATION")
    ssl_key_location: str | None = _alias("KAFKA_SSL_KEY_LOCATION")
    ssl_key_password: SecretStr | None = _alias("KAFKA_SSL_KEY_PASSWORD")
    ssl_endpoint_identification: bool = Field(
        True,
        validation_alias=AliasChoices("ssl_endpoint_identification", "KAFKA_SSL_ENDPOINT_IDENTIFICATION"),
    )

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def uses_tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.uses_sasl and (not self.sasl_username or self.sasl_password is None):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.security_protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        if self.uses_tls:
            for key, path in (
                ("KAFKA_SSL_CA_LOCATION", self.ssl_ca_location),
                ("KAFKA_SSL_CERTIFICATE_LOCATION", self.ssl_certificate_location),
                ("KAFKA_SSL_KEY_LOCATION", self.ssl_key_location),
            ):
                if path and not Path(path).is_file():
                    raise ValueError(f"{key}: no such file {path}")
            if bool(self.ssl_certificate_location) != bool(self.ssl_key_location):
                raise ValueError(
                    "a client certificate needs both KAFKA_SSL_CERTIFICATE_LOCATION and KEY_LOCATION"
                )
        return self

    def librdkafka(self) -> dict[str, str]:
        """The librdkafka properties of these settings (the only place a password is unwrapped)."""
        conf: dict[str, str] = {"security.protocol": self.security_protocol.lower()}
        if self.uses_sasl:
            conf["sasl.mechanism"] = self.sasl_mechanism or "SCRAM-SHA-512"
            conf["sasl.username"] = self.sasl_username or ""
            conf["sasl.password"] = self.sasl_password.get_secret_value() if self.sasl_password else ""
        if self.uses_tls:
            if self.ssl_ca_location:
                conf["ssl.ca.location"] = self.ssl_ca_location
            if self.ssl_certificate_location and self.ssl_key_location:
                conf["ssl.certificate.location"] = self.ssl_certificate_location
                conf["ssl.key.location"] = self.ssl_key_location
            if self.ssl_key_password is not None:
                conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_endpoint_identification else "none"
            )
        return conf

    def secrets(self) -> list[str]:
        """Plain values that must never appear in output (tests grep for them)."""
        return [s.get_secret_value() for s in (self.sasl_password, self.ssl_key_password) if s is not None]


def load_security(env: Mapping[str, str] | None = None) -> KafkaSecurity:
    """Read the settings from ``env`` (default: the process environment); typos are errors."""
    source = os.environ if env is None else env
    known = {f"KAFKA_{name.upper()}" for name in KafkaSecurity.model_fields}
    unknown = sorted(k for k in source if k.upper().startswith(_GUARDED_PREFIXES) and k.upper() not in known)
    if unknown:
        raise KafkaSecurityError(
            f"unknown Kafka security setting(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}"
        )
    values = {k: v for k, v in source.items() if k.upper() in known}
    try:
        return KafkaSecurity.model_validate({k.upper(): v for k, v in values.items()})
    except ValidationError as e:  # without the input values: they may hold a password
        why = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'settings'}: {err['msg']}"
            for err in e.errors(include_input=False)
        )
        raise KafkaSecurityError(f"invalid Kafka security settings: {why}") from None


def explain(error: str, security: KafkaSecurity | None = None) -> str:
    """A client error with the likely cause in tickwire's terms appended (never a secret)."""
    sec = security if security is not None else process_security()
    low = error.lower()
    hint = ""
    if "authentication failed" in low or "invalid credentials" in low:
        hint = f"check KAFKA_SASL_USERNAME ({sec.sasl_username}) and KAFKA_SASL_PASSWORD"
    elif "certificate verify failed" in low:
        hint = f"broker certificate not trusted: KAFKA_SSL_CA_LOCATION={sec.ssl_ca_location or '(unset)'}"
    elif "authorization failed" in low:
        hint = f"User:{sec.sasl_username or 'ANONYMOUS'} has no ACL for this (see tickwire.acls roles)"
    elif not sec.uses_tls and ("transport" in low or "brokers are down" in low or "disconnect" in low):
        hint = (
            f"KAFKA_SECURITY_PROTOCOL={sec.security_protocol} is not TLS; a TLS listener drops plaintext "
            "connections (SSL or SASL_SSL?)"
        )
    return f"{error} [cause? {hint}]" if hint else error


class _ErrorLog:
    """The default ``error_cb`` of every client: each distinct error logged once per interval, explained."""

    def __init__(self, security: KafkaSecurity, interval_s: float = 30.0) -> None:
        self.security, self.interval_s = security, interval_s
        self._last: dict[str, float] = {}

    def __call__(self, err: Any) -> None:
        text = err.str() if hasattr(err, "str") else str(err)
        now = time.monotonic()
        if now - self._last.get(text, -self.interval_s) >= self.interval_s:
            self._last[text] = now
            log.warning("kafka client error %s", kv(error=explain(text, self.security)))


@lru_cache(maxsize=1)
def process_security() -> KafkaSecurity:
    """This process's settings, read once from the environment."""
    return load_security()


def client_conf(
    bootstrap: str,
    extra: Mapping[str, Any] | None = None,
    *,
    security: KafkaSecurity | None = None,
) -> dict[str, Any]:
    """librdkafka configuration of one client: bootstrap + security + the caller's own keys.

    ``security`` defaults to the process's settings (``KAFKA_*`` environment). The caller's keys come
    last, so an explicit ``KAFKA_CLIENT_CONFIG``-style override still wins (``error_cb`` too: the default
    logs each distinct client error once per 30 s with its likely cause, ``explain``).
    """
    sec = security if security is not None else process_security()
    return {"bootstrap.servers": bootstrap, "error_cb": _ErrorLog(sec), **sec.librdkafka(), **(extra or {})}
