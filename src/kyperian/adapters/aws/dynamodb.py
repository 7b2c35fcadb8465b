"""The Signals table: signals stored once, keyed exactly as the specification says.

Keys: ``PK = SIGNAL#<SYMBOL>``, ``SK = <TIMEFRAME>#<key_time>#<signal_id>``; the GSI
``symbol-timestamp-index`` reads a symbol's signals by time; ``ttl`` expires them after
7 days. The id and ``key_time`` come from the alert's content, so a repeated delivery
hits the same key and the conditional write (``attribute_not_exists``) turns it into
``DuplicateSignal`` instead of a second row. The item <-> Signal conversion lives here
and nowhere else: the engine reads signals back through ``item_to_signal``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import classify, error_code
from kyperian.domain.errors import DuplicateSignal, TemporaryError
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
        """One transaction for the batch; duplicates are dropped and the rest retried once."""
        pending = list(signals)
        duplicates: set[str] = set()
        for _ in range(2):
            if not pending:
                return duplicates
            found = self._transact_put(pending)
            if found is None:
                return duplicates
            duplicates |= {pending[i].signal_id for i in found}
            pending = [s for i, s in enumerate(pending) if i not in found]
        if pending:
            raise TemporaryError("storing the signals failed: transaction kept conflicting")
        return duplicates

    def _transact_put(self, signals: Sequence[Signal]) -> set[int] | None:
        """Write all or none; on cancellation return the indexes that already exist."""
        puts = [
            {
                "Put": {
                    "TableName": self.table_name,
                    "Item": signal_to_item(signal),
                    "ConditionExpression": _NOT_STORED_YET,
                }
            }
            for signal in signals
        ]
        try:
            self._client.transact_write_items(TransactItems=puts)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise classify(exc, "storing the signals") from exc
            codes = [r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])]
            existing = {i for i, code in enumerate(codes) if code == "ConditionalCheckFailed"}
            if not existing or any(c not in {"None", "ConditionalCheckFailed"} for c in codes):
                raise TemporaryError(f"storing the signals failed: cancelled ({codes})") from exc
            return existing
        except BotoCoreError as exc:
            raise classify(exc, "storing the signals") from exc
        return None

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
