"""The paper venue's books in the ledger table, under their own partition.

``PK = VENUE#paper#<account id>``: ``SK = ACCOUNT`` (starting cash, written once),
``ORDER#<client order id>`` (the venue's order, fills included), ``MARK#<SYMBOL>`` (last
price). Kept apart from the engine's ``ACCOUNT#...`` partition on purpose: the paper venue
plays the part of an outside venue, and reconciliation compares the two books. A client
order id is stored once (``attribute_not_exists``), as a live venue refuses a repeat.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from kyperian.adapters.aws.clients import classify, error_code
from kyperian.adapters.brokers.paper.store import PaperSnapshot, PaperVenueStore
from kyperian.domain.brokers import Order, OrderStatus
from kyperian.domain.errors import InvalidOrderError, OperationalError, TemporaryError

Item = dict[str, Any]
_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()
_KEYS: Final = frozenset({"PK", "SK"})


def _order_item(pk: str, order: Order) -> Item:
    plain = json.loads(order.model_dump_json())
    plain.update({"PK": pk, "SK": f"ORDER#{order.client_order_id}"})
    return {k: _SERIALIZER.serialize(v) for k, v in plain.items() if v is not None}


def _item_order(item: Item) -> Order:
    plain = {k: _DESERIALIZER.deserialize(v) for k, v in item.items() if k not in _KEYS}
    try:
        return Order.model_validate(plain)
    except ValidationError as exc:
        raise OperationalError(f"unreadable paper order {item.get('SK')}: {exc}") from exc


def _snapshot(items: list[Item]) -> PaperSnapshot:
    starting: Decimal | None = None
    orders: list[Order] = []
    prices: dict[str, Decimal] = {}
    for item in items:
        sk = item["SK"]["S"]
        if sk == "ACCOUNT":
            starting = Decimal(item["starting_cash"]["N"])
        elif sk.startswith("ORDER#"):
            orders.append(_item_order(item))
        elif sk.startswith("MARK#"):
            prices[sk.removeprefix("MARK#")] = Decimal(item["price"]["N"])
    return PaperSnapshot(starting, tuple(orders), prices)


class DynamoPaperVenueStore(PaperVenueStore):
    """``PaperVenueStore`` on the ledger table; one instance per paper account."""

    def __init__(self, table_name: str, client: Any, account_id: str = "paper") -> None:
        self.table_name = table_name
        self._client = client
        self._pk = f"VENUE#paper#{account_id}"

    def open(self, starting_cash: Decimal) -> Decimal:
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "PK": {"S": self._pk},
                    "SK": {"S": "ACCOUNT"},
                    "starting_cash": {"N": str(starting_cash)},
                },
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise classify(exc, "opening the paper account") from exc
        except BotoCoreError as exc:
            raise classify(exc, "opening the paper account") from exc
        item = self._get("ACCOUNT")
        if item is None:  # pragma: no cover - just written or found
            raise TemporaryError("paper account not readable after opening")
        return Decimal(item["starting_cash"]["N"])

    def add(self, order: Order) -> None:
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_order_item(self._pk, order),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise InvalidOrderError(
                    f"client_order_id {order.client_order_id} already used"
                ) from exc
            raise classify(exc, "storing a paper order") from exc
        except BotoCoreError as exc:
            raise classify(exc, "storing a paper order") from exc

    def replace(self, order: Order, expected: OrderStatus) -> bool:
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_order_item(self._pk, order),
                ConditionExpression="#s = :expected",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":expected": {"S": expected.value}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise classify(exc, "updating a paper order") from exc
        except BotoCoreError as exc:
            raise classify(exc, "updating a paper order") from exc
        return True

    def find(self, client_order_id: str) -> Order | None:
        item = self._get(f"ORDER#{client_order_id}")
        return _item_order(item) if item else None

    def orders(self) -> list[Order]:
        return list(self.snapshot().orders)

    def snapshot(self) -> PaperSnapshot:
        items: list[Item] = []
        start: Item | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            try:
                response = self._client.query(
                    TableName=self.table_name,
                    KeyConditionExpression="PK = :pk",
                    ExpressionAttributeValues={":pk": {"S": self._pk}},
                    ConsistentRead=True,
                    **extra,
                )
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "reading the paper venue") from exc
            items += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if not start:
                return _snapshot(items)

    def set_price(self, symbol: str, price: Decimal) -> None:
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "PK": {"S": self._pk},
                    "SK": {"S": f"MARK#{symbol}"},
                    "price": {"N": str(price)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "storing a paper price") from exc

    def price(self, symbol: str) -> Decimal | None:
        item = self._get(f"MARK#{symbol}")
        return Decimal(item["price"]["N"]) if item else None

    def _get(self, sk: str) -> Item | None:
        try:
            response = self._client.get_item(
                TableName=self.table_name,
                Key={"PK": {"S": self._pk}, "SK": {"S": sk}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the paper venue") from exc
        item: Item | None = response.get("Item")
        return item

    def check(self) -> None:
        try:
            self._client.describe_table(TableName=self.table_name)
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the ledger table") from exc
