"""The engine's admin commands: what flush-cache deletes, refills and reports.

Redis is replaced by a small in-memory double that implements the calls the commands make
(SCAN with a glob, UNLINK, TTL in a pipeline, INFO, DBSIZE); ``make drill`` runs the same
commands against a real redis-server and the local stack.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from kyperian.domain.errors import TemporaryError
from kyperian.engine import admin
from kyperian.settings import Settings


class FakePool:
    def disconnect(self) -> None:
        pass


class FakePipeline:
    def __init__(self, owner: FakeRedis) -> None:
        self._owner = owner
        self._queued: list[Any] = []

    def ttl(self, key: bytes) -> None:
        self._queued.append(self._owner.ttls.get(key, -2 if key not in self._owner.keys else -1))

    def execute(self) -> list[Any]:
        return self._queued


class FakeRedis:
    """Keys with optional TTLs; records the size of every UNLINK."""

    def __init__(self, keys: dict[str, int | None]) -> None:
        self.keys: set[bytes] = {k.encode() for k in keys}
        self.ttls: dict[bytes, int] = {k.encode(): t for k, t in keys.items() if t is not None}
        self.unlink_sizes: list[int] = []
        self.connection_pool = FakePool()

    def scan_iter(self, match: str, count: int) -> Iterator[bytes]:
        yield from sorted(k for k in self.keys if fnmatch.fnmatchcase(k.decode(), match))

    def unlink(self, *keys: bytes) -> int:
        self.unlink_sizes.append(len(keys))
        present = [k for k in keys if k in self.keys]
        self.keys -= set(present)
        return len(present)

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self)

    def info(self, section: str) -> dict[str, Any]:
        if section == "memory":
            return {"used_memory": 1024, "maxmemory": 4096, "maxmemory_policy": "volatile-lru"}
        return {"keyspace_hits": 90, "keyspace_misses": 10, "evicted_keys": 0}

    def dbsize(self) -> int:
        return len(self.keys)


def as_redis(fake: FakeRedis) -> redis.Redis:
    return cast(redis.Redis, fake)


CACHED = {
    "kyperian:signal:AAPL:4h:luxalgo": 3600,
    "kyperian:signal:AAPL:1D:technicals": 3600,
    "kyperian:signal:BRK.B:1W:ai": 3600,
    "kyperian:decision:AAPL": 300,
    "kyperian:processed:sig-1": 86400,
    "kyperian:lease:sig-2": 60,
    "other-app:session:1": None,
}


def test_flush_deletes_only_kyperian_keys_in_batches_and_refills_their_symbols() -> None:
    # GIVEN a cache holding the engine's keys and one key of something else
    fake = FakeRedis(CACHED)
    refilled: list[set[str]] = []

    def refill(symbols: set[str]) -> int:
        refilled.append(symbols)
        return 4

    # WHEN flush-cache runs with batches of 2
    result = admin.flush_cache(as_redis(fake), batch=2, refill=refill)
    # THEN every kyperian:* key is gone and nothing else is touched
    assert fake.keys == {b"other-app:session:1"}
    assert (result.matched, result.deleted) == (6, 6)
    # AND keys went out in UNLINK batches of at most 2
    assert fake.unlink_sizes == [2, 2, 2]
    # AND the symbols whose signal slots were flushed are refilled (symbols may contain dots)
    assert refilled == [{"AAPL", "BRK.B"}]
    assert result.refilled_signals == 4
    assert dict(result.by_kind) == {"signal": 3, "decision": 1, "processed": 1, "lease": 1}


def test_dry_run_counts_and_deletes_nothing() -> None:
    fake = FakeRedis(CACHED)
    result = admin.flush_cache(as_redis(fake), dry_run=True, refill=lambda _: pytest.fail("refill"))
    assert result.matched == 6
    assert result.deleted == 0
    assert len(fake.keys) == len(CACHED)


def test_a_failed_refill_is_reported_and_fails_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a refill that cannot read the Signals table
    def broken(_settings: Settings, _client: redis.Redis) -> Any:
        def refill(_symbols: set[str]) -> int:
            raise TemporaryError("reading stored signals failed: ProvisionedThroughputExceeded")

        return refill

    monkeypatch.setattr(admin, "table_refill", broken)
    fake = FakeRedis(CACHED)
    # WHEN flush-cache runs
    code = admin.run(["flush-cache"], settings=Settings(), client=as_redis(fake))
    # THEN the keys are deleted, the command exits 1 and says what to do next
    document = json.loads(capsys.readouterr().out)
    assert code == admin.EXIT_FAILED
    assert document["deleted"] == 6
    assert "refill_error" in document
    assert "restart the engine tasks" in document["next_step"]


def test_cache_report_counts_kinds_and_keys_without_ttl(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN one engine key without a TTL (a bug: volatile-lru can never evict it)
    fake = FakeRedis({**CACHED, "kyperian:signal:MSFT:4h:ai": None})
    # WHEN cache-report runs
    code = admin.run(["cache-report"], settings=Settings(), client=as_redis(fake))
    # THEN it reports it, with the kinds, the hit rate and the keys of other applications
    document = json.loads(capsys.readouterr().out)
    assert code == admin.EXIT_OK
    assert document["engine_keys_without_ttl"] == {"signal": 1}
    assert document["engine_keys_by_kind"]["signal"] == 4
    assert document["keyspace_hit_rate"] == 0.9
    assert document["keys_other"] == 1


@pytest.mark.parametrize(
    ("key", "symbol"),
    [
        ("kyperian:signal:AAPL:4h:luxalgo", "AAPL"),
        ("kyperian:signal:BTC/USD:15m:ai", "BTC/USD"),
        ("kyperian:decision:AAPL", None),
        ("kyperian:signal:", None),
    ],
)
def test_signal_symbol(key: str, symbol: str | None) -> None:
    assert admin.signal_symbol(key) == symbol


def test_only_known_commands_are_accepted() -> None:
    with pytest.raises(SystemExit):
        admin._parser().parse_args(["flushall"])
