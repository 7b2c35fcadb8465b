"""The paper venue's books in the ledger table, under their own partition.

``PK = VENUE#paper#<account id>``: ``SK = ACCOUNT`` (the books: starting cash, cash,
holdings and last prices as maps, ``version``), ``ORDER#<client order id>`` (the venue's
order, fills included). Kept apart from the engine's ``ACCOUNT#...`` partition on
purpose: the paper venue plays the part of an outside venue, and reconciliation compares
the two books. An order and the books it moved are written in one transaction, the
books over the version read and a new order only if its client order id is free (as a
live venue refuses a repeat), so a submit is one read and one write, never a scan.
Books written before they were kept (an ``ACCOUNT`` item without ``version``, last
prices in ``MARK#<SYMBOL>`` items) read as version 0, which the venue rebuilds once.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from kyperian.adapters.aws.clients import classify, error_code
from kyperian.adapters.brokers.paper.store import PaperBooks, PaperHolding, PaperVenueStore
from kyperian.domain.brokers import Order, OrderStatus
from kyperian.domain.errors import InvalidOrderError, OperationalError, TemporaryError

Item = dict[str, Any]
_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()
_KEYS: Final = frozenset({"PK", "SK"})
_FAILED: Final = "ConditionalCheckFailed"


def order_item(pk: str, order: Order) -> Item:
    plain = json.loads(order.model_dump_json())
    plain.update({"PK": pk, "SK": f"ORDER#{order.client_order_id}"})
    return {k: _SERIALIZER.serialize(v) for k, v in plain.items() if v is not None}


def _item_order(item: Item) -> Order:
    plain = {k: _DESERIALIZER.deserialize(v) for k, v in item.items() if k not in _KEYS}
    try:
        return Order.model_validate(plain)
    except ValidationError as exc:
        raise OperationalError(f"unreadable paper order {item.get('SK')}: {exc}") from exc


def _books_item(pk: str, books: PaperBooks) -> Item:
    holdings = {
        s: {"M": {"quantity": {"N": str(h.quantity)}, "average_price": {"N": str(h.average_price)}}}
        for s, h in books.holdings.items()
    }
    return {
        "PK": {"S": pk},
        "SK": {"S": "ACCOUNT"},
        "starting_cash": {"N": str(books.starting_cash)},
        "cash": {"N": str(books.cash)},
        "holdings": {"M": holdings},
        "prices": {"M": {s: {"N": str(p)} for s, p in books.prices.items()}},
        "version": {"N": str(books.version)},
    }


def _item_books(item: Item) -> PaperBooks:
    starting = Decimal(item["starting_cash"]["N"])
    if "version" not in item:
        return PaperBooks(starting_cash=starting, cash=starting, version=0)
    holdings = {
        s: PaperHolding(Decimal(h["M"]["quantity"]["N"]), Decimal(h["M"]["average_price"]["N"]))
        for s, h in item["holdings"]["M"].items()
    }
    return PaperBooks(
        starting_cash=starting,
        cash=Decimal(item["cash"]["N"]),
        holdings=holdings,
        prices={s: Decimal(p["N"]) for s, p in item["prices"]["M"].items()},
        version=int(item["version"]["N"]),
    )


class DynamoPaperVenueStore(PaperVenueStore):
    """``PaperVenueStore`` on the ledger table; one instance per paper account."""

    def __init__(self, table_name: str, client: Any, account_id: str = "paper") -> None:
        self.table_name = table_name
        self._client = client
        self._pk = f"VENUE#paper#{account_id}"

    def open(self, starting_cash: Decimal) -> PaperBooks:
        fresh = PaperBooks(starting_cash=starting_cash, cash=starting_cash)
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=_books_item(self._pk, fresh),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise classify(exc, "opening the paper account") from exc
        except BotoCoreError as exc:
            raise classify(exc, "opening the paper account") from exc
        books = self.books()
        if books is None:  # pragma: no cover - just written or found
            raise TemporaryError("paper account not readable after opening")
        return books

    def books(self) -> PaperBooks | None:
        item = self._get("ACCOUNT")
        if item is None:
            return None
        books = _item_books(item)
        if books.version == 0:  # stored before the books were kept: prices were items
            prices = self._legacy_prices()
            return PaperBooks(books.starting_cash, books.cash, prices=prices, version=0)
        return books

    def commit(
        self,
        books: PaperBooks,
        new: Order | None = None,
        replaced: tuple[Order, OrderStatus] | None = None,
    ) -> bool:
        actions: list[Item] = [{"Put": self._books_put(books)}]
        if new is not None:
            actions.append(
                {
                    "Put": {
                        "TableName": self.table_name,
                        "Item": order_item(self._pk, new),
                        "ConditionExpression": "attribute_not_exists(PK)",
                    }
                }
            )
        if replaced is not None:
            actions.append({"Put": self._replace_put(*replaced)})
        try:
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise classify(exc, "storing the paper books") from exc
            reasons = [str(r.get("Code")) for r in exc.response.get("CancellationReasons") or []]
            if new is not None and reasons[1:2] == [_FAILED]:
                raise InvalidOrderError(
                    f"client_order_id {new.client_order_id} already used"
                ) from exc
            if _FAILED in reasons:
                return False
            raise TemporaryError(f"storing the paper books: {reasons}") from exc
        except BotoCoreError as exc:
            raise classify(exc, "storing the paper books") from exc
        return True

    def _books_put(self, books: PaperBooks) -> Item:
        put: Item = {"TableName": self.table_name, "Item": _books_item(self._pk, books)}
        if books.version <= 1:
            put["ConditionExpression"] = "attribute_not_exists(#v)"
            put["ExpressionAttributeNames"] = {"#v": "version"}
        else:
            put["ConditionExpression"] = "#v = :prev"
            put["ExpressionAttributeNames"] = {"#v": "version"}
            put["ExpressionAttributeValues"] = {":prev": {"N": str(books.version - 1)}}
        return put

    def _replace_put(self, order: Order, expected: OrderStatus) -> Item:
        return {
            "TableName": self.table_name,
            "Item": order_item(self._pk, order),
            "ConditionExpression": "#s = :expected",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": {":expected": {"S": expected.value}},
        }

    def replace(self, order: Order, expected: OrderStatus) -> bool:
        try:
            self._client.put_item(**self._replace_put(order, expected))
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
        return [_item_order(i) for i in self._query("ORDER#")]

    def _legacy_prices(self) -> dict[str, Decimal]:
        return {
            i["SK"]["S"].removeprefix("MARK#"): Decimal(i["price"]["N"])
            for i in self._query("MARK#")
        }

    def _query(self, prefix: str) -> list[Item]:
        items: list[Item] = []
        start: Item | None = None
        while True:
            extra = {"ExclusiveStartKey": start} if start else {}
            try:
                response = self._client.query(
                    TableName=self.table_name,
                    KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
                    ExpressionAttributeValues={":pk": {"S": self._pk}, ":prefix": {"S": prefix}},
                    ConsistentRead=True,
                    **extra,
                )
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "reading the paper venue") from exc
            items += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if not start:
                return items

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
