"""The Signals table: signals stored once, keyed exactly as the specification says.

Keys: ``PK = SIGNAL#<SYMBOL>``, ``SK = <TIMEFRAME>#<key_time>#<signal_id>``; the GSI
``symbol-timestamp-index`` reads a symbol's signals by time; ``ttl`` expires them after
7 days. The id and ``key_time`` come from the alert's content, so a repeated delivery
hits the same key and the conditional write (``attribute_not_exists``) turns it into
``DuplicateSignal`` instead of a second row. The item <-> Signal conversion lives here
and nowhere else: the engine reads signals back through ``item_to_signal``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import classify, error_code
from kyperian.domain.errors import DuplicateSignal, KyperianError, TemporaryError
from kyperian.domain.models import Signal, iso_utc
from kyperian.domain.ports import SignalStore

Item = dict[str, dict[str, Any]]
_NOT_STORED_YET = "attribute_not_exists(PK)"


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


class DynamoSignalStore(SignalStore):
    """``SignalStore`` on a DynamoDB table; pass a client to share or to test."""

    def __init__(self, table_name: str, client: Any) -> None:
        self.table_name = table_name
        self._client = client

    def add(self, signal: Signal) -> None:
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=signal_to_item(signal),
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
        for signal in signals:
            try:
                self._client.delete_item(TableName=self.table_name, Key=_key(signal))
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "undoing a stored signal") from exc

    def check(self) -> None:
        try:
            status = self._client.describe_table(TableName=self.table_name)["Table"]["TableStatus"]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the signals table") from exc
        if status not in {"ACTIVE", "UPDATING"}:
            raise TemporaryError(f"signals table is {status}")
