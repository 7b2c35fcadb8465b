"""The ledger in DynamoDB: orders, fills, positions and cash of every account, shared by all tasks.

Table ``kyperian-<env>-ledger`` (``cloudformation/data.yaml``), one partition per account:

==========================  ====================  ============================================
PK                          SK                    item
==========================  ====================  ============================================
``ACCOUNT#<venue>#<id>``    ``BOOK#ACCOUNT``      cash (a number, for ``ADD``), kill switch
``ACCOUNT#<venue>#<id>``    ``BOOK#POSITION#<s>`` signed quantity, average price, ``version``
``ACCOUNT#<venue>#<id>``    ``ORDER#<cid>``       the order; ``open_account`` while not final
``ACCOUNT#<venue>#<id>``    ``FILL#<fill id>``    one booked execution
``VENUE#paper#<id>``        ``ORDER#<cid>``       the paper venue's own books (its adapter)
==========================  ====================  ============================================

The account and its positions share the ``BOOK#`` prefix, so the book is one strongly
consistent query plus one on the sparse GSI ``open-orders-index`` (``open_account``,
``SK``), which lists the orders that still count as exposure without reading finished
ones. Exactly-once is the table's doing: an
order is created with ``attribute_not_exists``, saved only over the version it was read
at, and a fill is booked in one transaction with its order, its position (again on the
version read) and the account's cash (``ADD``), the fill's own put refusing a second
booking. So positions and cash always equal the sum of the fills. Nothing expires: these
are financial records (no TTL).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ValidationError

from kyperian.adapters.aws.clients import classify, error_code
from kyperian.domain.errors import OperationalError, TemporaryError
from kyperian.domain.models import iso_utc
from kyperian.execution.book import Book, LedgerAccount, LedgerPosition, apply_fill
from kyperian.execution.orders import AccountKey, LedgerFill, LedgerOrder, OrderState
from kyperian.execution.ports import Ledger, OrderExists, StaleRecord

Item = dict[str, Any]
_M = TypeVar("_M", bound=BaseModel)
OPEN_INDEX: Final = "open-orders-index"
_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()
_KEYS: Final = frozenset({"PK", "SK", "open_account", "kind"})
_BOOK: Final = "BOOK#"
_ACCOUNT_SK: Final = "BOOK#ACCOUNT"
_POSITION: Final = "BOOK#POSITION#"


def account_pk(key: AccountKey) -> str:
    return f"ACCOUNT#{key}"


def _plain(model: BaseModel) -> dict[str, Any]:
    """JSON-mode fields (Decimals as exact strings) ready for the serializer."""
    data: dict[str, Any] = json.loads(model.model_dump_json())
    return data


def _item(plain: dict[str, Any]) -> Item:
    return {k: _SERIALIZER.serialize(v) for k, v in plain.items() if v is not None}


def _read(item: Item) -> dict[str, Any]:
    return {k: _DESERIALIZER.deserialize(v) for k, v in item.items() if k not in _KEYS}


def order_to_item(order: LedgerOrder) -> Item:
    plain = _plain(order)
    plain["account"] = str(order.account)
    pk = account_pk(order.account)
    extra = {"PK": pk, "SK": f"ORDER#{order.client_order_id}", "kind": "order"}
    if order.state.open:
        extra["open_account"] = pk
    return _item({**plain, **extra})


def item_to_order(item: Item) -> LedgerOrder:
    plain = _read(item)
    venue, _, account_id = str(plain.pop("account")).partition("#")
    plain["account"] = {"venue": venue, "account_id": account_id}
    plain["version"] = int(plain["version"])
    return _validated(LedgerOrder, plain, item)


def _validated(model: type[_M], plain: dict[str, Any], item: Item) -> _M:
    try:
        return model.model_validate(plain)
    except ValidationError as exc:
        raise OperationalError(f"unreadable ledger item {item.get('SK')}: {exc}") from exc


def _fill_item(key: AccountKey, fill: LedgerFill) -> Item:
    extra = {"PK": account_pk(key), "SK": f"FILL#{fill.fill_id}", "kind": "fill"}
    return _item({**_plain(fill), **extra})


def _position_item(key: AccountKey, position: LedgerPosition) -> Item:
    extra = {"PK": account_pk(key), "SK": f"{_POSITION}{position.symbol}", "kind": "position"}
    return _item({**_plain(position), **extra})


def _item_to_position(item: Item) -> LedgerPosition:
    plain = _read(item)
    plain["version"] = int(plain["version"])
    return _validated(LedgerPosition, plain, item)


def _item_to_account(item: Item) -> LedgerAccount:
    plain = _read(item)
    venue, _, account_id = str(plain.pop("account")).partition("#")
    plain["key"] = {"venue": venue, "account_id": account_id}
    return _validated(LedgerAccount, plain, item)


class DynamoLedger(Ledger):
    """``Ledger`` on the DynamoDB table; pass a client to share or to test."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self._client = client

    # --- accounts -----------------------------------------------------------------------

    def open_account(
        self, key: AccountKey, cash: Decimal, currency: str, now: datetime
    ) -> LedgerAccount:
        item = {
            "PK": {"S": account_pk(key)},
            "SK": {"S": _ACCOUNT_SK},
            "kind": {"S": "account"},
            "account": {"S": str(key)},
            "currency": {"S": currency},
            "starting_cash": {"N": str(cash)},
            "cash": {"N": str(cash)},
            "realized_pnl": {"N": "0"},
            "halted": {"BOOL": False},
            "opened_at": {"S": iso_utc(now)},
        }
        with contextlib.suppress(StaleRecord):  # opened by another task first: theirs stands
            self._call("put_item", Item=item, ConditionExpression="attribute_not_exists(PK)")
        opened = self.account(key)
        if opened is None:  # pragma: no cover - just written or found
            raise TemporaryError(f"account {key} not readable after opening")
        return opened

    def account(self, key: AccountKey) -> LedgerAccount | None:
        response = self._call(
            "get_item",
            Key={"PK": {"S": account_pk(key)}, "SK": {"S": _ACCOUNT_SK}},
            ConsistentRead=True,
        )
        item: Item | None = response.get("Item")
        return _item_to_account(item) if item else None

    def set_halt(self, key: AccountKey, halted: bool, reason: str | None) -> None:
        self._call(
            "update_item",
            Key={"PK": {"S": account_pk(key)}, "SK": {"S": _ACCOUNT_SK}},
            UpdateExpression="SET halted = :h, halt_reason = :r",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues={
                ":h": {"BOOL": halted},
                ":r": {"S": reason} if reason else {"NULL": True},
            },
        )

    def book(self, key: AccountKey) -> Book:
        items = self._prefix(key, _BOOK)
        account = next((i for i in items if i["SK"]["S"] == _ACCOUNT_SK), None)
        if account is None:
            raise OperationalError(f"ledger account {key} is not opened")
        return Book(
            account=_item_to_account(account),
            positions=tuple(_item_to_position(i) for i in items if i["SK"]["S"] != _ACCOUNT_SK),
            open_orders=tuple(self._open_orders(key)),
        )

    def positions(self, key: AccountKey) -> list[LedgerPosition]:
        return [_item_to_position(i) for i in self._prefix(key, _POSITION)]

    def _open_orders(self, key: AccountKey) -> list[LedgerOrder]:
        items = self._query(
            IndexName=OPEN_INDEX,
            KeyConditionExpression="open_account = :pk",
            ExpressionAttributeValues={":pk": {"S": account_pk(key)}},
        )
        return [item_to_order(i) for i in items]

    # --- orders -------------------------------------------------------------------------

    def create_order(self, order: LedgerOrder) -> None:
        try:
            self._call(
                "put_item",
                Item=order_to_item(order),
                ConditionExpression="attribute_not_exists(PK)",
            )
        except StaleRecord as exc:
            raise OrderExists(order.client_order_id) from exc

    def order(self, key: AccountKey, client_order_id: str) -> LedgerOrder | None:
        response = self._call(
            "get_item",
            Key={"PK": {"S": account_pk(key)}, "SK": {"S": f"ORDER#{client_order_id}"}},
            ConsistentRead=True,
        )
        item: Item | None = response.get("Item")
        return item_to_order(item) if item else None

    def orders(
        self,
        key: AccountKey,
        symbol: str | None = None,
        states: Sequence[OrderState] | None = None,
        limit: int = 100,
    ) -> list[LedgerOrder]:
        found = [item_to_order(i) for i in self._prefix(key, "ORDER#")]
        wanted = set(states) if states else None
        return [
            o
            for o in found
            if (symbol is None or o.symbol == symbol) and (wanted is None or o.state in wanted)
        ][-limit:]

    def save_order(self, order: LedgerOrder) -> None:
        self._call(
            "put_item",
            Item=order_to_item(order),
            ConditionExpression="#v = :prev",
            ExpressionAttributeNames={"#v": "version"},
            ExpressionAttributeValues={":prev": {"N": str(order.version - 1)}},
        )

    def record(self, order: LedgerOrder, fills: Sequence[LedgerFill]) -> None:
        if not fills:
            self.save_order(order)
            return
        key = order.account
        actions: list[Item] = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": order_to_item(order),
                    "ConditionExpression": "#v = :prev",
                    "ExpressionAttributeNames": {"#v": "version"},
                    "ExpressionAttributeValues": {":prev": {"N": str(order.version - 1)}},
                }
            }
        ]
        actions += [self._put_new(_fill_item(key, fill)) for fill in fills]
        actions += self._position_writes(key, fills)
        actions.append(self._cash_update(key, fills))
        try:
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if error_code(exc) in {
                "TransactionCanceledException",
                "ConditionalCheckFailedException",
            }:
                raise StaleRecord(f"order {order.client_order_id} or its position moved") from exc
            raise classify(exc, "booking fills in the ledger") from exc
        except BotoCoreError as exc:
            raise classify(exc, "booking fills in the ledger") from exc

    def _put_new(self, item: Item) -> Item:
        return {
            "Put": {
                "TableName": self.table_name,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(PK)",
            }
        }

    def _position_writes(self, key: AccountKey, fills: Sequence[LedgerFill]) -> list[Item]:
        writes = []
        for symbol in sorted({f.symbol for f in fills}):
            before = self._position(key, symbol)
            after = before
            for fill in (f for f in fills if f.symbol == symbol):
                after = apply_fill(after, fill)
            condition = "attribute_not_exists(PK)" if before.version == 0 else "#v = :prev"
            put: Item = {
                "TableName": self.table_name,
                "Item": _position_item(key, after),
                "ConditionExpression": condition,
            }
            if before.version:
                put["ExpressionAttributeNames"] = {"#v": "version"}
                put["ExpressionAttributeValues"] = {":prev": {"N": str(before.version)}}
            writes.append({"Put": put})
        return writes

    def _position(self, key: AccountKey, symbol: str) -> LedgerPosition:
        response = self._call(
            "get_item",
            Key={"PK": {"S": account_pk(key)}, "SK": {"S": f"{_POSITION}{symbol}"}},
            ConsistentRead=True,
        )
        item: Item | None = response.get("Item")
        return _item_to_position(item) if item else LedgerPosition(symbol=symbol)

    def _cash_update(self, key: AccountKey, fills: Sequence[LedgerFill]) -> Item:
        cash = sum((f.cash_change for f in fills), Decimal(0))
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"PK": {"S": account_pk(key)}, "SK": {"S": _ACCOUNT_SK}},
                "UpdateExpression": "ADD cash :cash",
                "ConditionExpression": "attribute_exists(PK)",
                "ExpressionAttributeValues": {":cash": {"N": str(cash)}},
            }
        }

    def fills(self, key: AccountKey) -> list[LedgerFill]:
        plain = [_read(i) for i in self._prefix(key, "FILL#")]
        fills = [_validated(LedgerFill, p, {}) for p in plain]
        return sorted(fills, key=lambda f: (f.filled_at, f.fill_id))

    # --- plumbing -----------------------------------------------------------------------

    def _prefix(self, key: AccountKey, prefix: str) -> list[Item]:
        return self._query(
            KeyConditionExpression="PK = :pk AND begins_with(SK, :prefix)",
            ExpressionAttributeValues={
                ":pk": {"S": account_pk(key)},
                ":prefix": {"S": prefix},
            },
            ConsistentRead=True,
        )

    def _query(self, **kwargs: Any) -> list[Item]:
        items: list[Item] = []
        start: Item | None = None
        while True:
            page_args = {**kwargs, **({"ExclusiveStartKey": start} if start else {})}
            response = self._call("query", **page_args)
            items += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if not start:
                return items

    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(TableName=self.table_name, **kwargs)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StaleRecord(f"ledger {operation}: condition failed") from exc
            raise classify(exc, f"ledger {operation}") from exc
        except BotoCoreError as exc:
            raise classify(exc, f"ledger {operation}") from exc

    def check(self) -> None:
        try:
            status = self._client.describe_table(TableName=self.table_name)["Table"]["TableStatus"]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the ledger table") from exc
        if status not in {"ACTIVE", "UPDATING"}:
            raise TemporaryError(f"ledger table is {status}")
