"""The exactly-once drill: one alert, many deliveries and faults, one decision and one order.

``kyperian ops exactly-once-drill`` runs it (so does ``make drill``); the integration test
``tests/integration/execution/test_exactly_once_drill.py`` runs the same function. It
starts an AWS emulator (moto server, the real ``data.yaml`` and ``messaging.yaml``
deployed into it) and a redis-server, then builds engines with the service's own wiring
(``build_services``, auto-trading on, the paper venue in the ledger) and delivers each
scenario's alert three times, as SQS would deliver the EventBridge envelope (each
redelivery carries a later ``received_at``, as the webhook republishes it):

==================  =========================================================================
scenario            faults
==================  =========================================================================
redis-up            none: the Redis marker and the tables both dedupe
redis-down          the engine's Redis port is closed: only the tables dedupe
cache-flush         FLUSHALL after the first delivery: the marker is gone
two-processes       two engine *processes* (spawned) take deliveries at the same moment,
                    then a third delivery
crash-before-venue  the engine dies after recording the intent, before the venue call
crash-after-venue   the engine dies after the venue filled the order, before the ledger knew
==================  =========================================================================

A crashed engine is replaced by a new one (a restart) and the message comes back after
its visibility timeout, as on ECS. Then it counts from the sources of truth, never from
return values: decision rows per signal in the Decisions table, orders per decision in
the ledger and at the venue, actionable decisions with neither a settled order nor a
recorded refusal, and each symbol's exposure at the venue against the fusion cap. It
prints ``decisions_per_signal=1 orders_per_signal=1 actionable_untraded=0
combined_exposure<=cap`` when all hold; exit code 0 then, 1 otherwise.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import redis

from kyperian.adapters.aws.decisions import decision_pk, item_to_decision
from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.adapters.aws.ledger import DynamoLedger
from kyperian.adapters.aws.paper_venue import DynamoPaperVenueStore
from kyperian.domain.brokers import Broker, Order, OrderRequest
from kyperian.domain.decisions import Decision
from kyperian.domain.engine_ports import QueueMessage
from kyperian.domain.models import Signal
from kyperian.engine.services import EngineServices, build_services
from kyperian.engine.telemetry import logger
from kyperian.execution import AccountKey, OrderState
from kyperian.local.ephemeral import emulator, free_port, redis_server
from kyperian.local.resources import SERVICES, provision
from kyperian.ops.engine_rig import (
    CREDENTIALS,
    ENVIRONMENT,
    VISIBILITY_SECONDS,
    drill_environment,
    engine_settings,
    envelope,
    quiet,
    strong_buy,
)
from kyperian.settings import Settings


class SimulatedCrash(BaseException):
    """The engine process dies here: nothing after this point runs."""


class CrashingVenue(Broker):
    """The paper venue, with a death injected just before or just after a submit."""

    name = "paper"

    def __init__(self, inner: Broker, when: str) -> None:
        self.inner = inner
        self.when = when

    @property
    def caps(self) -> Any:
        return self.inner.caps

    def _submit(self, request: OrderRequest) -> Order:
        if self.when == "before":
            raise SimulatedCrash("between the intent and the venue call")
        self.inner.submit_order(request)
        raise SimulatedCrash("between the venue's acceptance and the ledger update")

    def account(self) -> Any:
        return self.inner.account()

    def positions(self) -> Any:
        return self.inner.positions()

    def get_order(self, order_id: str) -> Order:
        return self.inner.get_order(order_id)

    def find_order(self, client_order_id: str) -> Order | None:
        return self.inner.find_order(client_order_id)

    def cancel_order(self, order_id: str) -> Order:
        return self.inner.cancel_order(order_id)

    def open_orders(self) -> list[Order]:
        return self.inner.open_orders()

    def check(self) -> None:
        self.inner.check()


@dataclass(frozen=True)
class Counts:
    """What the drill counted from the tables and the venue."""

    decisions_per_signal: int
    orders_per_signal: int
    actionable_untraded: int
    max_exposure: float
    cap: float
    outcomes: dict[str, list[str]]

    @property
    def ok(self) -> bool:
        return (
            self.decisions_per_signal == 1
            and self.orders_per_signal == 1
            and self.actionable_untraded == 0
            and self.max_exposure <= self.cap + 1e-9
        )

    def line(self) -> str:
        exposure = (
            "combined_exposure<=cap"
            if self.max_exposure <= self.cap + 1e-9
            else (f"combined_exposure={self.max_exposure:.4f}>cap={self.cap:.4f}")
        )
        return (
            f"decisions_per_signal={self.decisions_per_signal} "
            f"orders_per_signal={self.orders_per_signal} "
            f"actionable_untraded={self.actionable_untraded} {exposure}"
        )


def _deliver(services: EngineServices, signal: Signal, attempt: int) -> str:
    """One SQS delivery of the signal's envelope, republished ``attempt - 1`` times."""
    redelivered = signal.model_copy(
        update={"received_at": signal.received_at + timedelta(milliseconds=700 * (attempt - 1))}
    )
    message = QueueMessage(f"m-{uuid.uuid4()}", "r", envelope(redelivered), attempt)
    try:
        return services.processor.handle(message).outcome.value
    except SimulatedCrash:
        return "CRASHED"


def _child(kwargs: dict[str, Any], body: str, barrier: Any, results: Any) -> None:
    """An engine process: its own wiring, one delivery, released at the same moment as its twin."""
    os.environ.update(CREDENTIALS)
    logger.setLevel(logging.WARNING)  # a child process of its own: nothing to restore
    services = build_services(Settings(**kwargs))
    if services.execution is not None:
        services.execution.open()  # warm, as a running task is
    barrier.wait(timeout=60)
    message = QueueMessage(f"m-{uuid.uuid4()}", "r", body, 1)
    results.put(services.processor.handle(message).outcome.value)
    services.close()


def _two_processes(kwargs: dict[str, Any], signal: Signal) -> list[str]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    results = context.Queue()
    bodies = [
        envelope(signal),
        envelope(
            signal.model_copy(
                update={"received_at": signal.received_at + timedelta(milliseconds=300)}
            )
        ),
    ]
    children = [
        context.Process(target=_child, args=(kwargs, body, barrier, results)) for body in bodies
    ]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(timeout=30)
    return outcomes


def run(report: Callable[[str], None] = print) -> Counts:
    """Run every scenario and count; ``report`` gets one line per scenario and the verdict."""
    with drill_environment(), quiet(), emulator() as endpoint, redis_server() as redis_port:
        session: Any = boto3.session.Session(region_name="us-east-1")
        clients = {name: session.client(name, endpoint_url=endpoint) for name in SERVICES}
        made = provision(clients, ENVIRONMENT, f"drill-{uuid.uuid4().hex}")
        kwargs = engine_settings(endpoint, redis_port)
        signals_store = DynamoSignalStore(made.signals_table, clients["dynamodb"])
        outcomes: dict[str, list[str]] = {}
        triggers: list[Signal] = []

        def scenario(name: str, symbol: str) -> Signal:
            now = datetime.now(UTC)
            signals_store.add(strong_buy(symbol, "1D", "technicals", now, f"{name}-anchor"))
            trigger = strong_buy(symbol, "4h", "luxalgo", now, f"{name}-trigger")
            signals_store.add(trigger)
            triggers.append(trigger)
            return trigger

        def engine(**overrides: Any) -> EngineServices:
            return build_services(Settings(**{**kwargs, **overrides}))

        # redis-up: three deliveries to one engine
        trigger = scenario("redis-up", "AAPL")
        up = engine()
        outcomes["redis-up"] = [_deliver(up, trigger, n) for n in (1, 2, 3)]

        # redis-down: the engine's Redis is unreachable (degraded mode)
        trigger = scenario("redis-down", "MSFT")
        down = engine(redis_port=free_port())
        outcomes["redis-down"] = [_deliver(down, trigger, n) for n in (1, 2, 3)]

        # cache-flush: the processed marker disappears after the first delivery
        trigger = scenario("cache-flush", "NVDA")
        outcomes["cache-flush"] = [_deliver(up, trigger, 1)]
        redis.Redis(port=redis_port).flushall()
        outcomes["cache-flush"] += [_deliver(engine(), trigger, n) for n in (2, 3)]

        # two-processes: two spawned engines at the same moment, then a third delivery
        trigger = scenario("two-processes", "AMZN")
        outcomes["two-processes"] = _two_processes(kwargs, trigger)
        outcomes["two-processes"].append(_deliver(engine(), trigger, 3))

        # crashes: the engine dies at each dangerous point; a new one gets the redeliveries
        for name, symbol, when in (
            ("crash-before-venue", "TSLA", "before"),
            ("crash-after-venue", "META", "after"),
        ):
            trigger = scenario(name, symbol)
            doomed = engine()
            if doomed.execution is None:
                raise RuntimeError("the engine was built without execution")
            doomed.execution.venue = CrashingVenue(doomed.execution.venue, when)
            outcomes[name] = [_deliver(doomed, trigger, 1)]
            time.sleep(VISIBILITY_SECONDS + 0.5)  # the message comes back after its visibility
            restarted = engine()
            outcomes[name] += [_deliver(restarted, trigger, n) for n in (2, 3)]

        for name, seen in outcomes.items():
            report(f"{name:20s} deliveries: {' '.join(seen)}")
        counts = _count(
            clients["dynamodb"],
            made.decisions_table,
            made.ledger_table,
            triggers,
            Settings(**kwargs),
            outcomes,
        )
    report(counts.line())
    return counts


def _count(
    dynamodb: Any,
    decisions_table: str,
    ledger_table: str,
    triggers: list[Signal],
    settings: Settings,
    outcomes: dict[str, list[str]],
) -> Counts:
    """Count from the Decisions table, the ledger and the venue's own books."""
    key = AccountKey(venue="paper", account_id=settings.paper_account_id)
    ledger = DynamoLedger(ledger_table, dynamodb)
    venue_orders = DynamoPaperVenueStore(ledger_table, dynamodb, settings.paper_account_id).orders()
    ledger_orders = ledger.orders(key, limit=10_000)
    decisions_per_signal: list[int] = []
    orders_per_signal: list[int] = []
    untraded = 0
    decided: list[Decision] = []
    for trigger in triggers:
        items = dynamodb.query(
            TableName=decisions_table,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": decision_pk(trigger.symbol)}},
            ConsistentRead=True,
        )["Items"]
        mine = [d for d in map(item_to_decision, items) if d.trigger_signal_id == trigger.signal_id]
        decisions_per_signal.append(len(mine))
        decided += mine
    for decision in decided:
        in_ledger = [o for o in ledger_orders if o.decision_id == decision.decision_id]
        at_venue = [o for o in venue_orders if o.client_order_id == decision.decision_id]
        orders_per_signal.append(max(len(in_ledger), len(at_venue)))
        settled = in_ledger and in_ledger[0].state not in {OrderState.INTENT, OrderState.SUBMITTED}
        refused = settled and in_ledger[0].state is OrderState.REJECTED
        if decision.actionable and not (settled and (refused or at_venue)):
            untraded += 1
    prices = {t.symbol: Decimal(repr(t.price)) for t in triggers if t.price}
    book = ledger.book(key)
    equity = book.equity(prices)
    exposure = max(
        (abs(float(p.quantity * prices.get(p.symbol, p.mark()) / equity)) for p in book.positions),
        default=0.0,
    )
    return Counts(
        decisions_per_signal=max(decisions_per_signal, default=0)
        if all(decisions_per_signal)
        else 0,
        orders_per_signal=max(orders_per_signal, default=0) if all(orders_per_signal) else 0,
        actionable_untraded=untraded,
        max_exposure=exposure,
        cap=settings.fusion.max_symbol_exposure,
        outcomes=outcomes,
    )


def main(_: object = None) -> int:
    """``kyperian ops ...``: run the drill, print its lines; 0 when every count holds, else 1."""
    counts = run()
    return 0 if counts.ok else 1
