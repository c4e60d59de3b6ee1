"""Base for the one frozen pydantic-settings class each process has.

Unknown keys are rejected, including environment variables that carry the class's prefix but name no
field (a typo such as ``ALPACA_SYMBOL=`` must fail loudly, not be ignored).
"""

from __future__ import annotations

import os
from typing import Any, Self

from pydantic_settings import BaseSettings, SettingsConfigDict


class UnknownSettingError(ValueError):
    pass


class ProcessSettings(BaseSettings):
    model_config = SettingsConfigDict(frozen=True, extra="forbid", env_nested_delimiter=None)

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        prefix = (cls.model_config.get("env_prefix") or "").upper()
        if prefix:
            known = {prefix + name.upper() for name in cls.model_fields}
            for f in cls.model_fields.values():
                if f.validation_alias and isinstance(f.validation_alias, str):
                    known.add(f.validation_alias.upper())
            unknown = sorted(k for k in os.environ if k.upper().startswith(prefix) and k.upper() not in known)
            if unknown:
                raise UnknownSettingError(
                    f"unknown setting(s) {', '.join(unknown)} for {cls.__name__}; "
                    f"valid: {', '.join(sorted(known))}"
                )
        return cls(**overrides)
