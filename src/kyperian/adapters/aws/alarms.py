"""The stack's CloudWatch alarms, read, and each state change claimed by exactly one task.

``CloudWatchAlarms.read`` lists the metric alarms named ``kyperian-<env>-*`` with their
state and the time it last changed (``DescribeAlarms``, paginated; the task role may
describe only alarms of that prefix). ``DynamoAlarmStates.claim`` records an alarm's
state in the Decisions table (``PK = ALARM-STATE#<region>#<alarm>``, ``SK = state``, with
the change time in epoch milliseconds and a ``ttl``) with a conditional write that succeeds
only for a change newer than the recorded one: of the 2-20 engine tasks polling, exactly
one wins each change, and a restarted task finds every old change already claimed. The
winner is told the state it replaces, so the watcher can say "was OK" and ignore
OK <-> INSUFFICIENT_DATA. No new table and, beyond ``DescribeAlarms``, no new IAM action.

The region is in the key because the Decisions table is a global table and the DR region's
alarms have the same names: each region's tasks claim their own region's alarms, in their
own replica, where a conditional write is exact (it is not across replicas).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import classify, error_code

STATE_PK_PREFIX: Final = "ALARM-STATE#"
_NEWER_CHANGE: Final = "attribute_not_exists(PK) OR changed_ms < :changed"


@dataclass(frozen=True)
class AlarmReading:
    """One alarm as CloudWatch reports it now."""

    name: str
    state: str
    """``OK``, ``ALARM`` or ``INSUFFICIENT_DATA``."""
    changed_at: datetime
    """When the state last changed (``StateTransitionedTimestamp``; older APIs: updated)."""
    reason: str
    description: str


@dataclass(frozen=True)
class Claimed:
    """This task won the change; ``previous`` is the state it replaces (None: first record)."""

    previous: str | None


class CloudWatchAlarms:
    """Reads the metric alarms whose names start with ``prefix``."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self.prefix = prefix

    def read(self) -> list[AlarmReading]:
        """Every matching alarm; ``TemporaryError``/``OperationalError`` when CloudWatch fails."""
        try:
            return [self._reading(alarm) for alarm in self._pages()]
        except (ClientError, BotoCoreError) as exc:
            raise classify(exc, "reading the CloudWatch alarms") from exc

    def _pages(self) -> Iterator[dict[str, Any]]:
        arguments: dict[str, Any] = {"AlarmNamePrefix": self.prefix, "AlarmTypes": ["MetricAlarm"]}
        while True:
            page = self._client.describe_alarms(**arguments)
            yield from page.get("MetricAlarms", [])
            token = page.get("NextToken")
            if not token:
                return
            arguments["NextToken"] = token

    @staticmethod
    def _reading(alarm: dict[str, Any]) -> AlarmReading:
        changed = alarm.get("StateTransitionedTimestamp") or alarm["StateUpdatedTimestamp"]
        return AlarmReading(
            name=alarm["AlarmName"],
            state=alarm["StateValue"],
            changed_at=changed.astimezone(UTC),
            reason=alarm.get("StateReason", ""),
            description=alarm.get("AlarmDescription", ""),
        )


class DynamoAlarmStates:
    """The last claimed state of each alarm, in the Decisions table."""

    def __init__(self, table_name: str, client: Any, region: str, ttl_days: int = 30) -> None:
        self.table_name = table_name
        self._client = client
        self.region = region
        self._ttl_days = ttl_days

    def claim(self, reading: AlarmReading) -> Claimed | None:
        """Record ``reading`` if its change is newer than the recorded one.

        Returns
        -------
        Claimed | None
            ``Claimed`` when this call recorded the change (tell people about it, once);
            None when this change or a later one was already recorded (by another task,
            or by this one before a restart).

        Raises
        ------
        TemporaryError, OperationalError
            When DynamoDB fails; nothing was recorded and the next poll tries again.
        """
        changed_ms = int(reading.changed_at.timestamp() * 1000)
        expires = datetime.now(UTC) + timedelta(days=self._ttl_days)
        try:
            answer = self._client.put_item(
                TableName=self.table_name,
                Item={
                    "PK": {"S": f"{STATE_PK_PREFIX}{self.region}#{reading.name}"},
                    "SK": {"S": "state"},
                    "state": {"S": reading.state},
                    "changed_ms": {"N": str(changed_ms)},
                    "ttl": {"N": str(int(expires.timestamp()))},
                },
                ConditionExpression=_NEWER_CHANGE,
                ExpressionAttributeValues={":changed": {"N": str(changed_ms)}},
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return None
            raise classify(exc, "recording an alarm state") from exc
        except BotoCoreError as exc:
            raise classify(exc, "recording an alarm state") from exc
        old = answer.get("Attributes", {})
        return Claimed(previous=old["state"]["S"] if "state" in old else None)
