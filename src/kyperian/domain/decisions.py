"""What the engine concludes about a symbol: decisions, the vetoes that block them, and why.

A ``Decision`` is the audited output of fusion: the action, the fused score and
confidence, the position size, every veto with its reason, and the ids of the signals
it was built from, so any decision can be replayed from stored signals. Everything here
is frozen data with no I/O; the rules that produce it live in ``kyperian.fusion``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from kyperian.domain.models import Action, IsoTime, Timeframe, iso_utc

SIGNAL_LIFETIME_SECONDS: Final = MappingProxyType(
    {
        Timeframe.W1: 7 * 86400,
        Timeframe.D1: 86400,
        Timeframe.H4: 8 * 3600,
        Timeframe.H1: 2 * 3600,
        Timeframe.M30: 3600,
        Timeframe.M15: 30 * 60,
    }
)
"""How long a signal of each timeframe remains an opinion worth fusing.

1W, 1D and 4h are the specification's cache TTLs (7 days, 24 h, 8 h). The shorter
timeframes follow the 4h rule of two bars: 1h -> 2 h, 30m -> 1 h, 15m -> 30 min. The
Redis cache expires keys after these lifetimes and fusion ignores older signals by default.
"""


class VetoCode(StrEnum):
    """Why a decision was blocked; used as the ``reason`` dimension of the Vetoes metric."""

    NO_ANCHOR = "NO_ANCHOR"
    """No fresh signal on any anchor timeframe: the engine waits."""
    HIGHER_TIMEFRAME_CONFLICT = "HIGHER_TIMEFRAME_CONFLICT"
    """A higher timeframe points against an entry timed on a lower one."""
    LOW_CONFIDENCE = "LOW_CONFIDENCE"
    """The fused confidence is below the configured floor."""
    MAX_POSITION_SIZE = "MAX_POSITION_SIZE"
    """The symbol's position in this direction is already a full position."""
    MAX_EXPOSURE = "MAX_EXPOSURE"
    """The entry would take the symbol's open exposure above its limit."""
    MAX_GROSS_EXPOSURE = "MAX_GROSS_EXPOSURE"
    """The entry would take the whole book's gross exposure (every symbol, open orders
    included) above its limit; checked by ``kyperian.execution`` on the shared ledger."""
    MAX_DAILY_LOSS = "MAX_DAILY_LOSS"
    """The account's loss since 00:00 UTC (realized plus unrealized at the last known
    prices) reached its limit: no new entry until the next UTC day."""
    MAX_ORDERS_PER_MINUTE = "MAX_ORDERS_PER_MINUTE"
    """The account already placed its limit of orders in the last 60 seconds (ledger count)."""
    STOP_OUT_COOLDOWN = "STOP_OUT_COOLDOWN"
    """A position on the symbol was just closed at a loss: no new entry until the cooldown ends."""


class Veto(BaseModel):
    """One reason a decision may not be traded, in words an operator can act on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    code: VetoCode
    reason: str
    timeframe: Timeframe | None = None
    """The timeframe that caused the veto, when one did."""


class TimeframeView(BaseModel):
    """How one timeframe voted: kept in the decision so an audit can follow the arithmetic."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timeframe: Timeframe
    weight: float = Field(ge=0)
    score: float = Field(ge=-1, le=1)
    """Source-weighted mean of ``strength x confidence`` of the timeframe's fresh signals."""
    confidence: float = Field(ge=0, le=1)
    """Source-weighted mean confidence of those signals."""
    signal_ids: tuple[str, ...]


class Decision(BaseModel):
    """The engine's conclusion for one symbol at one moment.

    ``position_size`` is a fraction of account equity (0.05 = 5 %); it is zero for
    NEUTRAL, WAIT and every vetoed decision. A vetoed entry keeps the action fusion
    proposed (so the veto rate per action can be measured) but is never traded: check
    ``actionable``, not ``action``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    decision_id: str
    symbol: str
    action: Action
    score: float = Field(ge=-1, le=1)
    confidence: float = Field(ge=0, le=1)
    position_size: float = Field(ge=0, le=1)
    vetoes: tuple[Veto, ...] = ()
    signal_ids: tuple[str, ...] = ()
    """Ids of the fresh signals fusion used, in the order of ``timeframes``."""
    timeframes: tuple[TimeframeView, ...] = ()
    trigger_signal_id: str | None = None
    """The signal whose arrival caused this decision (the idempotency key)."""
    triggered_at: IsoTime | None = None
    """When that signal reached the webhook: the decision's place in time and in the table."""
    price: float | None = None
    """Latest price carried by the signals used; the reference price for an order."""
    take_profit: float | None = None
    """The trigger alert's take-profit when it points the decision's way (bracket exit)."""
    stop_loss: float | None = None
    """The trigger alert's stop-loss when it points the decision's way (bracket stop)."""
    exposure: float = 0.0
    """Signed open exposure of the symbol (fraction of equity) when the decision was made."""
    decided_at: IsoTime

    @property
    def sort_time(self) -> datetime:
        """The time decisions are ordered by: the trigger's arrival, else the decision time.

        Only an order: a redelivered alert arrives again with a new ``received_at``, so the
        Decisions table keys the row by the trigger's signal id, not by this time.
        """
        return self.triggered_at or self.decided_at

    @property
    def vetoed(self) -> bool:
        """True when at least one veto blocks the decision."""
        return bool(self.vetoes)

    @property
    def actionable(self) -> bool:
        """True for an unvetoed BUY/SELL/STRONG_* with a size: the only kind a broker sees."""
        return not self.vetoes and self.action.direction != 0 and self.position_size > 0


def decision_id(
    symbol: str, trigger_id: str | None, decided_at: datetime, signal_ids: tuple[str, ...] = ()
) -> str:
    """Deterministic id: one per (symbol, triggering signal), so a broker can dedupe orders.

    32 hex characters (a 128-bit BLAKE2b digest), short enough for every venue's client
    order id. Without a trigger the id is derived from the time and the signals used.
    """
    if trigger_id:
        name = f"{symbol}|{trigger_id}"
    else:
        name = f"{symbol}|{iso_utc(decided_at)}|{','.join(signal_ids)}"
    return hashlib.blake2b(name.encode(), digest_size=16).hexdigest()
