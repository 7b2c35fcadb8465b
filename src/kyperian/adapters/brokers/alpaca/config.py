"""Configuration of the Alpaca venue, frozen and documented field by field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kyperian.domain.errors import OperationalError


class AlpacaConfig(BaseModel):
    """Keys and endpoint of one Alpaca account (the ``alpaca`` section of the secret)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    api_key_id: SecretStr = Field(min_length=1)
    """Key id (``APCA-API-KEY-ID``); from the broker-credentials secret, never a setting."""
    api_secret_key: SecretStr = Field(min_length=1)
    """Secret key (``APCA-API-SECRET-KEY``); from the broker-credentials secret."""
    paper: bool = True
    """``paper-api.alpaca.markets`` when true (default), ``api.alpaca.markets`` when false.
    Paper and live keys differ: the keys must match this flag."""
    url_override: str | None = None
    """Another trading endpoint (a proxy); default None."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """Connect and read timeout of each HTTP call (default 10; KYPERIAN_BROKER_TIMEOUT_SECONDS).
    A submit that times out is not retried: the engine asks ``find_order`` instead."""
    read_attempts: int = Field(default=3, ge=1, le=5)
    """Attempts for reads (account, positions, orders) on a temporary failure (default 3).
    Submits get exactly one attempt."""
    max_read_wait_seconds: float = Field(default=2.0, ge=0, le=30)
    """A read waits out a rate limit only if it resets within this (default 2); otherwise it
    fails at once with ``RateLimited``, so an API caller gets 503 + Retry-After quickly."""
    symbol_overrides: Mapping[str, str] = Field(default_factory=dict)
    """TradingView symbol -> Alpaca symbol, winning over the rules (``""`` refuses it)."""

    @classmethod
    def from_section(cls, section: Mapping[str, Any], **settings: Any) -> AlpacaConfig:
        """Build from the secret's ``alpaca`` section plus settings; names what is missing."""
        try:
            return cls.model_validate({**section, **settings})
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
            raise OperationalError(
                f"the 'alpaca' section of KYPERIAN_BROKER_CREDENTIALS is incomplete: {fields}"
            ) from None
