"""Configuration of the Schwab venue, frozen and documented field by field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from kyperian.domain.errors import OperationalError


class SchwabConfig(BaseModel):
    """The Schwab app (``schwab`` section of the secret) and how the engine uses it."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    app_key: SecretStr = Field(min_length=1)
    """The app's key from developer.schwab.com; from the broker-credentials secret."""
    app_secret: SecretStr = Field(min_length=1)
    """The app's secret; from the broker-credentials secret."""
    callback_url: str = "https://127.0.0.1:8182"
    """The app's registered callback URL, used once by ``kyperian broker login schwab``."""
    token_secret_id: str = Field(min_length=1)
    """Secrets Manager id of the shared OAuth token (KYPERIAN_SCHWAB_TOKEN_SECRET_ID)."""
    live_orders: bool = False
    """Schwab has no paper environment: ``submit_order`` refuses unless this is true
    (KYPERIAN_SCHWAB_LIVE_ORDERS, default false)."""
    account_number: str | None = None
    """The account to trade (plain number); default the first linked account."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """Timeout of each HTTP call (default 10; KYPERIAN_BROKER_TIMEOUT_SECONDS)."""
    refresh_margin_seconds: int = Field(default=600, ge=360, le=1500)
    """Refresh the 30-minute access token this long before it expires (default 600). More than
    schwab-py's own 300-second leeway, so its automatic refresh never races ours."""
    token_cache_seconds: float = Field(default=60.0, ge=0)
    """How long a read of the token secret is reused before reading it again (default 60)."""
    symbol_overrides: Mapping[str, str] = Field(default_factory=dict)
    """TradingView symbol -> Schwab symbol, winning over the rules (``""`` refuses it)."""

    @classmethod
    def from_section(cls, section: Mapping[str, Any], **settings: Any) -> SchwabConfig:
        """Build from the secret's ``schwab`` section plus settings; names what is missing."""
        try:
            return cls.model_validate({**section, **settings})
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"])
            raise OperationalError(
                f"the 'schwab' section of KYPERIAN_BROKER_CREDENTIALS is incomplete: {fields}"
            ) from None
