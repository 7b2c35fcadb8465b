"""The cockpit's ledger panels on the real ledger (moto): approve, reject, the kill switch.

A person signed in by cookie sees pending orders with approve and reject buttons and the
kill switch, each a POST form carrying the session's CSRF token; what they do is read back
from the ledger itself, and the notices it causes are what the dispatcher was given.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from kyperian.adapters.notify.channel import Channel, ChannelFilter
from kyperian.adapters.notify.dead_letters import DeadLetters
from kyperian.adapters.notify.dispatcher import NotificationDispatcher
from kyperian.domain.decisions import Decision
from kyperian.domain.models import Action
from kyperian.domain.notices import Notice, NoticeKind
from kyperian.engine.api.deps import get_clock
from kyperian.engine.main import create_app
from kyperian.engine.services import EngineServices
from kyperian.execution import AccountKey, OrderExecutor, OrderState
from kyperian.settings import Settings
from tests.engine_auth import ENGINE_TOKEN, sign_in
from tests.integration.execution.conftest import LedgerAws
from tests.unit.engine.conftest import build_engine


class Inbox(Channel):
    """Records what a channel would have sent (the HTTP channels are tested against a
    real receiver in tests/integration/engine/test_notify.py)."""

    name = "inbox"

    def __init__(self) -> None:
        super().__init__(ChannelFilter(kinds=frozenset(NoticeKind)))
        self.notices: list[Notice] = []

    def send(self, notice: Notice) -> None:
        self.notices.append(notice)


class NoDeadLetters(DeadLetters):
    def record(self, channel: str, notice: Notice, reason: str, attempts: int) -> None:
        raise AssertionError(f"unexpected dead letter: {reason}")


@dataclass
class Desk:
    person: TestClient
    csrf: str
    executor: OrderExecutor
    inbox: Inbox
    dispatcher: NotificationDispatcher
    pending: list[str] = field(default_factory=list)

    def panel(self) -> str:
        return self.person.get("/ui/panels/ledger", headers={"HX-Request": "true"}).text

    def post(self, path: str, csrf: str | None = None) -> tuple[int, str]:
        answer = self.person.post(
            path,
            data={"csrf_token": self.csrf if csrf is None else csrf},
            headers={"HX-Request": "true"},
        )
        return answer.status_code, answer.text


def _decision(letter: str, action: Action = Action.BUY) -> Decision:
    return Decision(
        decision_id=letter * 32, symbol="AAPL", action=action, score=0.5, confidence=0.8,
        position_size=0.05, price=100, decided_at=datetime(2026, 1, 5, 15, 0),
    )  # fmt: skip


@pytest.fixture
def desk(ledger_aws: LedgerAws) -> Iterator[Desk]:
    """GIVEN approval mode on a fresh paper account, two orders waiting for a person."""
    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account, approval=True, approval_seconds=600)
    for letter in "ab":
        executor.execute(_decision(letter))
    engine = build_engine()
    inbox = Inbox()
    dispatcher = NotificationDispatcher([inbox], NoDeadLetters())
    services = EngineServices(
        settings=Settings(environment="test", engine_token=ENGINE_TOKEN),
        rules=engine.processor.rules,
        cache=engine.cache,
        decisions=engine.decisions,
        history=engine.history,
        circuit=engine.circuit,
        broker=engine.broker,
        processor=engine.processor,
        worker=None,
        ledger=executor.ledger,
        execution=executor,
        notifier=dispatcher,
    )
    app = create_app(services)
    app.dependency_overrides[get_clock] = lambda: ledger_aws.clock
    with TestClient(app, base_url="http://localhost") as person:
        csrf = sign_in(person)
        yield Desk(person, csrf, executor, inbox, dispatcher, ["a" * 32, "b" * 32])


def _state(desk: Desk, cid: str) -> OrderState:
    order = desk.executor.ledger.order(desk.executor.account, cid)
    assert order is not None
    return order.state


def test_pending_orders_are_listed_with_approve_and_reject_forms(desk: Desk) -> None:
    # WHEN the person opens the ledger panel
    html = desk.panel()
    # THEN each pending order has two POST forms carrying the session's CSRF token
    for cid in desk.pending:
        assert f'data-order="{cid}"' in html
        assert f'action="/ui/orders/{cid}/approve"' in html
        assert f'action="/ui/orders/{cid}/reject"' in html
    assert html.count(f'name="csrf_token" value="{desk.csrf}"') == 5  # 2 x 2 + kill switch


def test_approving_sends_the_order_once_and_tells_the_channels(desk: Desk) -> None:
    first, second = desk.pending
    # WHEN the first is approved, then approved again (a double click)
    status, html = desk.post(f"/ui/orders/{first}/approve")
    again, refused = desk.post(f"/ui/orders/{first}/approve")
    desk.dispatcher.start()
    desk.dispatcher.stop()
    # THEN it is filled once, the second still waits, and the second click is refused in words
    assert status == 200
    assert "approved: the order is filled" in html
    assert _state(desk, first) is OrderState.FILLED
    assert _state(desk, second) is OrderState.PENDING_APPROVAL
    assert again == 409
    assert "not waiting for approval" in refused
    assert re.search(r'data-position="AAPL"', html)
    assert [n.kind for n in desk.inbox.notices] == [NoticeKind.ORDER_FILLED]
    assert desk.inbox.notices[0].title.startswith("AAPL: BUY")


def test_rejecting_records_who_and_sends_nothing(desk: Desk) -> None:
    _, second = desk.pending
    status, html = desk.post(f"/ui/orders/{second}/reject")
    assert status == 200
    assert "rejected: the order will not be sent" in html
    order = desk.executor.ledger.order(desk.executor.account, second)
    assert order is not None
    assert order.state is OrderState.REJECTED
    assert order.reason is not None
    assert "rejected in the cockpit" in order.reason


def test_the_kill_switch_halts_then_resumes_the_account(desk: Desk) -> None:
    first, _ = desk.pending
    # WHEN the person throws the kill switch and then tries to approve
    status, html = desk.post("/ui/halt")
    account = desk.executor.ledger.account(desk.executor.account)
    blocked, words = desk.post(f"/ui/orders/{first}/approve")
    # THEN the ledger says halted, the approval is refused, and the panel offers to resume
    assert status == 200
    assert account is not None
    assert account.halted
    assert "TRADING HALTED" in html
    assert 'action="/ui/resume"' in html
    assert blocked == 409
    assert "halted" in words
    assert _state(desk, first) is OrderState.PENDING_APPROVAL
    # AND resuming clears it
    desk.post("/ui/resume")
    resumed = desk.executor.ledger.account(desk.executor.account)
    assert resumed is not None
    assert not resumed.halted


def _open(desk: Desk) -> dict[str, object]:
    """Symbol -> quantity of the account's open positions, read from the ledger."""
    positions = desk.executor.ledger.positions(desk.executor.account)
    return {p.symbol: p.quantity for p in positions if p.quantity != 0}


def test_halt_and_flatten_asks_first_then_halts_and_closes_every_position(desk: Desk) -> None:
    # GIVEN an open AAPL position (an approved, filled buy) and one order still pending
    first, second = desk.pending
    desk.post(f"/ui/orders/{first}/approve")
    held = _open(desk)
    assert list(held) == ["AAPL"]
    panel = desk.panel()
    assert 'href="/ui/halt/flatten"' in panel

    # WHEN the person presses "halt and flatten"
    asked = desk.person.get("/ui/halt/flatten", headers={"HX-Request": "true"})

    # THEN the panel asks, naming the closing order, and nothing has changed yet
    assert asked.status_code == 200
    question = asked.text
    assert "Halt trading and close every position at market?" in question
    assert f'data-flatten="AAPL">SELL {held["AAPL"]} AAPL' in question
    assert 'action="/ui/halt/flatten"' in question
    assert f'name="csrf_token" value="{desk.csrf}"' in question
    assert 'hx-trigger="every' not in question  # the question is not refreshed away
    account = desk.executor.ledger.account(desk.executor.account)
    assert account is not None
    assert not account.halted
    assert _open(desk) == held

    # WHEN the confirmation is posted without the CSRF token
    forged, _ = desk.post("/ui/halt/flatten", csrf="forged")
    # THEN it is refused and changes nothing
    assert forged == 403
    assert _open(desk) == held

    # WHEN it is confirmed with the token
    status, html = desk.post("/ui/halt/flatten")
    desk.dispatcher.start()
    desk.dispatcher.stop()

    # THEN the account is halted, the position closed, the pending order left waiting
    assert status == 200
    account = desk.executor.ledger.account(desk.executor.account)
    assert account is not None
    assert account.halted
    assert account.halt_reason is not None
    assert "flattened in the cockpit" in account.halt_reason
    assert _open(desk) == {}
    assert _state(desk, second) is OrderState.PENDING_APPROVAL
    # AND the panel says what was closed; the channels heard the halt and the closing fill
    assert f"closing every position: SELL {held['AAPL']} AAPL (filled)" in html
    assert "TRADING HALTED" in html
    kinds = [n.kind for n in desk.inbox.notices]
    assert kinds.count(NoticeKind.HALT) == 1
    assert kinds.count(NoticeKind.ORDER_FILLED) == 2  # the approved buy, the closing sell


def test_the_flatten_question_works_without_script_as_a_page_of_its_own(desk: Desk) -> None:
    # WHEN the confirmation is opened as a plain link (no htmx)
    page = desk.person.get("/ui/halt/flatten")
    # THEN it is a whole page under the strict policy, with no inline script, and the answer
    # is an ordinary form post that comes back to the cockpit
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert all("src=" in tag for tag in re.findall(r"<script[^>]*>", page.text))
    assert "No position is open: this only halts trading." in page.text
    answer = desk.person.post(
        "/ui/halt/flatten", data={"csrf_token": desk.csrf}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui#ledger"
    account = desk.executor.ledger.account(desk.executor.account)
    assert account is not None
    assert account.halted


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(desk: Desk) -> None:
    first, _ = desk.pending
    status, _ = desk.post(f"/ui/orders/{first}/approve", csrf="forged")
    halt_status, _ = desk.post("/ui/halt", csrf="")
    assert status == 403
    assert halt_status == 403
    assert _state(desk, first) is OrderState.PENDING_APPROVAL
    account = desk.executor.ledger.account(desk.executor.account)
    assert account is not None
    assert not account.halted


def test_an_unknown_order_id_is_a_4xx_naming_it(desk: Desk) -> None:
    status, html = desk.post("/ui/orders/" + "z" * 32 + "/approve")
    assert status == 409
    assert "no order" in html
    bad, _ = desk.post("/ui/orders/bad%20id/approve")
    assert bad == 422


def test_without_the_ledger_the_actions_are_404(ledger_aws: LedgerAws) -> None:
    del ledger_aws
    engine = build_engine()
    services = EngineServices(
        settings=Settings(environment="test", engine_token=ENGINE_TOKEN),
        rules=engine.processor.rules, cache=engine.cache, decisions=engine.decisions,
        history=engine.history, circuit=engine.circuit, broker=engine.broker,
        processor=engine.processor, worker=None,
    )  # fmt: skip
    with TestClient(create_app(services), base_url="http://localhost") as person:
        csrf = sign_in(person)
        answer = person.post("/ui/halt", data={"csrf_token": csrf})
        assert answer.status_code == 404
        assert person.post("/ui/halt/flatten", data={"csrf_token": csrf}).status_code == 404
        assert person.get("/ui/halt/flatten").status_code == 404
        assert "not installed" in person.get("/ui/panels/ledger").text


def test_account_key_is_shown(desk: Desk) -> None:
    key: AccountKey = desk.executor.account
    assert key.account_id in desk.panel()


def test_the_processor_tells_the_channels_an_order_waits_for_approval(
    ledger_aws: LedgerAws,
) -> None:
    # GIVEN the processor trading in approval mode, with the order notifier as an observer
    from kyperian.adapters.notify.orders import OrderNotifier
    from kyperian.domain.engine_ports import QueueMessage
    from kyperian.engine.processor import SignalProcessor
    from kyperian.engine.telemetry import EngineMetrics
    from tests.signal_factory import envelope, make_signal

    engine = build_engine()
    inbox = Inbox()
    dispatcher = NotificationDispatcher([inbox], NoDeadLetters())
    processor = SignalProcessor(
        cache=engine.cache, processed=engine.cache, decisions=engine.decisions,
        history=engine.history, rules=engine.processor.rules, circuit=engine.circuit,
        metrics=EngineMetrics("test"), auto_trading=True, clock=engine.clock.wall,
        execution=ledger_aws.executor(ledger_aws.new_account(), approval=True),
        order_observers=(OrderNotifier(dispatcher),),
    )  # fmt: skip

    # WHEN aligned buys arrive
    for number, signal in enumerate(
        (
            make_signal(timeframe="1D", action="BUY", at=engine.clock.wall()),
            make_signal(timeframe="4h", action="STRONG_BUY", at=engine.clock.wall()),
        )
    ):
        processor.handle(QueueMessage(f"m{number}", "r", envelope(signal), 1))
    dispatcher.start()
    dispatcher.stop()

    # THEN the channel heard that an order waits for a person, with where to approve it
    kinds = [n.kind for n in inbox.notices]
    assert NoticeKind.ORDER_PENDING_APPROVAL in kinds
    waiting = next(n for n in inbox.notices if n.kind is NoticeKind.ORDER_PENDING_APPROVAL)
    assert "waiting for approval in the cockpit" in waiting.text


def test_a_reconciliation_mismatch_is_told_to_the_channels(ledger_aws: LedgerAws) -> None:
    # GIVEN the reconciler with the mismatch notifier, and a position booked only at the venue
    from decimal import Decimal

    from kyperian.adapters.notify.orders import MismatchNotifier
    from kyperian.domain.brokers import OrderRequest, OrderSide
    from kyperian.engine.reconciler import Reconciler
    from kyperian.engine.telemetry import EngineMetrics

    account = ledger_aws.new_account()
    executor = ledger_aws.executor(account)
    executor.book()
    inbox = Inbox()
    dispatcher = NotificationDispatcher([inbox], NoDeadLetters())
    reconciler = Reconciler(
        executor, EngineMetrics("test"), interval=60, on_mismatch=MismatchNotifier(dispatcher)
    )
    ledger_aws.venue(account).submit_order(
        OrderRequest(client_order_id="by-hand", symbol="MSFT", side=OrderSide.BUY,
                     quantity=Decimal(3), reference_price=Decimal(50))
    )  # fmt: skip

    # WHEN it runs
    reconciler.run_once()
    dispatcher.start()
    dispatcher.stop()

    # THEN one notice says what disagrees and that trading is halted
    [notice] = inbox.notices
    assert notice.kind is NoticeKind.RECONCILIATION_MISMATCH
    assert "HALTED" in notice.title
    assert "position MSFT: ledger 0, venue 3" in notice.text
