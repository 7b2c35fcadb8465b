"""The symbol index: one small item per symbol in the Decisions table, read by one query.

Decisions are keyed ``DECISION#<SYMBOL>``, so listing the symbols from them would be a
table scan. The index keeps ``PK = SYMBOLS``, ``SK = <SYMBOL>`` with the time of the
symbol's latest decision and a ``ttl`` as long as a decision's, so a symbol that goes
quiet leaves the board when its last decision would leave the table.

Cost: the engine writes a symbol's item at most once per ``refresh_seconds`` (default one
hour) per process, i.e. about 24 writes per symbol per day per task, whatever the alert
rate; the board reads it with one ``Query`` returning one item per symbol (a few hundred
bytes each), never a scan. The ``last_decision_at`` shown is therefore up to an hour old;
the board takes the exact time from the decision itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import classify
from kyperian.domain.activity import SymbolIndex
from kyperian.domain.models import iso_utc

INDEX_PK: Final = "SYMBOLS"


class DynamoSymbolIndex(SymbolIndex):
    """``SymbolIndex`` in the Decisions table (no new table, no new IAM action)."""

    def __init__(
        self,
        table_name: str,
        client: Any,
        ttl_days: int = 30,
        refresh_seconds: float = 3600,
        monotonic: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.table_name = table_name
        self._client = client
        self._ttl_days = ttl_days
        self._refresh = refresh_seconds
        self._monotonic = monotonic
        self._wall = wall
        self._written: dict[str, float] = {}
        self._lock = threading.Lock()

    def touch(self, symbol: str, moment: datetime) -> None:
        now = self._monotonic()
        with self._lock:
            last = self._written.get(symbol)
            if last is not None and now - last < self._refresh:
                return
            self._written[symbol] = now
        expires = int((moment + timedelta(days=self._ttl_days)).timestamp())
        try:
            self._client.put_item(
                TableName=self.table_name,
                Item={
                    "PK": {"S": INDEX_PK},
                    "SK": {"S": symbol},
                    "last_decision_at": {"S": iso_utc(moment)},
                    "ttl": {"N": str(expires)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            with self._lock:
                self._written.pop(symbol, None)  # try again on the next decision
            raise classify(exc, "indexing the symbol") from exc

    def symbols(self) -> list[str]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "PK = :pk",
            # TTL deletion lags by up to a few days: hide expired items at once.
            "FilterExpression": "#ttl > :now",
            "ExpressionAttributeNames": {"#ttl": "ttl"},
            "ExpressionAttributeValues": {
                ":pk": {"S": INDEX_PK},
                ":now": {"N": str(int(self._wall().timestamp()))},
            },
        }
        found: list[str] = []
        while True:
            try:
                response = self._client.query(**request)
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc, "reading the symbol index") from exc
            found += [item["SK"]["S"] for item in response.get("Items", [])]
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(found)
