"""The ledger in DynamoDB: orders, fills, positions and cash of every account, shared by all tasks.

Table ``kyperian-<env>-ledger`` (``cloudformation/data.yaml``), one partition per account:

==========================  ====================  ============================================
PK                          SK                    item
==========================  ====================  ============================================
``ACCOUNT#<venue>#<id>``    ``BOOK#ACCOUNT``      cash (a number, for ``ADD``), kill switch,
                                                  ``day_cash_<YYYY-MM-DD>`` (the day's fills)
``ACCOUNT#<venue>#<id>``    ``BOOK#POSITION#<s>`` signed quantity, average price, ``version``,
                                                  last stop-out, the day's opening state
``ACCOUNT#<venue>#<id>``    ``BOOK#RATE``         ``orders_<YYYY-MM-DDTHH:MM>``: the counter
``ACCOUNT#<venue>#<id>``    ``ORDER#<cid>``       the order; ``open_account`` while not final
``ACCOUNT#<venue>#<id>``    ``FILL#<fill id>``    one booked execution
``VENUE#paper#<id>``        ``ORDER#<cid>``       the paper venue's own books (its adapter)
==========================  ====================  ============================================

The account, its positions and the order counter share the ``BOOK#`` prefix, so the
book (and with it every limit on the book) is one strongly consistent query plus one on
the sparse GSI ``open-orders-index`` (``open_account``, ``SK``), which lists the orders
that still count as exposure without reading finished ones. Exactly-once is the table's
doing: an order is created with ``attribute_not_exists`` (in one transaction with a
conditional increment of its minute's counter when the order rate is limited), saved
only over the version it was read at, and a fill is booked in one transaction with its
order, its position (again on the version read) and the account's cash and day cash
(``ADD``), the fill's own put refusing a second booking. So positions and cash always
equal the sum of the fills. Nothing expires: these are financial records (no TTL); the
counter drops the minutes it has seen pass as it counts the next.
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
from kyperian.execution.book import Book, LedgerAccount, LedgerPosition, apply_fill, utc_day
from kyperian.execution.orders import AccountKey, LedgerFill, LedgerOrder, OrderState
from kyperian.execution.ports import (
    AccountHalted,
    Ledger,
    OrderExists,
    RateLimited,
    RateSlot,
    StaleRecord,
)

Item = dict[str, Any]
_M = TypeVar("_M", bound=BaseModel)
OPEN_INDEX: Final = "open-orders-index"
_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()
_KEYS: Final = frozenset({"PK", "SK", "open_account", "kind"})
_BOOK: Final = "BOOK#"
_ACCOUNT_SK: Final = "BOOK#ACCOUNT"
_POSITION: Final = "BOOK#POSITION#"
_RATE_SK: Final = "BOOK#RATE"
_RATE_ATTR: Final = "orders_"
_DAY_CASH: Final = "day_cash_"
_DAY_CASH_UNIT: Final = Decimal("1e-16")
"""Day cash is kept in whole units of 1e-16 (a fill's cash has at most 16 decimals: six
for the quantity, ten for the price), so ``ADD`` sums integers: exact everywhere, and no
emulator meets a decimal it cannot parse back ("0E-16" after a flat day, in moto)."""
_CANCELLED: Final = frozenset({"TransactionCanceledException", "ConditionalCheckFailedException"})


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
    days = [k for k in plain if k.startswith(_DAY_CASH)]
    plain["day_cash"] = {k.removeprefix(_DAY_CASH): plain.pop(k) * _DAY_CASH_UNIT for k in days}
    return _validated(LedgerAccount, plain, item)


def _order_counts(item: Item | None) -> dict[str, int]:
    if item is None:
        return {}
    return {
        k.removeprefix(_RATE_ATTR): int(v["N"]) for k, v in item.items() if k.startswith(_RATE_ATTR)
    }


def _reasons(exc: ClientError) -> list[str]:
    """Per transaction item, why it was cancelled (``None`` when it was not the cause)."""
    response: dict[str, Any] = dict(exc.response)
    reasons: list[dict[str, Any]] = response.get("CancellationReasons") or []
    return [str(r.get("Code")) for r in reasons]


def _old_item(exc: ClientError, index: int = 0) -> Item | None:
    """The item a failed conditional write found (``ReturnValuesOnConditionCheckFailure``);
    in a transaction, the one of action ``index``."""
    response: dict[str, Any] = dict(exc.response)
    reasons: list[dict[str, Any]] = response.get("CancellationReasons") or []
    if reasons:
        found: Item | None = reasons[index].get("Item") if index < len(reasons) else None
        return found
    item: Item | None = response.get("Item")
    return item


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

    def set_halt(
        self, key: AccountKey, halted: bool, reason: str | None, at: datetime | None = None
    ) -> None:
        self._call(
            "update_item",
            Key={"PK": {"S": account_pk(key)}, "SK": {"S": _ACCOUNT_SK}},
            UpdateExpression="SET halted = :h, halt_reason = :r, halted_at = :t",
            ConditionExpression="attribute_exists(PK)",
            ExpressionAttributeValues={
                ":h": {"BOOL": halted},
                ":r": {"S": reason} if reason else {"NULL": True},
                ":t": {"S": iso_utc(at)} if halted and at else {"NULL": True},
            },
        )

    def book(self, key: AccountKey) -> Book:
        items = {i["SK"]["S"]: i for i in self._prefix(key, _BOOK)}
        account = items.get(_ACCOUNT_SK)
        if account is None:
            raise OperationalError(f"ledger account {key} is not opened")
        return Book(
            account=_item_to_account(account),
            positions=tuple(
                _item_to_position(i) for sk, i in items.items() if sk.startswith(_POSITION)
            ),
            open_orders=tuple(self._open_orders(key)),
            order_counts=_order_counts(items.get(_RATE_SK)),
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

    def create_order(
        self, order: LedgerOrder, slot: RateSlot | None = None, unless_halted: bool = False
    ) -> None:
        put = {
            "TableName": self.table_name,
            "Item": order_to_item(order),
            "ConditionExpression": "attribute_not_exists(PK)",
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        actions: list[Item] = [{"Put": put}]
        if unless_halted:
            actions.append(self._not_halted(order.account))
        if slot is not None:
            actions.append(self._rate_update(order.account, slot))
        try:
            if len(actions) == 1:
                self._client.put_item(**put)
            else:
                self._client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            self._creation_failed(order, actions, exc)
        except BotoCoreError as exc:
            raise classify(exc, "recording an order intent") from exc

    def _creation_failed(self, order: LedgerOrder, actions: list[Item], exc: ClientError) -> None:
        """Turn a refused intent write into the reason (the order first, then the account)."""
        code = error_code(exc)
        if code not in _CANCELLED:
            raise classify(exc, "recording an order intent") from exc
        reasons = _reasons(exc)
        if code == "ConditionalCheckFailedException" or reasons[:1] == ["ConditionalCheckFailed"]:
            old = _old_item(exc)
            existing = item_to_order(old) if old else None
            raise OrderExists(order.client_order_id, existing) from exc
        for index, action in enumerate(actions[1:], start=1):
            if reasons[index : index + 1] != ["ConditionalCheckFailed"]:
                continue
            if "ConditionCheck" in action:
                account = _old_item(exc, index) or {}
                raise AccountHalted(account.get("halt_reason", {}).get("S")) from exc
            limit = int(action["Update"]["ExpressionAttributeValues"][":limit"]["N"])
            raise RateLimited(limit) from exc
        raise TemporaryError(f"recording order {order.client_order_id}: {reasons}") from exc

    def _not_halted(self, key: AccountKey) -> Item:
        return {
            "ConditionCheck": {
                "TableName": self.table_name,
                "Key": {"PK": {"S": account_pk(key)}, "SK": {"S": _ACCOUNT_SK}},
                "ConditionExpression": "attribute_exists(PK) AND halted <> :on",
                "ExpressionAttributeValues": {":on": {"BOOL": True}},
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _rate_update(self, key: AccountKey, slot: RateSlot) -> Item:
        """Count one order in ``slot.minute`` unless it is full; drop the stale minutes."""
        names = {"#n": f"{_RATE_ATTR}{slot.minute}"}
        names |= {f"#s{i}": f"{_RATE_ATTR}{m}" for i, m in enumerate(slot.stale)}
        remove = f" REMOVE {', '.join(n for n in names if n != '#n')}" if slot.stale else ""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"PK": {"S": account_pk(key)}, "SK": {"S": _RATE_SK}},
                "UpdateExpression": f"SET #n = if_not_exists(#n, :zero) + :one{remove}",
                "ConditionExpression": "attribute_not_exists(#n) OR #n < :limit",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": {
                    ":zero": {"N": "0"},
                    ":one": {"N": "1"},
                    ":limit": {"N": str(slot.limit)},
                },
            }
        }

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

    def save_order(self, order: LedgerOrder, unless_halted: bool = False) -> None:
        put = {
            "Item": order_to_item(order),
            "ConditionExpression": "#v = :prev",
            "ExpressionAttributeNames": {"#v": "version"},
            "ExpressionAttributeValues": {":prev": {"N": str(order.version - 1)}},
        }
        if not unless_halted:
            self._call("put_item", **put)
            return
        actions = [{"Put": {"TableName": self.table_name, **put}}, self._not_halted(order.account)]
        try:
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if error_code(exc) not in _CANCELLED:
                raise classify(exc, "saving an order") from exc
            if _reasons(exc)[1:2] == ["ConditionalCheckFailed"]:
                account = _old_item(exc, 1) or {}
                raise AccountHalted(account.get("halt_reason", {}).get("S")) from exc
            raise StaleRecord(f"order {order.client_order_id} moved") from exc
        except BotoCoreError as exc:
            raise classify(exc, "saving an order") from exc

    def record(
        self, order: LedgerOrder, fills: Sequence[LedgerFill], book: Book | None = None
    ) -> None:
        if not fills:
            self.save_order(order)
            return
        try:
            self._book_fills(order, fills, book)
        except StaleRecord:
            if book is None:
                raise
            self._book_fills(order, fills, None)  # the hint was stale: read the positions

    def _book_fills(
        self, order: LedgerOrder, fills: Sequence[LedgerFill], book: Book | None
    ) -> None:
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
        actions += self._position_writes(key, fills, book)
        actions.append(self._cash_update(key, fills, book))
        try:
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if error_code(exc) in _CANCELLED:
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

    def _position_writes(
        self, key: AccountKey, fills: Sequence[LedgerFill], book: Book | None
    ) -> list[Item]:
        writes = []
        for symbol in sorted({f.symbol for f in fills}):
            if book is None:
                before = self._position(key, symbol)
            else:
                before = book.position(symbol) or LedgerPosition(symbol=symbol)
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

    def _cash_update(self, key: AccountKey, fills: Sequence[LedgerFill], book: Book | None) -> Item:
        """Cash and each fill day's cash move by the fills; days before them are dropped."""
        cash = sum((f.cash_change for f in fills), Decimal(0))
        by_day: dict[str, Decimal] = {}
        for fill in fills:
            day = utc_day(fill.filled_at)
            by_day[day] = by_day.get(day, Decimal(0)) + fill.cash_change
        names = {f"#d{i}": f"{_DAY_CASH}{d}" for i, d in enumerate(sorted(by_day))}
        values = {":cash": {"N": str(cash)}}
        values |= {
            f":d{i}": {"N": str(int(by_day[d].scaleb(16).to_integral_value()))}
            for i, d in enumerate(sorted(by_day))
        }
        adds = ", ".join(["cash :cash", *(f"#d{i} :d{i}" for i in range(len(by_day)))])
        seen = book.account.day_cash if book is not None else {}
        stale = sorted(d for d in seen if d < min(by_day))
        names |= {f"#o{i}": f"{_DAY_CASH}{d}" for i, d in enumerate(stale)}
        remove = f" REMOVE {', '.join(f'#o{i}' for i in range(len(stale)))}" if stale else ""
        return {
            "Update": {
                "TableName": self.table_name,
                "Key": {"PK": {"S": account_pk(key)}, "SK": {"S": _ACCOUNT_SK}},
                "UpdateExpression": f"ADD {adds}{remove}",
                "ConditionExpression": "attribute_exists(PK)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
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
