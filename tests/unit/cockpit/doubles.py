"""In-memory doubles of the cockpit's own ports (the Redis and DynamoDB adapters are
exercised for real in tests/integration/engine/test_cockpit_adapters.py)."""

from __future__ import annotations

from datetime import datetime

from kyperian.domain.activity import ActivityFeed, FeedEntry, SymbolIndex
from kyperian.domain.errors import TemporaryError


class MemoryFeed(ActivityFeed):
    def __init__(self) -> None:
        self.entries: list[FeedEntry] = []
        self.down = False

    def append(self, entry: FeedEntry) -> None:
        if self.down:
            raise TemporaryError("feed down")
        self.entries.insert(0, entry)

    def recent(self, limit: int, symbol: str | None = None) -> list[FeedEntry]:
        if self.down:
            raise TemporaryError("feed down")
        chosen = [e for e in self.entries if symbol is None or e.decision.symbol == symbol]
        return chosen[:limit]


class MemoryIndex(SymbolIndex):
    def __init__(self) -> None:
        self.seen: dict[str, datetime] = {}

    def touch(self, symbol: str, moment: datetime) -> None:
        self.seen[symbol] = moment

    def symbols(self) -> list[str]:
        return sorted(self.seen)
