"""Response bodies that are not domain models, so the OpenAPI document is complete."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict

from kyperian.domain.decisions import Decision
from kyperian.domain.models import IsoTime, Signal
from kyperian.execution import LedgerOrder


class HealthStatus(BaseModel):
    """What anyone (the ALB, the local supervisor) sees at ``GET /health``: one word, no detail."""

    model_config = ConfigDict(frozen=True)

    status: Literal["ok", "degraded", "failing"]
    """``degraded``: Redis is down and decisions come from the table; still healthy for the ALB."""


class HealthReport(HealthStatus):
    """What an authenticated operator sees at ``GET /health/details``."""

    redis: Literal["ok", "unavailable"]
    worker: str
    """Worker state (RUNNING, STOPPED, FAILED...) or DISABLED when no queue is configured."""
    worker_error: str | None = None
    version: str


class SignalsView(BaseModel):
    """The fresh signals fusion would use for a symbol now, highest timeframe first."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    source: Literal["cache", "table"]
    signals: list[Signal]


class DecisionPage(BaseModel):
    """A page of decisions, newest first; pass ``next_before`` as ``before`` for the next page."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    decisions: list[Decision]
    next_before: IsoTime | None = None


class AccountView(BaseModel):
    """The ledger's account: money, the kill switch, and how orders are placed."""

    model_config = ConfigDict(frozen=True)

    venue: str
    account_id: str
    currency: str
    cash: Decimal
    equity: Decimal
    """Cash plus every position at its last fill price."""
    halted: bool
    halt_reason: str | None
    halted_at: IsoTime | None = None
    """When the kill switch was set (None while trading)."""
    auto_trading: bool
    approval_mode: bool
    open_orders: int


class HaltResult(BaseModel):
    """The account after ``POST /halt`` and the flattening orders it placed, if asked."""

    model_config = ConfigDict(frozen=True)

    account: AccountView
    flatten_orders: list[LedgerOrder]
