"""A live venue (Alpaca, over recorded HTTP exchanges) behind the ledger's executor.

The executor owns the lifecycle (intent, one submit under a lease, reconcile on doubt); the
venue only executes. These tests show the adapter's answers land in the ledger: a bracket
reaches Alpaca as one order, a submit that times out is settled by ``find_order`` without a
second submit, and a symbol the venue cannot trade is recorded as refused.
"""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import requests
import responses
from responses import matchers

from kyperian.adapters.brokers.alpaca import AlpacaBroker, AlpacaConfig
from kyperian.domain.decisions import Decision
from kyperian.domain.models import Action
from kyperian.execution import AccountKey, ExecutionKind, OrderExecutor, OrderState
from tests.events.load import load_event
from tests.integration.execution.conftest import LedgerAws
from tests.signal_factory import NOW

pytestmark = pytest.mark.integration

PAPER = "https://paper-api.alpaca.markets/v2"


def _decision(decision_id: str, symbol: str = "AAPL", **exits: float) -> Decision:
    return Decision(
        decision_id=decision_id, symbol=symbol, action=Action.BUY, score=0.5, confidence=0.8,
        position_size=0.05, price=190.0, decided_at=NOW, **exits,
    )  # fmt: skip


def _executor(ledger_aws: LedgerAws) -> OrderExecutor:
    config = AlpacaConfig.model_validate({"api_key_id": "PK", "api_secret_key": "s"})
    account = AccountKey(venue="alpaca", account_id=ledger_aws.new_account())
    responses.get(f"{PAPER}/account", json=load_event("brokers/alpaca_account.json"))
    return OrderExecutor(
        ledger_aws.ledger(), AlpacaBroker(config, sleep=lambda _: None), account,
        clock=ledger_aws.clock,
    )  # fmt: skip


def _alpaca_order(cid: str, **changes: object) -> dict[str, object]:
    body = load_event("brokers/alpaca_order_accepted.json")
    body.update({"client_order_id": cid, **changes})
    return body


@responses.activate
def test_a_decision_with_exits_reaches_alpaca_as_one_bracket(ledger_aws: LedgerAws) -> None:
    # GIVEN a BUY decision whose alert carried a take-profit and a stop-loss
    cid = "a" * 32
    posted = responses.post(
        f"{PAPER}/orders",
        json=_alpaca_order(cid, order_class="bracket"),
        match=[
            matchers.json_params_matcher(
                {
                    "client_order_id": cid,
                    "order_class": "bracket",
                    "take_profit": {"limit_price": 210.0},
                    "stop_loss": {"stop_price": 180.0},
                },
                strict_match=False,
            )
        ],
    )
    executor = _executor(ledger_aws)
    executor.open()
    # WHEN the executor handles it
    done = executor.execute(_decision(cid, take_profit=210.0, stop_loss=180.0))
    # THEN Alpaca got one bracket order and the ledger records it as accepted
    assert done is not None
    assert done.kind is ExecutionKind.ORDERED
    assert posted.call_count == 1
    assert done.order.venue_order_id == "61e69015-8549-4bfd-b9c3-01e75843f47d"
    assert (done.order.take_profit, done.order.stop_loss) == (Decimal("210.0"), Decimal("180.0"))


@responses.activate
def test_a_timed_out_submit_is_settled_by_find_order_not_resent(ledger_aws: LedgerAws) -> None:
    # GIVEN the submit times out although Alpaca filled the order
    cid = "b" * 32
    posted = responses.post(f"{PAPER}/orders", body=requests.Timeout("read timed out"))
    responses.get(
        f"{PAPER}/orders:by_client_order_id",
        json=_alpaca_order(cid, status="filled", filled_qty="15", filled_avg_price="190"),
    )
    executor = _executor(ledger_aws)
    executor.open()
    # WHEN executed
    done = executor.execute(_decision(cid))
    # THEN one submit went out and the ledger holds the venue's fill
    assert done is not None
    assert posted.call_count == 1
    assert done.order.state is OrderState.FILLED
    assert done.order.filled_quantity == Decimal(15)


@responses.activate
def test_a_symbol_alpaca_cannot_trade_is_recorded_as_refused(ledger_aws: LedgerAws) -> None:
    # GIVEN a decision on a perpetual swap, which Alpaca does not offer
    cid = "c" * 32
    responses.get(
        f"{PAPER}/orders:by_client_order_id",
        body=json.dumps({"code": 40410000, "message": "order not found"}),
        status=404,
    )
    executor = _executor(ledger_aws)
    executor.open()
    # WHEN executed THEN no order is sent and the refusal, with its reason, is in the ledger
    done = executor.execute(_decision(cid, symbol="BTCUSDT.P"))
    assert done is not None
    assert done.kind is ExecutionKind.REFUSED
    assert done.order.state is OrderState.REJECTED
    assert "no perpetual swaps" in (done.order.reason or "")
    assert not [c for c in responses.calls if c.request.method == "POST"]
