"""Configuration of the paper venue, frozen and documented field by field."""

from __future__ import annotations

from decimal import Decimal

from pydantic import BaseModel, ConfigDict, Field


class PaperBrokerConfig(BaseModel):
    """How the simulated account behaves."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: str = "paper"
    """Shown in ``Account.account_id`` (default ``paper``)."""
    currency: str = "USD"
    """Base currency of the account (default USD)."""
    starting_cash: Decimal = Field(default=Decimal(100000), gt=0)
    """Cash at start (default 100 000; KYPERIAN_PAPER_STARTING_CASH)."""
    commission_per_order: Decimal = Field(default=Decimal(0), ge=0)
    """Flat commission charged on each fill (default 0)."""
    slippage_bps: Decimal = Field(default=Decimal(0), ge=0)
    """Market orders fill this many basis points worse than the reference price (default 0)."""
    allow_short: bool = True
    """Whether a sell may take the position below zero (default True)."""
    fractional: bool = True
    """Whether fractional quantities are accepted (default True)."""
    max_leverage: Decimal = Field(default=Decimal(1), gt=0)
    """Gross exposure may not exceed equity x this (default 1: no margin)."""
