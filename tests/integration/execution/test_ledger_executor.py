"""One order per decision through the DynamoDB ledger and the paper venue, crashes included.

Crashes are injected by the exactly-once drill's own venue wrapper, so both inject the same faults.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kyperian.adapters.aws.ledger import DynamoLedger
from kyperian.domain.brokers import Broker, OrderRequest, OrderSide
from kyperian.domain.decisions import Decision, VetoCode
from kyperian.domain.models import Action
from kyperian.engine.reconciler import Reconciler
from kyperian.engine.telemetry import EngineMetrics
from kyperian.execution import (
    AccountKey,
    BookLimits,
    ExecutionKind,
    IllegalTransition,
    LedgerOrder,
    OrderExecutor,
    OrderState,
    compare,
    fold_fills,
)
from kyperian.ops.exactly_once_drill import CrashingVenue, SimulatedCrash
from tests.integration.execution.conftest import LedgerAws
from tests.signal_factory import NOW

pytestmark = pytest.mark.integration


def _decision(
    decision_id: str = "d" * 32, action: Action = Action.BUY, size: float = 0.05, price: float = 100
) -> Decision:
    return Decision(
        decision_id=decision_id, symbol="AAPL", action=action, score=0.5, confidence=0.8,
        position_size=size, price=price, decided_at=NOW,
    )  # fmt: skip


def test_an_actionable_decision_gets_one_order_and_the_books_agree(ledger_aws: LedgerAws) -> None:
    # GIVEN a fresh paper account of 100 000 and an executor on the shared ledger
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account)

    # WHEN a 5 % BUY at 100 is executed, then executed again (a redelivery)
    first = executor.execute(_decision())
    again = ledger_aws.executor(account).execute(_decision())

    # THEN one order of 50 is filled, recorded once in the ledger and once at the venue
    assert first is not None
    assert again is not None
    assert (first.kind, first.order.state, first.order.quantity) == (
        ExecutionKind.ORDERED,
        OrderState.FILLED,
        Decimal(50),
    )
    assert again.order == first.order
    key = AccountKey(venue="paper", account_id=account)
    ledger = ledger_aws.ledger()
    venue = ledger_aws.venue(account)
    assert len(ledger.orders(key)) == 1
    assert len(venue.store.orders()) == 1
    # AND the ledger's book equals its fills and the venue's book
    assert {p.symbol: p.quantity for p in ledger.positions(key)} == {
        s: p.quantity for s, p in fold_fills(ledger.fills(key)).items()
    }
    book = ledger.book(key)
    assert book.account.cash == venue.account().cash == Decimal(95000)
    assert compare(ledger.positions(key), venue.positions(), book.open_orders, []) == []


def test_a_crash_before_the_venue_call_is_sent_once_after_the_lease(ledger_aws: LedgerAws) -> None:
    # GIVEN a task that dies after recording the intent, before the venue sees anything
    account = ledger_aws.new_account()
    crashing = ledger_aws.executor(account, CrashingVenue(ledger_aws.venue(account), "before"))
    with pytest.raises(SimulatedCrash):
        crashing.execute(_decision())

    # WHEN another task gets the redelivery while the lease holds, and again after it expired
    busy = ledger_aws.executor(account).execute(_decision())
    ledger_aws.clock.advance(31)
    settled = ledger_aws.executor(account).execute(_decision())

    # THEN it waits first, then asks the venue (nothing there) and sends exactly one order
    assert busy is not None
    assert settled is not None
    assert busy.kind is ExecutionKind.BUSY
    assert settled.order.state is OrderState.FILLED
    assert len(ledger_aws.venue(account).store.orders()) == 1


def test_a_crash_after_the_venue_accepted_is_reconciled_not_resent(ledger_aws: LedgerAws) -> None:
    # GIVEN a task that dies after the venue filled the order, before the ledger knew
    account = ledger_aws.new_account()
    crashing = ledger_aws.executor(account, CrashingVenue(ledger_aws.venue(account), "after"))
    with pytest.raises(SimulatedCrash):
        crashing.execute(_decision())
    key = AccountKey(venue="paper", account_id=account)
    assert ledger_aws.ledger().positions(key) == []

    # WHEN the redelivery comes after the lease
    ledger_aws.clock.advance(31)
    settled = ledger_aws.executor(account).execute(_decision())

    # THEN the venue's order is found by client order id and booked; nothing is sent again
    assert settled is not None
    assert settled.order.state is OrderState.FILLED
    assert len(ledger_aws.venue(account).store.orders()) == 1
    [position] = ledger_aws.ledger().positions(key)
    assert position.quantity == Decimal(50)


def test_approval_mode_waits_for_a_person_then_sends_once(ledger_aws: LedgerAws) -> None:
    # GIVEN approval mode
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account, approval=True, approval_seconds=60)

    # WHEN two decisions arrive: one is approved, one rejected, a third left to expire
    pending = executor.execute(_decision("a" * 32))
    executor.execute(_decision("b" * 32))
    executor.execute(_decision("c" * 32))
    approved = executor.approve("a" * 32)
    rejected = executor.reject("b" * 32)
    ledger_aws.clock.advance(61)
    expired = executor.expire_approvals()

    # THEN only the approved one reached the venue; the others are recorded with their fate
    assert pending is not None
    assert pending.kind is ExecutionKind.PENDING_APPROVAL
    assert approved.order.state is OrderState.FILLED
    assert rejected.state is OrderState.REJECTED
    assert expired == 1
    assert [o.client_order_id for o in ledger_aws.venue(account).store.orders()] == ["a" * 32]
    with pytest.raises(IllegalTransition):
        executor.approve("c" * 32)


class RaceBeforeWrite(DynamoLedger):
    """A task's ledger handle on which ``race`` (another task's doing) runs just before its
    next move of an order to SUBMITTED is written (after every read the approval makes)."""

    def __init__(self, ledger_aws: LedgerAws, race: Callable[[], object]) -> None:
        super().__init__(ledger_aws.table, ledger_aws.dynamodb)
        self._race: Callable[[], object] | None = race

    def save_order(self, order: LedgerOrder, *args: Any, **kwargs: Any) -> None:
        if self._race is not None and order.state is OrderState.SUBMITTED:
            race, self._race = self._race, None
            race()
        super().save_order(order, *args, **kwargs)


def test_a_halt_racing_an_approval_keeps_the_order_from_the_venue(ledger_aws: LedgerAws) -> None:
    # GIVEN a pending order, and an approval whose ledger sees a halt land between its
    # reads (the order, still pending; no halt yet) and its write
    account = ledger_aws.new_account()
    key = AccountKey(venue="paper", account_id=account)
    venue = ledger_aws.venue(account)
    ledger_aws.executor(account, venue, approval=True).execute(_decision())
    halt = partial(ledger_aws.ledger().set_halt, key, True, "race drill")
    racing = OrderExecutor(
        RaceBeforeWrite(ledger_aws, halt), venue, key, approval=True, clock=ledger_aws.clock
    )

    # WHEN the person approves
    with pytest.raises(IllegalTransition, match="race drill") as refused:
        racing.approve("d" * 32)

    # THEN the approval is refused naming the halt, the order stays pending, the venue
    # has nothing
    assert "stays pending" in str(refused.value)
    order = ledger_aws.ledger().order(key, "d" * 32)
    assert order is not None
    assert order.state is OrderState.PENDING_APPROVAL
    assert venue.store.orders() == []
    # AND after a resume the same approval sends it once
    racing.resume()
    assert racing.approve("d" * 32).order.state is OrderState.FILLED
    assert [o.client_order_id for o in venue.store.orders()] == ["d" * 32]


def test_an_approval_racing_a_rejection_is_a_conflict_naming_it(ledger_aws: LedgerAws) -> None:
    # GIVEN a pending order, and another person rejecting it between an approval's read
    # and its write
    account = ledger_aws.new_account()
    key = AccountKey(venue="paper", account_id=account)
    venue = ledger_aws.venue(account)
    other = ledger_aws.executor(account, venue, approval=True)
    other.execute(_decision())
    racing = OrderExecutor(
        RaceBeforeWrite(ledger_aws, partial(other.reject, "d" * 32)),
        venue, key, approval=True, clock=ledger_aws.clock,
    )  # fmt: skip

    # WHEN the approval writes  THEN it is a conflict naming the state it found; no order
    with pytest.raises(IllegalTransition, match="REJECTED"):
        racing.approve("d" * 32)
    assert venue.store.orders() == []


def test_pending_orders_count_as_exposure(ledger_aws: LedgerAws) -> None:
    # GIVEN a pending 5 % BUY waiting for approval
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account, approval=True)
    executor.execute(_decision())

    # WHEN another task reads the symbol's exposure  THEN the pending order counts
    assert ledger_aws.executor(account).exposure("AAPL", 100.0) == pytest.approx(0.05)


def test_the_kill_switch_refuses_new_orders_and_records_why(ledger_aws: LedgerAws) -> None:
    # GIVEN a halted account
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account)
    executor.open()
    ledger_aws.ledger().set_halt(executor.account, True, "drill")

    # WHEN a decision arrives  THEN it is refused with the reason and the venue sees nothing
    refused = executor.execute(_decision())
    assert refused is not None
    assert refused.kind is ExecutionKind.REFUSED
    assert refused.order.reason == "trading halted: drill"
    assert ledger_aws.venue(account).store.orders() == []


def test_positions_and_cash_equal_the_fills_after_buys_and_sells(ledger_aws: LedgerAws) -> None:
    # GIVEN buys and sells at moving prices
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account)
    steps = [(Action.BUY, 100.0), (Action.BUY, 110.0), (Action.SELL, 120.0), (Action.SELL, 90.0)]
    for index, (action, price) in enumerate(steps):
        executor.execute(_decision(f"{index:032d}", action, 0.05, price))

    # THEN the ledger's positions and cash are exactly what its fills say, and the venue agrees
    key = executor.account
    ledger = ledger_aws.ledger()
    fills = ledger.fills(key)
    assert len(fills) == 4
    folded = fold_fills(fills)
    assert {p.symbol: p.quantity for p in ledger.positions(key)} == {
        s: p.quantity for s, p in folded.items()
    }
    book = ledger.book(key)
    assert book.account.cash == Decimal(100000) + sum((f.cash_change for f in fills), Decimal(0))
    assert compare(ledger.positions(key), ledger_aws.venue(account).positions(), (), []) == []


STEP = st.tuples(
    st.integers(0, 2),  # which engine task
    st.sampled_from(["deliver", "crash_before", "crash_after", "wait"]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(STEP, min_size=1, max_size=8))
def test_no_interleaving_makes_two_orders_for_one_decision(
    ledger_aws: LedgerAws, steps: list[tuple[int, str]]
) -> None:
    # GIVEN three engine tasks sharing one ledger and one paper venue
    account = ledger_aws.new_account()
    decision = _decision()

    # WHEN the decision is delivered to them in any order, some dying before or after the venue
    for task, step in steps:
        if step == "wait":
            ledger_aws.clock.advance(31)
            continue
        venue: Broker = ledger_aws.venue(account)
        if step != "deliver":
            venue = CrashingVenue(venue, step.removeprefix("crash_"))
        with contextlib.suppress(SimulatedCrash):
            ledger_aws.executor(account, venue).execute(decision)
        assert len(ledger_aws.venue(account).store.orders()) <= 1, f"task {task}"

    # THEN after every lease expired, one more delivery settles it: exactly one order
    # at the venue, one in the ledger, and the books agree
    ledger_aws.clock.advance(31)
    final = ledger_aws.executor(account).execute(decision)
    assert final is not None
    assert final.resolved
    assert len(ledger_aws.venue(account).store.orders()) == 1
    key = AccountKey(venue="paper", account_id=account)
    assert len(ledger_aws.ledger().orders(key)) == 1
    assert [p.quantity for p in ledger_aws.ledger().positions(key)] == [Decimal(50)]


def test_reconciliation_halts_the_account_on_a_mismatch(ledger_aws: LedgerAws) -> None:
    # GIVEN a filled order, so ledger and venue agree
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account)
    executor.execute(_decision())
    reconciler = Reconciler(executor, EngineMetrics("test"), interval=60)
    assert reconciler.run_once() == []

    # WHEN the venue holds a position the ledger never booked (an order placed by hand)
    ledger_aws.venue(account).submit_order(
        OrderRequest(
            client_order_id="by-hand",
            symbol="MSFT",
            side=OrderSide.BUY,
            quantity=Decimal(3),
            reference_price=Decimal(50),
        )
    )
    [mismatch] = reconciler.run_once()

    # THEN the mismatch names both sides and the account is halted for every task
    assert (mismatch.kind, mismatch.subject, mismatch.ledger, mismatch.venue) == (
        "position",
        "MSFT",
        "0",
        "3",
    )
    halted = ledger_aws.ledger().account(executor.account)
    assert halted is not None
    assert halted.halted
    assert "reconciliation" in (halted.halt_reason or "")


def test_gross_exposure_on_the_whole_book_vetoes_new_entries(ledger_aws: LedgerAws) -> None:
    # GIVEN a 5 % AAPL position and a book limit of 8 % gross
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account, max_gross_exposure=0.08)
    executor.execute(_decision())
    msft = _decision("m" * 32).model_copy(update={"symbol": "MSFT"})

    # WHEN a 5 % MSFT entry is checked  THEN it is vetoed with the arithmetic in the reason
    veto = executor.risk_veto(msft)
    assert veto is not None
    assert veto.code.value == "MAX_GROSS_EXPOSURE"
    assert "0.0500 + 0.0500" in veto.reason
    # AND a sell that reduces the AAPL position is never vetoed
    assert executor.risk_veto(_decision("s" * 32, Action.SELL)) is None


def test_book_limits_veto_from_the_shared_ledger_and_lift_on_time(ledger_aws: LedgerAws) -> None:
    # GIVEN an account with a 2-orders-per-minute limit and a 600 s cooldown after a stop-out
    account = ledger_aws.new_account()
    limits = BookLimits(max_orders_per_minute=2, stop_out_cooldown_seconds=600)
    executor = ledger_aws.executor(account, limits=limits)
    other_task = ledger_aws.executor(account, limits=limits)

    # WHEN 50 AAPL are bought at 100, then all 50 sold at 90 (a stop-out)
    executor.execute(_decision("b" * 32))
    ledger_aws.clock.advance(1)
    sell = _decision("s" * 32, Action.SELL, size=0.045, price=90)
    assert executor.risk_veto(sell) is None
    executor.execute(sell)
    key = AccountKey(venue="paper", account_id=account)
    closed = ledger_aws.ledger().book(key).position("AAPL")
    assert closed is not None
    assert closed.quantity == 0

    # THEN another task counts the two orders of this minute from the ledger and vetoes a third
    msft = _decision("m" * 32).model_copy(update={"symbol": "MSFT"})
    rate = other_task.risk_veto(msft)
    assert rate is not None
    assert rate.code is VetoCode.MAX_ORDERS_PER_MINUTE
    # AND once the minute has passed, a MSFT entry is free but an AAPL entry is cooling down
    ledger_aws.clock.advance(60)
    assert other_task.risk_veto(msft) is None
    cooling = other_task.risk_veto(_decision("c" * 32))
    assert cooling is not None
    assert cooling.code is VetoCode.STOP_OUT_COOLDOWN
    # AND at the cooldown's end (600 s after the losing sell) AAPL entries are allowed again
    ledger_aws.clock.advance(600 - 61)
    assert other_task.risk_veto(_decision("c" * 32)) is not None
    ledger_aws.clock.advance(1)
    assert other_task.risk_veto(_decision("c" * 32)) is None


def test_two_tasks_racing_for_the_last_order_slot_of_a_minute_place_one_order(
    ledger_aws: LedgerAws,
) -> None:
    # GIVEN a limit of 1 order per minute and two tasks that both read an empty minute
    account = ledger_aws.new_account()
    limits = BookLimits(max_orders_per_minute=1)
    first, second = (ledger_aws.executor(account, limits=limits) for _ in range(2))
    aapl, msft = _decision("a" * 32), _decision("m" * 32).model_copy(update={"symbol": "MSFT"})
    first.exposure("AAPL", 100)
    second.exposure("MSFT", 100)
    assert first.risk_veto(aapl) is None
    assert second.risk_veto(msft) is None

    # WHEN both execute their decision in the same minute
    placed = first.execute(aapl)
    refused = second.execute(msft)

    # THEN the counter lets one order through; the other is recorded refused, naming the limit
    assert placed is not None
    assert refused is not None
    assert placed.kind is ExecutionKind.ORDERED
    assert refused.kind is ExecutionKind.REFUSED
    assert "MAX_ORDERS_PER_MINUTE" in (refused.order.reason or "")
    assert len(ledger_aws.venue(account).store.orders()) == 1
    key = AccountKey(venue="paper", account_id=account)
    assert ledger_aws.ledger().book(key).order_counts == {"2026-01-05T15:00": 1}
    # AND a redelivery of the refused decision is settled, not counted or sent again
    again = second.execute(msft)
    assert again is not None
    assert (again.kind, again.settled_before) == (ExecutionKind.REFUSED, True)
    # AND the next minute's order drops the counter's passed minute
    ledger_aws.clock.advance(60)
    first.exposure("AAPL", 100)
    later = first.execute(_decision("b" * 32))
    assert later is not None
    assert later.kind is ExecutionKind.ORDERED
    assert ledger_aws.ledger().book(key).order_counts == {"2026-01-05T15:01": 1}


def test_the_book_keeps_what_the_limits_need_with_each_fill(ledger_aws: LedgerAws) -> None:
    # GIVEN 50 AAPL bought at 100 yesterday, more at 110 today, then sold through zero at 90
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account)
    key = AccountKey(venue="paper", account_id=account)
    executor.execute(_decision("y" * 32))
    ledger_aws.clock.advance(86_400)
    executor.execute(_decision("t" * 32, size=0.02, price=110))
    ledger_aws.clock.advance(1)
    executor.exposure("AAPL", 90)  # the recent book rides along to booking the fill
    executor.execute(_decision("s" * 32, Action.SELL, size=0.07, price=90))

    # WHEN the book is read back
    book = ledger_aws.ledger().book(key)
    position = book.position("AAPL")

    # THEN positions and cash still equal the fills, and the book holds the stop-out and
    # the day's opening state the limits read, as the history of fills defines them
    fills = ledger_aws.ledger().fills(key)
    assert position == fold_fills(fills)["AAPL"]
    assert position is not None
    assert position.quantity < 0
    assert position.last_stop_out_at == ledger_aws.clock.now
    today = ledger_aws.clock.now.strftime("%Y-%m-%d")
    assert set(book.account.day_cash) == {today}  # yesterday's entry was dropped
    assert book.account.day_cash[today] == sum(
        (f.cash_change for f in fills if f.filled_at.strftime("%Y-%m-%d") == today), Decimal(0)
    )
    assert book.opening_equity(today) == Decimal(95000) + 50 * Decimal(100)


def test_a_halt_set_after_a_task_read_the_book_still_stops_its_order(
    ledger_aws: LedgerAws,
) -> None:
    # GIVEN a task that read the book (not halted) and sized a decision on it
    account = ledger_aws.new_account()
    deciding = ledger_aws.executor(account)
    assert deciding.exposure("AAPL", 100) == 0.0
    assert deciding.book().account.halted is False

    # WHEN an operator halts the account from another task before the order is written
    ledger_aws.executor(account).halt("operator drill")
    result = deciding.execute(_decision("h" * 32))

    # THEN the intent's own write saw the switch: refused with its reason, nothing sent
    assert result is not None
    assert result.kind is ExecutionKind.REFUSED
    assert result.order.reason == "trading halted: operator drill"
    assert ledger_aws.venue(account).find_order("h" * 32) is None
