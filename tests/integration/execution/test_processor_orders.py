"""The processor's order metrics count each order once, however often its signal comes back."""

from __future__ import annotations

import pytest

from kyperian.domain.engine_ports import QueueMessage
from kyperian.engine.processor import SignalProcessor
from kyperian.engine.telemetry import EngineMetrics
from kyperian.execution import AccountKey
from tests.integration.execution.conftest import LedgerAws
from tests.signal_factory import envelope, make_signal
from tests.unit.engine.conftest import build_engine, metric_names
from tests.unit.engine.fakes import MemoryCache

pytestmark = pytest.mark.integration


def test_a_redelivery_finding_its_order_settled_counts_no_second_submission(
    ledger_aws: LedgerAws, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN two engine tasks trading one account, sharing the decisions table but not Redis
    engine = build_engine()
    account = ledger_aws.new_account()

    def task(cache: MemoryCache) -> SignalProcessor:
        return SignalProcessor(
            cache=cache, processed=cache, decisions=engine.decisions, history=engine.history,
            rules=engine.processor.rules, circuit=engine.circuit,
            metrics=EngineMetrics("test"), auto_trading=True, clock=engine.clock.wall,
            execution=ledger_aws.executor(account),
        )  # fmt: skip

    first, second = task(engine.cache), task(MemoryCache())
    buy = make_signal(timeframe="1D", action="BUY", at=engine.clock.wall())

    # WHEN an actionable signal is processed, then redelivered to the other task
    first.handle(QueueMessage("m1", "r", envelope(buy), 1))
    placed = metric_names(capsys.readouterr().out)
    second.handle(QueueMessage("m1", "r", envelope(buy), 2))
    redelivered = metric_names(capsys.readouterr().out)

    # THEN the order was counted once, when it was placed, and the ledger holds one order
    assert placed.count("OrdersSubmitted") == 1
    assert "OrdersSubmitted" not in redelivered
    assert "OrdersRejected" not in redelivered
    key = AccountKey(venue="paper", account_id=account)
    assert len(ledger_aws.ledger().orders(key)) == 1
