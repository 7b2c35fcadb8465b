"""The cockpit's indexes on real redis-server and moto DynamoDB: capped, expiring, no scans."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from kyperian.adapters.aws.decisions import DynamoDecisionStore
from kyperian.adapters.aws.symbol_index import INDEX_PK, DynamoSymbolIndex
from kyperian.adapters.cache.activity import (
    FEED_CAP,
    FEED_TTL_SECONDS,
    SYMBOL_FEED_CAP,
    RedisActivityFeed,
    feed_key,
)
from kyperian.domain.activity import FeedEntry
from kyperian.fusion import FusionRules, fuse
from tests.integration.engine.conftest import EngineAws, ttl
from tests.signal_factory import make_signal


def _entry(symbol: str, number: int) -> FeedEntry:
    now = datetime.now(UTC)
    signal = make_signal(symbol=symbol, at=now, signal_id=f"{symbol}-{number}", price=100 + number)
    decision = fuse([signal], FusionRules(), now, symbol=symbol, trigger=signal)
    return FeedEntry(signal=signal, decision=decision)


def test_the_feed_keeps_the_newest_entries_capped_and_expiring(redis_client: redis.Redis) -> None:
    # GIVEN more AAPL decisions than a symbol's feed holds, and one MSFT decision last
    feed = RedisActivityFeed(redis_client)
    for number in range(SYMBOL_FEED_CAP + 5):
        feed.append(_entry("AAPL", number))
    feed.append(_entry("MSFT", 0))

    # WHEN the feed is read, all and per symbol
    everything = feed.recent(3)
    apple = feed.recent(1000, "AAPL")

    # THEN newest first, each list capped, and every key has a TTL (volatile-lru may evict it)
    assert [e.signal.signal_id for e in everything] == ["MSFT-0", "AAPL-104", "AAPL-103"]
    assert len(apple) == SYMBOL_FEED_CAP
    assert apple[0].signal.signal_id == f"AAPL-{SYMBOL_FEED_CAP + 4}"
    assert redis_client.llen(feed_key()) == SYMBOL_FEED_CAP + 6 <= FEED_CAP
    for key in (feed_key(), feed_key("AAPL"), feed_key("MSFT")):
        assert FEED_TTL_SECONDS - 5 <= ttl(redis_client, key) <= FEED_TTL_SECONDS


def test_an_entry_this_version_cannot_read_is_skipped(redis_client: redis.Redis) -> None:
    # GIVEN a foreign value at the head of the feed
    feed = RedisActivityFeed(redis_client)
    feed.append(_entry("AAPL", 1))
    redis_client.lpush(feed_key(), b'{"not": "an entry"}')
    # WHEN read  THEN the readable entry is returned, the other skipped
    assert [e.signal.signal_id for e in feed.recent(10)] == ["AAPL-1"]


def test_the_symbol_index_lists_symbols_with_one_query_and_writes_rarely(
    engine_aws: EngineAws,
) -> None:
    # GIVEN an index with a one-hour refresh and a hand-moved monotonic clock
    clock = [1000.0]
    index = DynamoSymbolIndex(
        engine_aws.decisions_table, engine_aws.dynamodb, monotonic=lambda: clock[0]
    )
    now = datetime.now(UTC)

    # WHEN MSFT and AAPL are touched, AAPL again within the hour, then after it
    index.touch("MSFT", now)
    index.touch("AAPL", now)
    index.touch("AAPL", now + timedelta(minutes=5))
    first = _index_items(engine_aws)["AAPL"]
    clock[0] += 3601
    index.touch("AAPL", now + timedelta(hours=2))

    # THEN symbols come back sorted; AAPL was rewritten only once the hour had passed
    assert index.symbols() == ["AAPL", "MSFT"]
    assert first["last_decision_at"]["S"].startswith(now.strftime("%Y-%m-%dT%H:%M"))
    later = _index_items(engine_aws)["AAPL"]["last_decision_at"]["S"]
    assert later.startswith((now + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M"))


def test_an_expired_symbol_leaves_the_board_before_dynamodb_deletes_it(
    engine_aws: EngineAws,
) -> None:
    # GIVEN a symbol whose last decision is older than the decisions' lifetime
    index = DynamoSymbolIndex(engine_aws.decisions_table, engine_aws.dynamodb, ttl_days=30)
    index.touch("OLD", datetime.now(UTC) - timedelta(days=31))
    index.touch("NEW", datetime.now(UTC))
    # WHEN listed  THEN only the live one
    assert index.symbols() == ["NEW"]


def test_index_items_do_not_disturb_decision_reads(engine_aws: EngineAws) -> None:
    # GIVEN an indexed symbol and its stored decision
    store = DynamoDecisionStore(engine_aws.decisions_table, engine_aws.dynamodb)
    entry = _entry("AAPL", 7)
    store.record(entry.decision)
    DynamoSymbolIndex(engine_aws.decisions_table, engine_aws.dynamodb).touch(
        "AAPL", entry.decision.decided_at
    )
    # WHEN the decision history is read  THEN it holds the decision and nothing else
    assert [d.decision_id for d in store.history("AAPL")] == [entry.decision.decision_id]


def _index_items(engine_aws: EngineAws) -> dict[str, dict[str, dict[str, str]]]:
    items = engine_aws.dynamodb.query(
        TableName=engine_aws.decisions_table,
        KeyConditionExpression="PK = :pk",
        ExpressionAttributeValues={":pk": {"S": INDEX_PK}},
    )["Items"]
    return {item["SK"]["S"]: item for item in items}
