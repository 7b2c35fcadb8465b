"""The Signals table: signals stored once, keyed exactly as the specification says.

Keys: ``PK = SIGNAL#<SYMBOL>``, ``SK = <TIMEFRAME>#<key_time>#<signal_id>``; the GSI
``symbol-timestamp-index`` reads a symbol's signals by time; ``ttl`` expires them after
7 days. The id and ``key_time`` come from the alert's content, so a repeated delivery
hits the same key and the conditional write (``attribute_not_exists``) turns it into
``DuplicateSignal`` instead of a second row. The item <-> Signal conversion lives here
and nowhere else: the engine reads signals back through ``item_to_signal``.

A row is written *pending* (``publish_state = "pending"``, in the sparse GSI
``unpublished-index`` by ``received_at``) and rewritten without that mark once its event is
out. An undo deletes a row only while it is still pending, so it never removes the row of an
event that an identical concurrent delivery published; the sweeper finds rows left pending.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import classify, error_code
from kyperian.domain.errors import DuplicateSignal, KyperianError, TemporaryError
from kyperian.domain.models import Signal, iso_utc
from kyperian.domain.ports import SignalStore

Item = dict[str, dict[str, Any]]
_NOT_STORED_YET = "attribute_not_exists(PK)"
PUBLISH_STATE: Final = "publish_state"
PENDING: Final = "pending"
UNPUBLISHED_INDEX: Final = "unpublished-index"
"""Sparse GSI: HASH ``publish_state``, RANGE ``received_at``; only pending rows are in it."""
_STILL_PENDING = f"{PUBLISH_STATE} = :pending"
_PENDING_VALUE = {":pending": {"S": PENDING}}
_BATCH_WRITE_LIMIT: Final = 25


def signal_pk(symbol: str) -> str:
    """Partition key of a symbol's signals."""
    return f"SIGNAL#{symbol}"


def signal_sk(signal: Signal) -> str:
    """Sort key: timeframe, then the identifying time, then the id (sources share a bar)."""
    return f"{signal.timeframe}#{iso_utc(signal.key_time)}#{signal.signal_id}"


def _number(value: float) -> dict[str, str]:
    return {"N": repr(value)}


def signal_to_item(signal: Signal) -> Item:
    """The DynamoDB item (low-level attribute values) for a signal."""
    detail = signal.to_event_detail()
    item: Item = {
        "PK": {"S": signal_pk(signal.symbol)},
        "SK": {"S": signal_sk(signal)},
        "signal_id": {"S": signal.signal_id},
        "symbol": {"S": signal.symbol},
        "action": {"S": signal.action},
        "timeframe": {"S": signal.timeframe},
        "source": {"S": signal.source},
        "timestamp": {"S": detail["timestamp"]},
        "key_time": {"S": detail["key_time"]},
        "received_at": {"S": detail["received_at"]},
        "ttl": {"N": str(signal.ttl)},
        "indicators": {"M": {k: _number(v) for k, v in signal.indicators.items()}},
    }
    if signal.exchange is not None:
        item["exchange"] = {"S": signal.exchange}
    if signal.price is not None:
        item["price"] = _number(signal.price)
    if signal.confidence is not None:
        item["confidence"] = _number(signal.confidence)
    return item


def item_to_signal(item: Item) -> Signal:
    """Rebuild a signal from its stored item (inverse of ``signal_to_item``)."""
    optional = {name: float(item[name]["N"]) for name in ("price", "confidence") if name in item}
    return Signal(
        signal_id=item["signal_id"]["S"],
        symbol=item["symbol"]["S"],
        exchange=item["exchange"]["S"] if "exchange" in item else None,
        action=item["action"]["S"],
        timeframe=item["timeframe"]["S"],
        source=item["source"]["S"],
        indicators={k: float(v["N"]) for k, v in item.get("indicators", {}).get("M", {}).items()},
        timestamp=item["timestamp"]["S"],
        key_time=item["key_time"]["S"],
        received_at=item["received_at"]["S"],
        ttl=int(item["ttl"]["N"]),
        **optional,
    )


def _key(signal: Signal) -> Item:
    return {"PK": {"S": signal_pk(signal.symbol)}, "SK": {"S": signal_sk(signal)}}


def _only_conditions(exc: ClientError) -> bool:
    reasons = exc.response.get("CancellationReasons", [])
    codes = {r.get("Code", "None") for r in reasons}
    return bool(reasons) and codes <= {"ConditionalCheckFailed", "None"}


class DynamoSignalStore(SignalStore):
    """``SignalStore`` on a DynamoDB table; pass a client to share or to test."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self._client = client

    def add(self, signal: Signal) -> None:
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={**signal_to_item(signal), PUBLISH_STATE: {"S": PENDING}},
                ConditionExpression=_NOT_STORED_YET,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise DuplicateSignal(signal.signal_id) from exc
            raise classify(exc, "storing the signal") from exc
        except BotoCoreError as exc:
            raise classify(exc, "storing the signal") from exc

    def add_all(self, signals: Sequence[Signal]) -> set[str]:
        """Conditional puts, one per signal; if one fails, the ones this call stored are undone.

        Conditional puts rather than ``TransactWriteItems``: a transaction costs twice the
        write units, and the undo gives the same all-or-nothing answer to the caller. A failed
        undo leaves rows that a retried delivery sees as duplicates and publishes again.
        """
        stored: list[Signal] = []
        duplicates: set[str] = set()
        try:
            for signal in signals:
                try:
                    self.add(signal)
                except DuplicateSignal:
                    duplicates.add(signal.signal_id)
                else:
                    stored.append(signal)
        except KyperianError:
            with contextlib.suppress(KyperianError):
                self.remove(stored)
            raise
        return duplicates

    def remove(self, signals: Sequence[Signal]) -> None:
        """Delete the rows of ``signals`` that are still pending (one call for several).

        A row already marked published stays: an identical delivery published its event.
        """
        if len(signals) > 1 and self._remove_in_one_call(signals):
            return
        for signal in signals:
            try:
                self._client.delete_item(
                    TableName=self.table_name,
                    Key=_key(signal),
                    ConditionExpression=_STILL_PENDING,
                    ExpressionAttributeValues=_PENDING_VALUE,
                )
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise classify(exc, "undoing a stored signal") from exc
            except BotoCoreError as exc:
                raise classify(exc, "undoing a stored signal") from exc

    def _remove_in_one_call(self, signals: Sequence[Signal]) -> bool:
        """One transaction of conditional deletes; False if a row was no longer pending."""
        deletes = [
            {
                "Delete": {
                    "TableName": self.table_name,
                    "Key": _key(s),
                    "ConditionExpression": _STILL_PENDING,
                    "ExpressionAttributeValues": _PENDING_VALUE,
                }
            }
            for s in signals
        ]
        try:
            self._client.transact_write_items(TransactItems=deletes)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException" and _only_conditions(exc):
                return False  # some row was published meanwhile: delete the others one by one
            raise classify(exc, "undoing stored signals") from exc
        except BotoCoreError as exc:
            raise classify(exc, "undoing stored signals") from exc
        return True

    def mark_published(self, signals: Sequence[Signal]) -> None:
        """Rewrite the rows of published signals without the pending mark, in one call.

        An unconditional put of the whole row: if a concurrent delivery's undo removed the
        row after this request's event went out, the row is back.
        """
        for start in range(0, len(signals), _BATCH_WRITE_LIMIT):
            puts = [
                {"PutRequest": {"Item": signal_to_item(s)}}
                for s in signals[start : start + _BATCH_WRITE_LIMIT]
            ]
            try:
                answer = self._client.batch_write_item(RequestItems={self.table_name: puts})
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "recording published signals") from exc
            if answer.get("UnprocessedItems"):
                raise TemporaryError("recording published signals: some rows were not written")

    def unpublished(self, received_before: datetime, limit: int) -> list[Signal]:
        """Rows still pending that arrived before ``received_before``, oldest first."""
        try:
            answer = self._client.query(
                TableName=self.table_name,
                IndexName=UNPUBLISHED_INDEX,
                KeyConditionExpression="#state = :pending AND received_at < :before",
                ExpressionAttributeNames={"#state": PUBLISH_STATE},
                ExpressionAttributeValues={
                    **_PENDING_VALUE,
                    ":before": {"S": iso_utc(received_before)},
                },
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading unpublished signals") from exc
        return [item_to_signal(item) for item in answer.get("Items", [])]

    def check(self) -> None:
        try:
            status = self._client.describe_table(TableName=self.table_name)["Table"]["TableStatus"]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the signals table") from exc
        if status not in {"ACTIVE", "UPDATING"}:
            raise TemporaryError(f"signals table is {status}")
