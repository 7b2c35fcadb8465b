"""What each cockpit panel shows, computed from the engine's ports: no HTML, no HTTP here.

Each ``*_view`` function reads what its panel needs (the symbol index, the cache, the
feed, the Decisions table) and returns plain frozen data a template renders. Freshness
uses the fusion's own lifetimes (``FusionRules.max_age_seconds``), so "fresh" on the
board means exactly "fusion would still count it". Reads fall back the way the API does:
Redis first, the tables when the cache is down; a panel that cannot be filled says why
instead of failing the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Final, Literal

from kyperian.domain.activity import ActivityFeed, FeedEntry, SymbolIndex
from kyperian.domain.decisions import Decision
from kyperian.domain.engine_ports import DecisionStore, SignalCache, SignalHistory
from kyperian.domain.errors import KyperianError
from kyperian.domain.models import Signal, Timeframe
from kyperian.engine.alarm_watch import WatchStatus
from kyperian.engine.degraded import CacheCircuit
from kyperian.execution import (
    LedgerAccount,
    LedgerOrder,
    LedgerPosition,
    OrderExecutor,
    OrderState,
)
from kyperian.fusion import FusionRules

BOARD_TIMEFRAMES: Final = tuple(reversed(Timeframe))
"""Columns of the board: 1W first, as traders read top-down."""
LATENCY_WINDOW: Final = 200
"""Recent decisions the latency percentiles are computed over."""
CHART_POINTS: Final = 200
ORDERS_READ: Final = 200
"""Orders read per ledger refresh (one query of the account's partition), newest shown."""


def age_words(seconds: float) -> str:
    """``42s``, ``5m``, ``3h``, ``2d``: how long ago, in the fewest characters."""
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


@dataclass(frozen=True)
class Cell:
    """The latest signal of one timeframe for one symbol."""

    action: str
    source: str
    age: str
    fresh: bool
    price: float | None


@dataclass(frozen=True)
class BoardRow:
    symbol: str
    cells: tuple[Cell | None, ...]
    decision: Decision | None
    decision_age: str | None


@dataclass(frozen=True)
class BoardView:
    timeframes: tuple[Timeframe, ...]
    rows: tuple[BoardRow, ...]
    source: Literal["cache", "table"]
    problem: str | None = None


def _latest_per_timeframe(signals: Sequence[Signal]) -> dict[Timeframe, Signal]:
    latest: dict[Timeframe, Signal] = {}
    for signal in signals:
        held = latest.get(signal.timeframe)
        if held is None or (signal.timestamp, signal.received_at) > (
            held.timestamp,
            held.received_at,
        ):
            latest[signal.timeframe] = signal
    return latest


def _cell(signal: Signal | None, rules: FusionRules, now: datetime) -> Cell | None:
    if signal is None:
        return None
    age = (now - signal.timestamp).total_seconds()
    return Cell(
        action=signal.action.value,
        source=signal.source.value,
        age=age_words(age),
        fresh=age <= rules.max_age_seconds[signal.timeframe],
        price=signal.price,
    )


@dataclass(frozen=True)
class Readers:
    """The ports the panels read, gathered so each view takes one argument."""

    symbols: SymbolIndex | None
    feed: ActivityFeed | None
    cache: SignalCache
    decisions: DecisionStore
    history: SignalHistory
    circuit: CacheCircuit
    rules: FusionRules


def _signals_and_decision(
    readers: Readers, symbol: str, now: datetime
) -> tuple[list[Signal], Decision | None, bool]:
    """The symbol's cached signals and decision, or the tables' when Redis is down."""
    if readers.circuit.should_try():
        try:
            signals = readers.cache.latest_signals(symbol)
            decision = readers.cache.latest_decision(symbol)
        except KyperianError:
            pass
        else:
            return signals, decision or readers.decisions.latest(symbol), True
    return readers.history.recent(symbol, now), readers.decisions.latest(symbol), False


def board_view(readers: Readers, now: datetime) -> BoardView:
    """Every indexed symbol: latest signal per timeframe and the current decision."""
    if readers.symbols is None:
        return BoardView(BOARD_TIMEFRAMES, (), "table", "no symbol index is configured")
    try:
        symbols = readers.symbols.symbols()
    except KyperianError as exc:
        return BoardView(BOARD_TIMEFRAMES, (), "table", f"symbol index unavailable: {exc}")
    rows: list[BoardRow] = []
    all_cached = True
    for symbol in symbols:
        try:
            signals, decision, cached = _signals_and_decision(readers, symbol, now)
        except KyperianError as exc:
            return BoardView(BOARD_TIMEFRAMES, tuple(rows), "table", f"{symbol}: {exc}")
        all_cached = all_cached and cached
        latest = _latest_per_timeframe(signals)
        rows.append(
            BoardRow(
                symbol=symbol,
                cells=tuple(_cell(latest.get(tf), readers.rules, now) for tf in BOARD_TIMEFRAMES),
                decision=decision,
                decision_age=(
                    age_words((now - decision.decided_at).total_seconds()) if decision else None
                ),
            )
        )
    return BoardView(BOARD_TIMEFRAMES, tuple(rows), "cache" if all_cached else "table")


@dataclass(frozen=True)
class FeedRow:
    at: datetime
    symbol: str
    signal: Signal | None
    decision: Decision
    latency_ms: float | None


@dataclass(frozen=True)
class FeedView:
    rows: tuple[FeedRow, ...]
    symbol: str | None
    symbols: tuple[str, ...]
    source: Literal["feed", "table"]
    problem: str | None = None


def _row(entry: FeedEntry) -> FeedRow:
    return FeedRow(
        at=entry.decision.decided_at,
        symbol=entry.decision.symbol,
        signal=entry.signal,
        decision=entry.decision,
        latency_ms=entry.latency_ms,
    )


def _decision_row(decision: Decision) -> FeedRow:
    return FeedRow(decision.decided_at, decision.symbol, None, decision, None)


def _symbols(readers: Readers) -> tuple[str, ...]:
    if readers.symbols is None:
        return ()
    try:
        return tuple(readers.symbols.symbols())
    except KyperianError:
        return ()


def feed_view(readers: Readers, symbol: str | None, limit: int = 50) -> FeedView:
    """Newest first; from the Redis feed, else from the Decisions table (decisions only)."""
    symbols = _symbols(readers)
    if readers.feed is not None and readers.circuit.should_try():
        try:
            entries = readers.feed.recent(limit, symbol)
        except KyperianError:
            pass
        else:
            return FeedView(tuple(_row(e) for e in entries), symbol, symbols, "feed")
    wanted = (symbol,) if symbol else symbols
    decisions: list[Decision] = []
    try:
        for name in wanted:
            decisions += readers.decisions.history(name, limit=min(limit, 20))
    except KyperianError as exc:
        return FeedView((), symbol, symbols, "table", f"decisions unavailable: {exc}")
    decisions.sort(key=lambda d: d.decided_at, reverse=True)
    rows = tuple(_decision_row(d) for d in decisions[:limit])
    return FeedView(rows, symbol, symbols, "table", "the live feed is unavailable (Redis)")


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile (``fraction`` in (0, 1]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return ordered[rank - 1]


@dataclass(frozen=True)
class Venue:
    name: str
    connected: bool
    detail: str


@dataclass(frozen=True)
class HealthView:
    p50_ms: float | None
    p99_ms: float | None
    sample: int
    queue_depth: int | None
    queue_problem: str | None
    degraded: bool
    redis_ok: bool
    worker: str
    venues: tuple[Venue, ...]
    notify_channels: tuple[str, ...] = field(default_factory=tuple)
    alarm_watch: WatchStatus | None = None
    """The alarm watcher's last poll; None when it is off."""


def health_view(
    readers: Readers,
    *,
    queue_depth: Callable[[], int] | None,
    worker: str,
    venues: Sequence[Venue],
    notify_channels: Sequence[str] = (),
    alarm_watch: WatchStatus | None = None,
) -> HealthView:
    """Latency percentiles over the feed's recent decisions, queue, cache, worker, venues."""
    latencies: list[float] = []
    if readers.feed is not None and readers.circuit.should_try():
        try:
            latencies = [e.latency_ms for e in readers.feed.recent(LATENCY_WINDOW)]
        except KyperianError:
            latencies = []
    try:
        readers.cache.check()
        redis_ok = True
    except KyperianError:
        redis_ok = False
    depth: int | None = None
    problem: str | None = None
    if queue_depth is None:
        problem = "no queue configured"
    else:
        try:
            depth = queue_depth()
        except KyperianError as exc:
            problem = str(exc)
    return HealthView(
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        sample=len(latencies),
        queue_depth=depth,
        queue_problem=problem,
        degraded=readers.circuit.degraded,
        redis_ok=redis_ok,
        worker=worker,
        venues=tuple(venues),
        notify_channels=tuple(notify_channels),
        alarm_watch=alarm_watch,
    )


@dataclass(frozen=True)
class ChartView:
    symbol: str
    points: tuple[dict[str, float], ...]
    """``{"time": epoch seconds, "value": price}``, ascending, one per second at most."""
    markers: tuple[dict[str, object], ...]
    problem: str | None = None


def _marker(decision: Decision, when: int) -> dict[str, object] | None:
    direction = decision.action.direction
    if direction == 0:
        return None
    if decision.vetoed:
        return {
            "time": when,
            "position": "aboveBar",
            "shape": "circle",
            "color": "#9aa0a6",
            "text": f"{decision.action.value} vetoed",
        }
    up = direction > 0
    return {
        "time": when,
        "position": "belowBar" if up else "aboveBar",
        "shape": "arrowUp" if up else "arrowDown",
        "color": "#1e8e3e" if up else "#d93025",
        "text": f"{decision.action.value} {decision.position_size:.1%}",
    }


def chart_view(readers: Readers, symbol: str) -> ChartView:
    """Alert prices (from the feed, else decision prices) with the decisions as markers."""
    pairs: list[tuple[datetime, float | None, Decision]] = []
    try:
        entries = (
            readers.feed.recent(CHART_POINTS, symbol)
            if readers.feed is not None and readers.circuit.should_try()
            else []
        )
    except KyperianError:
        entries = []
    if entries:
        pairs = [(e.signal.received_at, e.signal.price, e.decision) for e in entries]
    else:
        try:
            history = readers.decisions.history(symbol, limit=CHART_POINTS)
        except KyperianError as exc:
            return ChartView(symbol, (), (), f"decisions unavailable: {exc}")
        pairs = [(d.sort_time, d.price, d) for d in history]
    by_second: dict[int, tuple[float, Decision]] = {}
    for moment, price, decision in sorted(pairs, key=lambda p: p[0]):
        if price is not None:
            by_second[int(moment.timestamp())] = (price, decision)
    points = tuple({"time": t, "value": p} for t, (p, _) in sorted(by_second.items()))
    markers = tuple(
        m for t, (_, d) in sorted(by_second.items()) if (m := _marker(d, t)) is not None
    )
    return ChartView(symbol, points, markers)


@dataclass(frozen=True)
class PositionRow:
    symbol: str
    quantity: Decimal
    average_price: Decimal
    mark: Decimal
    unrealized: Decimal
    realized: Decimal


@dataclass(frozen=True)
class LedgerView:
    installed: bool
    account: LedgerAccount | None = None
    equity: Decimal | None = None
    positions: tuple[PositionRow, ...] = ()
    pending: tuple[LedgerOrder, ...] = ()
    orders: tuple[LedgerOrder, ...] = ()
    problem: str | None = None


def _position_row(position: LedgerPosition, price: Decimal | None) -> PositionRow:
    mark = position.mark(price)
    return PositionRow(
        symbol=position.symbol,
        quantity=position.quantity,
        average_price=position.average_price,
        mark=mark,
        unrealized=(mark - position.average_price) * position.quantity,
        realized=position.realized_pnl,
    )


def ledger_view(
    execution: OrderExecutor | None,
    marks: Callable[[str], Decimal | None],
    limit: int = 20,
) -> LedgerView:
    """Account, positions with P&L (marked at the latest decision's price), pending and
    recent orders; ``installed=False`` when the engine runs without the ledger."""
    if execution is None:
        return LedgerView(installed=False)
    try:
        book = execution.book()
        pending = execution.orders(states=[OrderState.PENDING_APPROVAL])
        recent = execution.orders(limit=ORDERS_READ)
    except KyperianError as exc:
        return LedgerView(installed=True, problem=f"ledger unavailable: {exc}")
    prices = {p.symbol: marks(p.symbol) for p in book.positions if p.quantity}
    positions = tuple(_position_row(p, prices.get(p.symbol)) for p in book.positions if p.quantity)
    return LedgerView(
        installed=True,
        account=book.account,
        equity=book.equity({s: m for s, m in prices.items() if m is not None}),
        positions=positions,
        pending=tuple(pending),
        orders=tuple(sorted(recent, key=lambda o: o.updated_at, reverse=True)[:limit]),
    )
