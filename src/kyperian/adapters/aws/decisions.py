"""The Decisions table: every decision kept 30 days, newest first per symbol.

Keys: ``PK = DECISION#<SYMBOL>``, ``SK = <ISO time>#<decision_id>``, ``ttl`` = decision
time + 30 days. The time is the decision's ``sort_time``: the arrival of the signal that
triggered it. That time and the decision id are both derived from the triggering signal,
so every redelivery of a signal maps to the same key, and one conditional put
(``attribute_not_exists``) makes "one decision per signal" a property of the table, even
when Redis, the fast path of that check, is down. The id suffix keeps apart decisions
whose signals arrived in the same millisecond (an MTF alert).
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
_KEYS: Final = frozenset({"PK", "SK", "ttl"})
_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()


def decision_pk(symbol: str) -> str:
    return f"DECISION#{symbol}"


def decision_sk(moment: datetime, identifier: str) -> str:
    return f"{iso_utc(moment)}#{identifier}"


def decision_to_item(decision: Decision, ttl_days: int) -> Item:
    """The decision as native DynamoDB attributes (numbers as N), plus keys and ``ttl``."""
    body = json.loads(decision.model_dump_json(), parse_float=Decimal)
    expires = int((decision.decided_at + timedelta(days=ttl_days)).timestamp())
    plain = {
        "PK": decision_pk(decision.symbol),
        "SK": decision_sk(decision.sort_time, decision.decision_id),
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
            condition += " AND SK < :before"
            values[":before"] = {"S": iso_utc(before)}
        try:
            response = self._client.query(
                TableName=self.table_name,
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
            "SK": {"S": decision_sk(signal.received_at, identifier)},
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
