"""The cockpit's feed in Redis: two capped lists, so "what happened lately" is one read.

=================================  =====================================================
key                                holds
=================================  =====================================================
``kyperian:feed``                  the latest 500 feed entries of every symbol (JSON)
``kyperian:feed:SYMBOL``           the latest 100 of one symbol
=================================  =====================================================

Cost: one pipeline per decision (``LPUSH``, ``LTRIM``, ``EXPIRE`` on both lists: one round
trip, well under a millisecond on the same network), a few hundred kilobytes of memory in
all, and reads of ``LRANGE 0 n`` that never touch DynamoDB. Every key expires
``FEED_TTL_SECONDS`` after the last write, because ElastiCache evicts only keys with a
TTL. The feed is a convenience for people: losing it (a Redis flush) loses history on the
screen, never a decision, which the Decisions table keeps.
"""

from __future__ import annotations

from typing import Any, Final, cast

import redis
from pydantic import ValidationError

from kyperian.adapters.cache.redis import KEY_PREFIX
from kyperian.domain.activity import ActivityFeed, FeedEntry
from kyperian.domain.errors import TemporaryError

FEED_CAP: Final = 500
SYMBOL_FEED_CAP: Final = 100
FEED_TTL_SECONDS: Final = 7 * 86400


def feed_key(symbol: str | None = None) -> str:
    """``kyperian:feed`` or ``kyperian:feed:SYMBOL``."""
    return f"{KEY_PREFIX}:feed" if symbol is None else f"{KEY_PREFIX}:feed:{symbol}"


class RedisActivityFeed(ActivityFeed):
    """``ActivityFeed`` on a Redis client (share the engine's pool)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def append(self, entry: FeedEntry) -> None:
        value = entry.model_dump_json()
        pipe: Any = self._client.pipeline(transaction=False)
        for key, cap in (
            (feed_key(), FEED_CAP),
            (feed_key(entry.decision.symbol), SYMBOL_FEED_CAP),
        ):
            pipe.lpush(key, value)
            pipe.ltrim(key, 0, cap - 1)
            pipe.expire(key, FEED_TTL_SECONDS)
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise TemporaryError(f"appending to the feed: Redis unavailable ({exc})") from exc

    def recent(self, limit: int, symbol: str | None = None) -> list[FeedEntry]:
        try:
            raw = cast("list[bytes]", self._client.lrange(feed_key(symbol), 0, limit - 1))
        except redis.RedisError as exc:
            raise TemporaryError(f"reading the feed: Redis unavailable ({exc})") from exc
        entries: list[FeedEntry] = []
        for value in raw:
            try:
                entries.append(FeedEntry.model_validate_json(value))
            except ValidationError:
                continue  # written by another version; it ages out of the capped list
        return entries
