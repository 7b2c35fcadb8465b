"""In-memory doubles of the engine's ports, with switches to simulate outages.

They implement the same abstract classes as the Redis, DynamoDB and SQS adapters (which
the integration tests exercise for real), so the processing rules can be tested fast.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from kyperian.adapters.brokers.paper.store import PaperBooks, PaperVenueStore
from kyperian.domain.brokers import Order, OrderStatus
from kyperian.domain.decisions import Decision
from kyperian.domain.engine_ports import (
    Claim,
    DecisionStore,
    DuplicateDecision,
    ProcessedSignals,
    QueueMessage,
    SignalCache,
    SignalHistory,
    WorkQueue,
)
from kyperian.domain.errors import InvalidOrderError, TemporaryError
from kyperian.domain.models import Signal


class MemoryCache(SignalCache, ProcessedSignals):
    """Latest signal per slot, decisions and processed ids in dicts; ``down`` fails every call."""

    def __init__(self) -> None:
        self.down = False
        self.signals: dict[tuple[str, str, str], Signal] = {}
        self.decisions: dict[str, Decision] = {}
        self.done: set[str] = set()
        self.leases: set[str] = set()
        self.calls = 0

    def _touch(self) -> None:
        self.calls += 1
        if self.down:
            raise TemporaryError("memory cache is down")

    def _keep(self, signal: Signal) -> None:
        slot = (signal.symbol, signal.timeframe.value, signal.source.value)
        held = self.signals.get(slot)
        if held is None or (held.timestamp, held.received_at) < (
            signal.timestamp,
            signal.received_at,
        ):
            self.signals[slot] = signal

    def record_and_read(self, signal: Signal) -> list[Signal]:
        self._touch()
        self._keep(signal)
        return self.latest_signals(signal.symbol)

    def record_all(self, signals: Sequence[Signal]) -> None:
        self._touch()
        for signal in signals:
            self._keep(signal)

    def latest_signals(self, symbol: str) -> list[Signal]:
        self._touch()
        return [s for (sym, _, _), s in self.signals.items() if sym == symbol]

    def put_decision(self, decision: Decision) -> None:
        self._touch()
        self.decisions[decision.symbol] = decision

    def latest_decision(self, symbol: str) -> Decision | None:
        self._touch()
        return self.decisions.get(symbol)

    def check(self) -> None:
        self._touch()

    def claim(self, signal_id: str, lease_seconds: int) -> Claim:
        self._touch()
        if signal_id in self.done:
            return Claim.DONE
        if signal_id in self.leases:
            return Claim.BUSY
        self.leases.add(signal_id)
        return Claim.NEW

    def finish(self, signal_id: str) -> None:
        self._touch()
        self.done.add(signal_id)
        self.leases.discard(signal_id)

    def release(self, signal_id: str) -> None:
        self._touch()
        self.leases.discard(signal_id)


class MemoryDecisions(DecisionStore):
    """Decisions in a list, one per trigger, like the table's guard item."""

    def __init__(self) -> None:
        self.down = False
        self.items: list[Decision] = []

    def _touch(self) -> None:
        if self.down:
            raise TemporaryError("decision store is down")

    def record(self, decision: Decision) -> None:
        self._touch()
        trigger = decision.trigger_signal_id
        if trigger is not None and any(d.trigger_signal_id == trigger for d in self.items):
            raise DuplicateDecision(trigger)
        self.items.append(decision)

    def _of(self, symbol: str) -> list[Decision]:
        return sorted(
            (d for d in self.items if d.symbol == symbol), key=lambda d: d.sort_time, reverse=True
        )

    def latest(self, symbol: str) -> Decision | None:
        self._touch()
        found = self._of(symbol)
        return found[0] if found else None

    def history(
        self, symbol: str, limit: int = 50, before: datetime | None = None
    ) -> list[Decision]:
        self._touch()
        return [d for d in self._of(symbol) if before is None or d.sort_time < before][:limit]

    def for_trigger(self, signal: Signal) -> Decision | None:
        self._touch()
        return next((d for d in self.items if d.trigger_signal_id == signal.signal_id), None)

    def check(self) -> None:
        self._touch()


class MemoryHistory(SignalHistory):
    """The Signals table as a list; returns everything of the symbol (fusion filters age)."""

    def __init__(self, signals: Sequence[Signal] = ()) -> None:
        self.signals = list(signals)
        self.reads = 0

    def recent(self, symbol: str, now: datetime) -> list[Signal]:
        self.reads += 1
        return [s for s in self.signals if s.symbol == symbol]


@dataclass
class MemoryQueue(WorkQueue):
    """A queue with visibility: received messages are hidden until deleted or released."""

    visible: list[QueueMessage] = field(default_factory=list)
    in_flight: dict[str, QueueMessage] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    receive_counts: dict[str, int] = field(default_factory=dict)
    fail_deletes: set[str] = field(default_factory=set)
    on_receive: list[Callable[[], None]] = field(default_factory=list)

    def send(self, message_id: str, body: str) -> None:
        self.visible.append(QueueMessage(message_id, f"r-{message_id}", body, 0))

    def receive(
        self, max_messages: int, wait_seconds: int, visibility_seconds: int
    ) -> list[QueueMessage]:
        batch, self.visible = self.visible[:max_messages], self.visible[max_messages:]
        received = []
        for message in batch:
            count = self.receive_counts.get(message.message_id, 0) + 1
            self.receive_counts[message.message_id] = count
            received.append(QueueMessage(message.message_id, message.receipt, message.body, count))
            self.in_flight[message.message_id] = message
        for hook in self.on_receive:
            hook()
        return received

    def delete(self, messages: Sequence[QueueMessage]) -> list[str]:
        failed = [m.message_id for m in messages if m.message_id in self.fail_deletes]
        for message in messages:
            if message.message_id not in failed:
                self.in_flight.pop(message.message_id, None)
                self.deleted.append(message.message_id)
        return failed

    def release(self, messages: Sequence[QueueMessage]) -> None:
        for message in messages:
            self.visible.append(self.in_flight.pop(message.message_id))

    def redeliver_in_flight(self) -> None:
        """What the visibility timeout does: unfinished messages become visible again."""
        self.visible.extend(self.in_flight.values())
        self.in_flight.clear()

    def check(self) -> None:
        return None


class MemoryPaperStore(PaperVenueStore):
    """The paper venue's books in dicts (unit tests; the service stores them in DynamoDB)."""

    def __init__(self) -> None:
        self.stored: PaperBooks | None = None
        self.by_client: dict[str, Order] = {}

    def open(self, starting_cash: Decimal) -> PaperBooks:
        if self.stored is None:
            self.stored = PaperBooks(starting_cash=starting_cash, cash=starting_cash)
        return self.stored

    def books(self) -> PaperBooks | None:
        return self.stored

    def commit(
        self,
        books: PaperBooks,
        new: Order | None = None,
        replaced: tuple[Order, OrderStatus] | None = None,
    ) -> bool:
        if new is not None and new.client_order_id in self.by_client:
            raise InvalidOrderError(f"client_order_id {new.client_order_id} already used")
        if self.stored is None or self.stored.version != books.version - 1:
            return False
        if replaced is not None:
            held = self.by_client.get(replaced[0].client_order_id)
            if held is None or held.status is not replaced[1]:
                return False
            self.by_client[replaced[0].client_order_id] = replaced[0]
        if new is not None:
            self.by_client[new.client_order_id] = new
        self.stored = books
        return True

    def replace(self, order: Order, expected: OrderStatus) -> bool:
        held = self.by_client.get(order.client_order_id)
        if held is None or held.status is not expected:
            return False
        self.by_client[order.client_order_id] = order
        return True

    def find(self, client_order_id: str) -> Order | None:
        return self.by_client.get(client_order_id)

    def orders(self) -> list[Order]:
        return list(self.by_client.values())

    def check(self) -> None:
        return None
