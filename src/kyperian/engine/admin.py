"""One-off admin commands for operators, run inside an engine task with the service's settings.

The runbooks start them as a one-off ECS task of the engine's task definition with a command
override (``python -m kyperian.engine.admin <command>``), so they reach ElastiCache the way
the service does (TLS, AUTH token from the task's secrets) without a shell on a running
task. Locally they run against the ``kyperian up`` stack with the same ``KYPERIAN_*``
variables.

Commands
--------
``flush-cache``
    Delete the engine's keys (``kyperian:*`` only, found with ``SCAN`` and removed with
    ``UNLINK`` in batches; never ``FLUSHDB``), then refill the signal slots of the symbols
    that were cached from the Signals table. The refill matters: a running engine reads the
    table for a symbol only the first time it sees it, so without it decisions would be
    fused from the signals that arrive after the flush alone. Decisions are still served
    from the Decisions table, and the table keeps processing idempotent.
``cache-report``
    Memory, eviction and hit-rate figures from ``INFO``, the engine's keys by kind, and how
    many have no TTL (ElastiCache runs ``volatile-lru``: a key without one is never evicted).
``check``
    Whether Redis, both tables and the work queue answer with the task's credentials.

Each command prints one JSON object on stdout (the task's log stream keeps it) and exits
0 on success, 1 on failure. Nothing here prints a secret.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, cast

import redis

from kyperian.adapters.aws.clients import make_client
from kyperian.adapters.aws.decisions import DynamoDecisionStore
from kyperian.adapters.aws.dynamodb import DynamoSignalStore
from kyperian.adapters.aws.signal_history import DynamoSignalHistory
from kyperian.adapters.aws.sqs import SqsWorkQueue
from kyperian.adapters.cache.redis import KEY_PREFIX, RedisCache, build_client
from kyperian.domain.errors import KyperianError
from kyperian.settings import Settings, get_settings

PATTERN: Final = f"{KEY_PREFIX}:*"
"""The only keys these commands ever touch."""
DEFAULT_BATCH: Final = 500
EXIT_OK, EXIT_FAILED = 0, 1


def _text(key: bytes | str) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else key


def key_kind(key: str) -> str:
    """``signal``, ``decision``, ``processed``, ``lease``... (the part after ``kyperian:``)."""
    parts = key.split(":", 2)
    return parts[1] if len(parts) > 1 else ""


def signal_symbol(key: str) -> str | None:
    """The symbol of ``kyperian:signal:SYMBOL:<timeframe>:<source>`` (symbols have no colon)."""
    prefix = f"{KEY_PREFIX}:signal:"
    if not key.startswith(prefix):
        return None
    symbol, _, _ = key[len(prefix) :].rpartition(":")
    symbol, _, _ = symbol.rpartition(":")
    return symbol or None


def _batches(keys: Iterable[bytes], size: int) -> Iterable[list[bytes]]:
    batch: list[bytes] = []
    for key in keys:
        batch.append(key)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class FlushResult:
    """What ``flush_cache`` found and did."""

    matched: int = 0
    deleted: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    symbols: set[str] = field(default_factory=set)
    refilled_signals: int = 0
    refill_error: str | None = None

    def as_dict(self, dry_run: bool) -> dict[str, Any]:
        document: dict[str, Any] = {
            "command": "flush-cache",
            "pattern": PATTERN,
            "dry_run": dry_run,
            "matched": self.matched,
            "deleted": self.deleted,
            "by_kind": dict(sorted(self.by_kind.items())),
            "symbols": len(self.symbols),
            "refilled_signals": self.refilled_signals,
        }
        if self.refill_error:
            document["refill_error"] = self.refill_error
            document["next_step"] = (
                "keys were deleted but not refilled: restart the engine tasks "
                "(runbooks/invalidate-cache.md) so each re-reads the Signals table"
            )
        return document


def flush_cache(
    client: redis.Redis,
    *,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    refill: Callable[[set[str]], int] | None = None,
) -> FlushResult:
    """Delete every ``kyperian:*`` key in ``batch``-sized ``UNLINK`` calls, then ``refill``.

    ``SCAN`` may return a key twice and may miss keys written while it runs (those are
    new, so they may stay); ``UNLINK`` frees memory in the background, so a large flush
    never blocks the server. ``refill`` receives the symbols whose signal slots were
    flushed and returns how many signals it wrote back; its failure is recorded in the
    result (the deletion stands) rather than raised.
    """
    result = FlushResult()
    for keys in _batches(client.scan_iter(match=PATTERN, count=batch), batch):
        for raw in keys:
            key = _text(raw)
            result.matched += 1
            result.by_kind[key_kind(key)] += 1
            symbol = signal_symbol(key)
            if symbol:
                result.symbols.add(symbol)
        if not dry_run:
            result.deleted += cast("int", client.unlink(*keys))
    if refill is not None and not dry_run and result.symbols:
        try:
            result.refilled_signals = refill(result.symbols)
        except KyperianError as exc:
            result.refill_error = f"{type(exc).__name__}: {exc}"
    return result


def table_refill(settings: Settings, client: redis.Redis) -> Callable[[set[str]], int]:
    """Write each symbol's still-fresh signals back from the Signals table (keep-newer)."""
    history = DynamoSignalHistory(
        settings.signals_table,
        make_client("dynamodb", settings),
        settings.fusion.max_age_seconds,
    )
    cache = RedisCache(client)

    def refill(symbols: set[str]) -> int:
        now = datetime.now(UTC)
        written = 0
        for symbol in sorted(symbols):
            signals = history.recent(symbol, now)
            cache.record_all(signals)
            written += len(signals)
        return written

    return refill


def cache_report(client: redis.Redis, *, batch: int = DEFAULT_BATCH) -> dict[str, Any]:
    """Memory, evictions, hit rate, and the engine's keys by kind (with and without a TTL)."""
    # redis-py's sync and async clients share annotations: cast the synchronous answers.
    memory = cast("dict[str, Any]", client.info("memory"))
    stats = cast("dict[str, Any]", client.info("stats"))
    by_kind: Counter[str] = Counter()
    without_ttl: Counter[str] = Counter()
    for keys in _batches(client.scan_iter(match=PATTERN, count=batch), batch):
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.ttl(key)
        for raw, ttl in zip(keys, pipe.execute(), strict=True):
            kind = key_kind(_text(raw))
            by_kind[kind] += 1
            if ttl == -1:
                without_ttl[kind] += 1
    hits, misses = int(stats.get("keyspace_hits", 0)), int(stats.get("keyspace_misses", 0))
    total_keys = cast("int", client.dbsize())
    return {
        "command": "cache-report",
        "used_memory": memory.get("used_memory"),
        "used_memory_human": memory.get("used_memory_human"),
        "maxmemory": memory.get("maxmemory"),
        "maxmemory_policy": memory.get("maxmemory_policy"),
        "evicted_keys": stats.get("evicted_keys"),
        "keyspace_hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
        "keys_total": total_keys,
        "keys_engine": sum(by_kind.values()),
        "keys_other": total_keys - sum(by_kind.values()),
        "engine_keys_by_kind": dict(sorted(by_kind.items())),
        "engine_keys_without_ttl": dict(sorted(without_ttl.items())),
    }


def check_dependencies(settings: Settings, client: redis.Redis) -> dict[str, str]:
    """``ok`` or the error, per dependency the engine needs."""
    dynamodb = make_client("dynamodb", settings)
    checks: dict[str, Callable[[], None]] = {
        "redis": RedisCache(client).check,
        "signals_table": DynamoSignalStore(settings.signals_table, dynamodb).check,
        "decisions_table": DynamoDecisionStore(settings.decisions_table, dynamodb).check,
    }
    if settings.signal_queue_url:
        queue = SqsWorkQueue(settings.signal_queue_url, make_client("sqs", settings))
        checks["signal_queue"] = queue.check
    states: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
        except KyperianError as exc:
            states[name] = f"unavailable: {exc}"
        else:
            states[name] = "ok"
    return states


# --- command line -------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kyperian.engine.admin",
        description="Engine admin commands (run inside an engine task; see runbooks/).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    flush = commands.add_parser("flush-cache", help=f"delete {PATTERN} keys, then refill")
    flush.add_argument("--dry-run", action="store_true", help="count the keys, delete nothing")
    flush.add_argument(
        "--no-refill", action="store_true", help="do not refill signals from the Signals table"
    )
    flush.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="keys per UNLINK")
    report = commands.add_parser("cache-report", help="memory, evictions, hit rate, key counts")
    report.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
    commands.add_parser("check", help="can this task reach Redis, the tables and the queue?")
    return parser


def _emit(document: dict[str, Any]) -> None:
    print(json.dumps(document, sort_keys=False, default=str), flush=True)


def run(
    argv: Sequence[str] | None = None,
    settings: Settings | None = None,
    client: redis.Redis | None = None,
) -> int:
    """Parse ``argv``, run the command, print its JSON result; return the exit code."""
    args = _parser().parse_args(argv)
    settings = settings or get_settings()
    client = client or build_client(settings)
    try:
        if args.command == "flush-cache":
            refill = None if args.no_refill else table_refill(settings, client)
            flushed = flush_cache(
                client, batch=max(1, args.batch_size), dry_run=args.dry_run, refill=refill
            )
            _emit(flushed.as_dict(args.dry_run))
            return EXIT_FAILED if flushed.refill_error else EXIT_OK
        if args.command == "cache-report":
            _emit(cache_report(client, batch=max(1, args.batch_size)))
            return EXIT_OK
        states = check_dependencies(settings, client)
        _emit({"command": "check", "dependencies": states})
        return EXIT_OK if all(state == "ok" for state in states.values()) else EXIT_FAILED
    except (redis.RedisError, KyperianError) as exc:
        _emit({"command": args.command, "error": f"{type(exc).__name__}: {exc}"})
        return EXIT_FAILED
    finally:
        client.connection_pool.disconnect()


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
