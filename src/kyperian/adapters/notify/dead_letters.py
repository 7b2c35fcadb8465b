"""Where a notice goes when its channel gave up: a DynamoDB item and an ERROR log line.

Items live in the Decisions table (no new table, no new IAM action for the engine):
``PK = NOTIFY-DEAD#<channel>``, ``SK = <ISO time>#<notice_id>``, with the notice as JSON,
the reason, the attempts made and a 30-day ``ttl``. One query per channel lists them, so
an operator can see what a trader missed and resend it by hand. The log line
(``notification dead-lettered``) feeds CloudWatch Logs Insights and carries the notice's
kind, symbol and title, never a token or a webhook URL. If the table cannot be written
either, the log line is the record.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.domain.models import iso_utc
from kyperian.domain.notices import Notice
from kyperian.engine.telemetry import logger

DEAD_PK_PREFIX: Final = "NOTIFY-DEAD#"


class DeadLetters(ABC):
    """Keeps the notices a channel could not deliver."""

    @abstractmethod
    def record(self, channel: str, notice: Notice, reason: str, attempts: int) -> None:
        """Keep ``notice``; never raises (the sender thread must survive)."""


class DynamoDeadLetters(DeadLetters):
    """``DeadLetters`` in the Decisions table, with a log line for each."""

    def __init__(self, table_name: str, client: Any, ttl_days: int = 30) -> None:
        self.table_name = table_name
        self._client = client
        self._ttl_days = ttl_days

    def record(self, channel: str, notice: Notice, reason: str, attempts: int) -> None:
        now = datetime.now(UTC)
        logger.error(
            "notification dead-lettered",
            extra={
                "channel": channel,
                "notice_id": notice.notice_id,
                "kind": notice.kind.value,
                "symbol": notice.symbol,
                "title": notice.title,
                "reason": reason,
                "attempts": attempts,
            },
        )
        item = {
            "PK": {"S": f"{DEAD_PK_PREFIX}{channel}"},
            "SK": {"S": f"{iso_utc(now)}#{notice.notice_id}"},
            "notice": {"S": notice.model_dump_json()},
            "reason": {"S": reason},
            "attempts": {"N": str(attempts)},
            "ttl": {"N": str(int((now + timedelta(days=self._ttl_days)).timestamp()))},
        }
        try:
            self._client.put_item(TableName=self.table_name, Item=item)
        except (ClientError, BotoCoreError) as exc:
            logger.error(
                "dead letter not stored; the log line above is its only record",
                extra={"channel": channel, "notice_id": notice.notice_id, "error": str(exc)},
            )

    def recent(self, channel: str, limit: int = 50) -> list[tuple[Notice, str]]:
        """The channel's latest dead letters with their reasons, newest first."""
        response = self._client.query(
            TableName=self.table_name,
            KeyConditionExpression="PK = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{DEAD_PK_PREFIX}{channel}"}},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [
            (Notice.model_validate_json(item["notice"]["S"]), item["reason"]["S"])
            for item in response.get("Items", [])
        ]
