"""The paper venue's books in DynamoDB: one account for all tasks, one read and write per order."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from kyperian.adapters.aws.paper_venue import order_item
from kyperian.domain.brokers import OrderRequest, OrderSide, OrderStatus
from kyperian.domain.errors import InvalidOrderError
from tests.integration.execution.conftest import LedgerAws

pytestmark = pytest.mark.integration


def _buy(
    cid: str, quantity: str, price: str = "100", side: OrderSide = OrderSide.BUY
) -> OrderRequest:
    return OrderRequest(
        client_order_id=cid, symbol="AAPL", side=side, quantity=Decimal(quantity),
        reference_price=Decimal(price),
    )  # fmt: skip


class _Calls:
    """DynamoDB operations the client makes (botocore's own event hook)."""

    def __init__(self, client: Any) -> None:
        self.names: list[str] = []
        client.meta.events.register("before-call.dynamodb", self._seen)

    def _seen(self, model: Any, **_: Any) -> None:
        self.names.append(model.name)


def test_two_tasks_trade_one_paper_account_whatever_each_last_saw(ledger_aws: LedgerAws) -> None:
    # GIVEN two tasks' venues on one paper account, both having written its books once
    account = ledger_aws.new_account()
    first, second = ledger_aws.venue(account), ledger_aws.venue(account)
    first.submit_order(_buy("a1", "10"))
    second.submit_order(_buy("b1", "5", "110"))

    # WHEN each trades again on the books it wrote last (first's copy is stale by now)
    first.submit_order(_buy("a2", "10", "120"))
    second.submit_order(_buy("b2", "20", "120", OrderSide.SELL))

    # THEN the account holds the sum of every fill, whichever task reads it
    for venue in (first, second, ledger_aws.venue(account)):
        [position] = venue.positions()
        assert position.quantity == Decimal(5)
        assert venue.account().cash == Decimal(100000) - 1000 - 550 - 1200 + 2400
    # AND a client order id is still accepted once, by any task
    with pytest.raises(InvalidOrderError, match="already used"):
        second.submit_order(_buy("a1", "1"))
    assert len(first.store.orders()) == 4


def test_a_submit_costs_one_read_and_one_write_whatever_the_history(
    ledger_aws: LedgerAws,
) -> None:
    # GIVEN a paper account with 40 orders behind it
    account = ledger_aws.new_account()
    venue = ledger_aws.venue(account)
    for n in range(40):
        venue.submit_order(_buy(f"h{n}", "1", side=OrderSide.BUY if n % 2 else OrderSide.SELL))
    calls = _Calls(ledger_aws.dynamodb)

    # WHEN a new task's venue submits, then submits again
    fresh = ledger_aws.venue(account)
    fresh.submit_order(_buy("n1", "1"))
    cold = list(calls.names)
    fresh.submit_order(_buy("n2", "1", side=OrderSide.SELL))

    # THEN the first costs a read of the books and one transaction, the next the transaction
    assert cold == ["GetItem", "TransactWriteItems"]
    assert calls.names[len(cold) :] == ["TransactWriteItems"]


def test_books_stored_before_they_were_kept_are_rebuilt_from_the_orders(
    ledger_aws: LedgerAws,
) -> None:
    # GIVEN a paper account in the earlier layout: starting cash, orders and price items only
    account = ledger_aws.new_account()
    pk = f"VENUE#paper#{account}"
    table, client = ledger_aws.table, ledger_aws.dynamodb
    client.put_item(
        TableName=table,
        Item={"PK": {"S": pk}, "SK": {"S": "ACCOUNT"}, "starting_cash": {"N": "100000"}},
    )
    donor = ledger_aws.venue(ledger_aws.new_account())
    filled = donor.submit_order(_buy("old1", "10", "100"))
    client.put_item(TableName=table, Item=order_item(pk, filled))
    client.put_item(
        TableName=table,
        Item={"PK": {"S": pk}, "SK": {"S": "MARK#AAPL"}, "price": {"N": "105"}},
    )

    # WHEN the venue reads the account, then trades on it
    venue = ledger_aws.venue(account)
    [position] = venue.positions()
    venue.submit_order(_buy("new1", "5", "110"))

    # THEN the old fill is in the books, valued at the old mark, and the new one adds to it
    assert (position.quantity, position.market_price) == (Decimal(10), Decimal(105))
    assert venue.account().cash == Decimal(100000) - 1000 - 550
    assert venue.positions()[0].quantity == Decimal(15)
    assert filled.status is OrderStatus.FILLED
