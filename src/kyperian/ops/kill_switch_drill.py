"""The kill-switch drill: halt from the CLI, seen by another engine process, flatten, resume.

``kyperian ops kill-switch-drill`` runs it (``make drill`` after the exactly-once drill);
``tests/integration/execution/test_kill_switch_drill.py`` runs the same function. On an
AWS emulator (moto server, the real templates) and a redis-server, built with the
service's own wiring (``build_services``, auto-trading on, the paper venue in the ledger):

1. engine A serves the engine API (uvicorn, a free port) and nothing else;
2. engine B, a second *process*, decides a fresh actionable alert every ``CADENCE``
   seconds, on a new symbol each time, as its SQS worker would;
3. once B has filled a few orders, ``kyperian halt --flatten`` runs (the CLI, as a
   subprocess, against A), B keeps deciding for ``HALTED_SECONDS``, then ``kyperian
   resume`` runs and B trades on for ``RESUMED_SECONDS``.

Then it counts from the ledger and the paper venue's own books, never from return
values: how long after ``halted_at`` (written with the switch) B's first order was
refused; B's orders created while halted that were not refused, and the venue's orders
submitted meanwhile that were not flattening (both must be 0); the flattening orders
and whether each filled; positions still open at the resume other than those of an
order B had in flight at the halt (0); and B's orders filled after the resume (at least
1). It prints ``halt_seen_ms=.. orders_while_halted=0 flatten_orders=N
flatten_unfilled=0 unflattened_positions=0 orders_after_resume=N (in_flight_at_halt=N)``;
exit code 0 when all hold, 1 otherwise.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import boto3
import uvicorn

from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.adapters.aws.ledger import DynamoLedger
from kyperian.adapters.aws.paper_venue import DynamoPaperVenueStore
from kyperian.domain.engine_ports import QueueMessage
from kyperian.engine.main import create_app
from kyperian.engine.services import build_services
from kyperian.engine.telemetry import logger
from kyperian.execution import AccountKey, LedgerOrder, OrderState
from kyperian.local.ephemeral import emulator, free_port, redis_server
from kyperian.local.resources import SERVICES, provision
from kyperian.ops.engine_rig import (
    CREDENTIALS,
    ENVIRONMENT,
    drill_environment,
    engine_settings,
    envelope,
    quiet,
    strong_buy,
)
from kyperian.settings import Settings

CADENCE: Final = 0.15
HALTED_SECONDS: Final = 2.5
RESUMED_SECONDS: Final = 1.5
SEEN_WITHIN_MS: Final = 2000
FLATTEN_PREFIX: Final = "flat-"


@dataclass(frozen=True)
class KillSwitchCounts:
    """What the drill counted from the ledger and the venue's books."""

    halt_seen_ms: int | None
    orders_while_halted: int
    flatten_orders: int
    flatten_unfilled: int
    unflattened_positions: int
    in_flight_at_halt: int
    orders_after_resume: int

    @property
    def ok(self) -> bool:
        return (
            self.halt_seen_ms is not None
            and self.halt_seen_ms <= SEEN_WITHIN_MS
            and self.orders_while_halted == 0
            and self.flatten_orders > 0
            and self.flatten_unfilled == 0
            and self.unflattened_positions == 0
            and self.orders_after_resume > 0
        )

    def line(self) -> str:
        seen = "never" if self.halt_seen_ms is None else str(self.halt_seen_ms)
        return (
            f"halt_seen_ms={seen} orders_while_halted={self.orders_while_halted} "
            f"flatten_orders={self.flatten_orders} flatten_unfilled={self.flatten_unfilled} "
            f"unflattened_positions={self.unflattened_positions} "
            f"orders_after_resume={self.orders_after_resume} "
            f"(in_flight_at_halt={self.in_flight_at_halt})"
        )


@dataclass(frozen=True)
class _Moments:
    """When the switch was set (from the ledger) and about to be cleared (CLI called)."""

    halted_at: datetime
    resumed_at: datetime


@contextmanager
def _served(app: Any) -> Iterator[str]:
    """The engine API on a free port, in a thread of this process."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="engine-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the engine API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _trader(kwargs: dict[str, Any], signals_table: str, stop: Any, results: Any) -> None:
    """Engine B: decides a new actionable alert every ``CADENCE`` s until told to stop."""
    os.environ.update(CREDENTIALS)
    logger.setLevel(logging.ERROR)  # a child process of its own: nothing to restore
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - its metric lines; the parent reports
    services = build_services(Settings(**kwargs))
    if services.execution is not None:
        services.execution.open()
    dynamodb = boto3.client("dynamodb", endpoint_url=kwargs["aws_endpoint_url"])
    store = DynamoSignalStore(signals_table, dynamodb)
    number = 0
    while not stop.is_set():
        symbol = f"KS{number}"
        now = datetime.now(UTC)
        store.add(strong_buy(symbol, "1D", "technicals", now, f"ks-{number}-anchor"))
        trigger = strong_buy(symbol, "4h", "luxalgo", now, f"ks-{number}-trigger")
        store.add(trigger)
        message = QueueMessage(f"m-{uuid.uuid4()}", "r", envelope(trigger), 1)
        results.put(services.processor.handle(message).outcome.value)
        number += 1
        stop.wait(CADENCE)
    services.close()


def _cli(url: str, token: str, *arguments: str) -> None:
    """Run ``kyperian <arguments>`` against the engine as an operator would."""
    environment = {**os.environ, "KYPERIAN_ENGINE_TOKEN": token}
    done = subprocess.run(  # noqa: S603 - this interpreter, fixed arguments
        [sys.executable, "-m", "kyperian.cli", *arguments, "--engine", url],
        env=environment, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"kyperian {' '.join(arguments)} failed: {done.stdout}{done.stderr}")


def _wait_for_fills(ledger: DynamoLedger, key: AccountKey, count: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        filled = ledger.orders(key, states=[OrderState.FILLED], limit=10_000)
        if len(filled) >= count:
            return
        time.sleep(0.1)
    raise RuntimeError(f"engine B filled fewer than {count} orders in {seconds:.0f} s")


def run(report: Callable[[str], None] = print) -> KillSwitchCounts:
    """Run the drill and count; ``report`` gets B's outcomes and the verdict line."""
    with drill_environment(), quiet(), emulator() as endpoint, redis_server() as redis_port:
        session: Any = boto3.session.Session(region_name="us-east-1")
        clients = {name: session.client(name, endpoint_url=endpoint) for name in SERVICES}
        made = provision(clients, ENVIRONMENT, f"drill-{uuid.uuid4().hex}")
        token = secrets.token_urlsafe(24)
        kwargs = {**engine_settings(endpoint, redis_port), "reconcile_seconds": 3600}
        engine_a = build_services(Settings(**kwargs, engine_token=token))
        key = AccountKey(venue="paper", account_id=engine_a.settings.paper_account_id)
        ledger = DynamoLedger(made.ledger_table, clients["dynamodb"])
        context = multiprocessing.get_context("spawn")
        stop, results = context.Event(), context.Queue()
        trader = context.Process(target=_trader, args=(kwargs, made.signals_table, stop, results))
        with _served(create_app(engine_a)) as url:
            trader.start()
            try:
                moments = _halt_and_resume(ledger, key, url, token)
            finally:
                stop.set()
                outcomes = _drained(trader, results)
        report(f"engine B decisions: {len(outcomes)} ({', '.join(sorted(set(outcomes)))})")
        venue = DynamoPaperVenueStore(made.ledger_table, clients["dynamodb"], key.account_id)
        counts = _count(ledger, key, venue, moments)
    report(counts.line())
    return counts


def _drained(trader: Any, results: Any) -> list[str]:
    """B's outcomes, read while it finishes (a child exits only once its queue is read)."""
    outcomes: list[str] = []
    deadline = time.monotonic() + 60
    while (trader.is_alive() or not results.empty()) and time.monotonic() < deadline:
        with suppress(queue.Empty):
            outcomes.append(results.get(timeout=0.2))
    trader.join(timeout=5)
    return outcomes


def _halt_and_resume(ledger: DynamoLedger, key: AccountKey, url: str, token: str) -> _Moments:
    _wait_for_fills(ledger, key, 3, seconds=120)
    _cli(url, token, "halt", "--flatten", "--reason", "kill-switch drill")
    account = ledger.account(key)
    if account is None or not account.halted or account.halted_at is None:
        raise RuntimeError("the halt is not in the ledger")
    time.sleep(HALTED_SECONDS)
    resumed_at = datetime.now(UTC)  # before the switch is cleared: the window stays strict
    _cli(url, token, "resume")
    time.sleep(RESUMED_SECONDS)
    return _Moments(halted_at=account.halted_at, resumed_at=resumed_at)


def _count(
    ledger: DynamoLedger, key: AccountKey, venue: DynamoPaperVenueStore, moments: _Moments
) -> KillSwitchCounts:
    """Count from the ledger's orders, fills and positions and the venue's orders."""
    orders = ledger.orders(key, limit=10_000)
    flatten = [o for o in orders if o.client_order_id.startswith(FLATTEN_PREFIX)]
    decided = [o for o in orders if not o.client_order_id.startswith(FLATTEN_PREFIX)]
    halted, resumed = moments.halted_at, moments.resumed_at

    def while_halted(at: datetime) -> bool:
        return halted < at < resumed

    refused = sorted(
        o.created_at
        for o in decided
        if while_halted(o.created_at) and (o.reason or "").startswith("trading halted")
    )
    created = {o.client_order_id: o.created_at for o in decided}  # venue orders by intent time
    slipped = [o for o in decided if while_halted(o.created_at) and _went_out(o)]
    at_venue = [
        o
        for o in venue.orders()
        if not o.client_order_id.startswith(FLATTEN_PREFIX)
        and (o.client_order_id not in created or while_halted(created[o.client_order_id]))
    ]
    in_flight = {o.symbol for o in decided if o.created_at < halted <= o.updated_at}
    after = [o for o in decided if o.created_at > resumed and o.state is OrderState.FILLED]
    return KillSwitchCounts(
        halt_seen_ms=int((refused[0] - halted).total_seconds() * 1000) if refused else None,
        orders_while_halted=max(len(slipped), len(at_venue)),
        flatten_orders=len(flatten),
        flatten_unfilled=sum(1 for o in flatten if o.state is not OrderState.FILLED),
        unflattened_positions=_unflattened(ledger, key, resumed, in_flight),
        in_flight_at_halt=len(in_flight),
        orders_after_resume=len(after),
    )


def _went_out(order: LedgerOrder) -> bool:
    return order.state is not OrderState.REJECTED


def _unflattened(
    ledger: DynamoLedger, key: AccountKey, resumed: datetime, in_flight: set[str]
) -> int:
    """Symbols still held when trading resumed, other than those B had in flight at the halt.

    An order whose intent was recorded before the halt may still reach the venue after
    it (the switch stops new orders, not sent ones) and open a position the flattening,
    which ran at once, could not see: such symbols are counted apart (``in_flight``).
    """
    held: dict[str, Any] = {}
    for fill in ledger.fills(key):
        if fill.filled_at < resumed:
            held[fill.symbol] = held.get(fill.symbol, 0) + fill.signed_quantity
    return sum(1 for s, quantity in held.items() if quantity != 0 and s not in in_flight)


def main(_: object = None) -> int:
    """``kyperian ops ...``: run the drill, print its lines; 0 when every count holds, else 1."""
    counts = run()
    return 0 if counts.ok else 1
