"""Configuration of the Interactive Brokers venue, frozen and documented field by field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

PAPER_PORTS: Final = frozenset({4002, 7497})
"""IB Gateway's paper port (4002) and TWS's (7497); live are 4001 and 7496."""


class IbkrConfig(BaseModel):
    """Where the IB Gateway listens and which account trades.

    IB has no API keys: the Gateway holds the login (its own credentials, given to the
    sidecar container, never to the engine) and the engine connects to its socket.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = Field(min_length=1)
    """Gateway host (KYPERIAN_IBKR_HOST; ``127.0.0.1`` when the sidecar runs in the task)."""
    port: int = Field(default=4002, ge=1, le=65535)
    """Gateway API port: 4002 paper (default), 4001 live (KYPERIAN_IBKR_PORT)."""
    client_id: int = Field(default=17, ge=0)
    """API client id, unique per connection to one Gateway (KYPERIAN_IBKR_CLIENT_ID)."""
    account: str | None = None
    """Account to trade and report; default the Gateway's first managed account."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    """Longest wait for one answer from the Gateway (default 10)."""
    reconnect_max_seconds: float = Field(default=60.0, ge=1)
    """Reconnection waits double from 1 s up to this (default 60)."""
    symbol_overrides: Mapping[str, str] = Field(default_factory=dict)
    """TradingView symbol -> IB symbol, winning over the rules (``""`` refuses it)."""

    @property
    def paper(self) -> bool:
        return self.port in PAPER_PORTS
