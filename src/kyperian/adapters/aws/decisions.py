"""The Decisions table: every decision kept 30 days, one row per triggering signal.

Keys: ``PK = DECISION#<SYMBOL>``, ``SK = SIGNAL#<triggering signal id>`` (``DECISION#<id>``
for a decision without a trigger), ``time_key = <ISO time>#<decision_id>``, ``ttl`` =
decision time + 30 days. The row is keyed by the signal, never by its arrival time: the
webhook republishes a redelivered alert with a new ``received_at``, so only the signal id
is the same on every delivery. One conditional put (``attribute_not_exists``) therefore
makes "one decision per signal" a property of the table, whatever Redis (the fast path of
that check) remembers, and whichever engine task gets the message. A symbol's decisions
in time order (latest, history) come from the ``symbol-time-index`` GSI on ``time_key``;
the GSI is eventually consistent, which only delays a new decision in a listing by
milliseconds. ``for_trigger`` reads the row itself, strongly consistent.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from kyperian.adapters.aws.clients import classify, error_code
from kyperian.domain.decisions import Decision, decision_id
from kyperian.domain.engine_ports import DecisionStore, DuplicateDecision
from kyperian.domain.errors import OperationalError, TemporaryError
from kyperian.domain.models import Signal, iso_utc

Item = dict[str, Any]
_NOT_STORED_YET: Final = "attribute_not_exists(PK)"
_KEYS: Final = frozenset({"PK", "SK", "ttl", "time_key"})
TIME_INDEX: Final = "symbol-time-index"
_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()


def decision_pk(symbol: str) -> str:
    return f"DECISION#{symbol}"


def decision_sk(trigger_signal_id: str | None, identifier: str) -> str:
    """The row's sort key: the triggering signal's id (the same on every redelivery)."""
    return f"SIGNAL#{trigger_signal_id}" if trigger_signal_id else f"DECISION#{identifier}"


def time_key(moment: datetime, identifier: str) -> str:
    """The GSI's sort key: time order, the id keeping apart decisions of one millisecond."""
    return f"{iso_utc(moment)}#{identifier}"


def decision_to_item(decision: Decision, ttl_days: int) -> Item:
    """The decision as native DynamoDB attributes (numbers as N), plus keys and ``ttl``."""
    body = json.loads(decision.model_dump_json(), parse_float=Decimal)
    expires = int((decision.decided_at + timedelta(days=ttl_days)).timestamp())
    plain = {
        "PK": decision_pk(decision.symbol),
        "SK": decision_sk(decision.trigger_signal_id, decision.decision_id),
        "time_key": time_key(decision.sort_time, decision.decision_id),
        "ttl": expires,
        **body,
    }
    return {name: _SERIALIZER.serialize(value) for name, value in plain.items()}


def item_to_decision(item: Item) -> Decision:
    """Inverse of ``decision_to_item``."""
    plain = {k: _DESERIALIZER.deserialize(v) for k, v in item.items() if k not in _KEYS}
    try:
        return Decision.model_validate(plain)
    except ValidationError as exc:
        key = item.get("SK", {}).get("S")
        raise OperationalError(f"unreadable decision item {key}: {exc}") from exc


class DynamoDecisionStore(DecisionStore):
    """``DecisionStore`` on a DynamoDB table; pass a client to share or to test."""

    def __init__(self, table_name: str, client: Any, ttl_days: int = 30) -> None:
        self.table_name = table_name
        self._client = client
        self._ttl_days = ttl_days

    def record(self, decision: Decision) -> None:
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item=decision_to_item(decision, self._ttl_days),
                ConditionExpression=_NOT_STORED_YET,
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise DuplicateDecision(decision.trigger_signal_id or decision.decision_id) from exc
            raise classify(exc, "storing the decision") from exc
        except BotoCoreError as exc:
            raise classify(exc, "storing the decision") from exc

    def _query(self, symbol: str, limit: int, before: datetime | None) -> list[Item]:
        condition = "PK = :pk"
        values: Item = {":pk": {"S": decision_pk(symbol)}}
        if before is not None:
            condition += " AND time_key < :before"
            values[":before"] = {"S": iso_utc(before)}
        try:
            response = self._client.query(
                TableName=self.table_name,
                IndexName=TIME_INDEX,
                KeyConditionExpression=condition,
                ExpressionAttributeValues=values,
                ScanIndexForward=False,
                Limit=limit,
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading decisions") from exc
        items: list[Item] = response.get("Items", [])
        return items

    def latest(self, symbol: str) -> Decision | None:
        items = self._query(symbol, 1, None)
        return item_to_decision(items[0]) if items else None

    def history(
        self, symbol: str, limit: int = 50, before: datetime | None = None
    ) -> list[Decision]:
        return [item_to_decision(item) for item in self._query(symbol, limit, before)]

    def for_trigger(self, signal: Signal) -> Decision | None:
        identifier = decision_id(signal.symbol, signal.signal_id, signal.received_at)
        key = {
            "PK": {"S": decision_pk(signal.symbol)},
            "SK": {"S": decision_sk(signal.signal_id, identifier)},
        }
        try:
            response = self._client.get_item(
                TableName=self.table_name, Key=key, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading a decision") from exc
        item: Item | None = response.get("Item")
        return item_to_decision(item) if item else None

    def check(self) -> None:
        try:
            status = self._client.describe_table(TableName=self.table_name)["Table"]["TableStatus"]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the decisions table") from exc
        if status not in {"ACTIVE", "UPDATING"}:
            raise TemporaryError(f"decisions table is {status}")
