"""Reads a symbol's recent signals back from the Signals table (the engine's degraded mode).

When Redis is unavailable the engine still decides, from the table the validator writes
before it publishes. Sort keys are ``<TIMEFRAME>#<ISO key_time>#<signal_id>``, so one
query per timeframe reads exactly the window that can still be fresh: from ``now`` less
the timeframe's lifetime (and one bar, because ``key_time`` may be the bar's start while
freshness counts from the alert's own time) to the end of the timeframe's key range.
Items are converted by ``kyperian.adapters.aws.dynamodb.item_to_signal``, the one
conversion the system has.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import classify
from kyperian.adapters.aws.dynamodb import item_to_signal, signal_pk
from kyperian.domain.decisions import SIGNAL_LIFETIME_SECONDS
from kyperian.domain.engine_ports import SignalHistory
from kyperian.domain.models import Signal, Timeframe, iso_utc

_KEY_END: Final = "~"  # sorts after every ISO timestamp character


class DynamoSignalHistory(SignalHistory):
    """``SignalHistory`` on the Signals table; ``lifetimes`` should be fusion's max ages."""

    def __init__(
        self,
        table_name: str,
        client: Any,
        lifetimes: Mapping[Timeframe, int] = SIGNAL_LIFETIME_SECONDS,
    ) -> None:
        self.table_name = table_name
        self._client = client
        self._lifetimes = lifetimes

    def recent(self, symbol: str, now: datetime) -> list[Signal]:
        signals: list[Signal] = []
        for timeframe in Timeframe:
            signals += self._window(symbol, timeframe, now)
        return signals

    def _window(self, symbol: str, timeframe: Timeframe, now: datetime) -> list[Signal]:
        reach = timedelta(seconds=self._lifetimes[timeframe] + timeframe.seconds)
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :low AND :high",
            "ExpressionAttributeValues": {
                ":pk": {"S": signal_pk(symbol)},
                ":low": {"S": f"{timeframe}#{iso_utc(now - reach)}"},
                ":high": {"S": f"{timeframe}#{_KEY_END}"},
            },
            "ScanIndexForward": False,
        }
        signals: list[Signal] = []
        while True:
            try:
                response = self._client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "reading stored signals") from exc
            signals += [item_to_signal(item) for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                return signals
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
