"""The Redis cache: latest signal per timeframe, latest decision, processed-signal register.

Keys and lifetimes follow the specification's cache table; every key has a TTL, because
ElastiCache runs ``volatile-lru`` and evicts only keys that expire:

=======================================  ==================================================
key                                      lifetime
=======================================  ==================================================
``kyperian:signal:SYMBOL:1W:<source>``   7 days after the signal's own time
``kyperian:signal:SYMBOL:1D:<source>``   24 hours
``kyperian:signal:SYMBOL:4h:<source>``   8 hours
``kyperian:signal:SYMBOL:1h:<source>``   2 hours   (two bars, as for 4h)
``kyperian:signal:SYMBOL:30m:<source>``  1 hour
``kyperian:signal:SYMBOL:15m:<source>``  30 minutes
``kyperian:decision:SYMBOL``             5 minutes
``kyperian:processed:<signal_id>``       ``processed_marker_ttl_seconds`` (default 24 h)
``kyperian:lease:<signal_id>``           the worker's visibility timeout
=======================================  ==================================================

Signal and decision keys are hashes (``t`` event time in ms, ``r`` arrival time in ms,
``v`` the JSON) written by a Lua script that keeps the newer value, so a redelivered old
signal never replaces a newer one. Keeping a signal and reading every (timeframe, source)
slot of its symbol is one pipeline, one round trip: the write, then one read script over
the 36 keys. Scripts run by hash and are reloaded if the server forgot them (failover).
Multi-key scripts need all keys in one slot under Redis Cluster: cluster mode (the
specification's phase 3) would add a ``{SYMBOL}`` hash tag to the keys. The pool is
capped at 20 connections; ``rediss://`` with an AUTH token serves ElastiCache.
redis-py exceptions become ``TemporaryError`` or ``OperationalError``.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, cast

import redis
from pydantic import ValidationError
from redis.exceptions import AuthenticationError, AuthorizationError, NoPermissionError

from kyperian.domain.decisions import SIGNAL_LIFETIME_SECONDS, Decision
from kyperian.domain.engine_ports import Claim, ProcessedSignals, SignalCache
from kyperian.domain.errors import KyperianError, OperationalError, TemporaryError
from kyperian.domain.models import Signal, Source, Timeframe

if TYPE_CHECKING:
    from kyperian.settings import Settings

DECISION_TTL_SECONDS: Final = 300
KEY_PREFIX: Final = "kyperian"
_SLOTS: Final = tuple(itertools.product(Timeframe, Source))

# Keep the newer value: compare (event ms, arrival ms) with what the key holds, then write
# the hash and its absolute expiry together, so no key is ever left without a TTL.
_KEEP_NEWER: Final = """
local held = redis.call('HMGET', KEYS[1], 't', 'r')
if held[1] then
  local t, r = tonumber(held[1]), tonumber(held[2])
  local nt, nr = tonumber(ARGV[1]), tonumber(ARGV[2])
  if t > nt or (t == nt and r >= nr) then return 0 end
end
redis.call('HSET', KEYS[1], 't', ARGV[1], 'r', ARGV[2], 'v', ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
"""

# Read the JSON of many hashes in one command: one reply for a symbol's 36 slots instead
# of 36 (the parsing of replies, not the server, dominates a wide pipeline's cost).
_READ_VALUES: Final = """
local values = {}
for i, key in ipairs(KEYS) do
  values[i] = redis.call('HGET', key, 'v') or false
end
return values
"""
_SCRIPTS: Final = (_KEEP_NEWER, _READ_VALUES)


def signal_key(symbol: str, timeframe: Timeframe, source: Source) -> str:
    """``kyperian:signal:SYMBOL:<timeframe>:<source>``."""
    return f"{KEY_PREFIX}:signal:{symbol}:{timeframe}:{source}"


def decision_key(symbol: str) -> str:
    """``kyperian:decision:SYMBOL``."""
    return f"{KEY_PREFIX}:decision:{symbol}"


def processed_key(signal_id: str) -> str:
    return f"{KEY_PREFIX}:processed:{signal_id}"


def lease_key(signal_id: str) -> str:
    return f"{KEY_PREFIX}:lease:{signal_id}"


def _ms(moment: datetime) -> int:
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)


def signal_expiry_ms(signal: Signal) -> int:
    """Absolute expiry: the signal's own time plus its timeframe's lifetime."""
    return _ms(signal.timestamp) + SIGNAL_LIFETIME_SECONDS[signal.timeframe] * 1000


def _sha1(script: str) -> str:
    """The id Redis gives a script (``EVALSHA``), computed locally: no round trip at start."""
    return hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest()


def _translate(exc: redis.RedisError, action: str) -> KyperianError:
    """redis-py failure -> what the caller should do (auth/config: a human; the rest: retry)."""
    denied = (AuthenticationError, AuthorizationError, NoPermissionError)
    if isinstance(exc, denied):
        return OperationalError(f"{action}: Redis refused the credentials ({type(exc).__name__})")
    if isinstance(exc, redis.ResponseError) and not isinstance(
        exc, redis.BusyLoadingError | redis.ReadOnlyError
    ):
        return OperationalError(f"{action}: Redis answered an error: {exc}")
    return TemporaryError(f"{action}: Redis unavailable ({type(exc).__name__})")


@contextmanager
def _redis_errors(action: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise _translate(exc, action) from exc


def build_client(settings: Settings) -> redis.Redis:
    """A client over a blocking pool capped at ``redis_max_connections`` (20), TLS if asked."""
    token = settings.redis_auth_token.get_secret_value() if settings.redis_auth_token else None
    pool = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]  # untyped in redis-py
        connection_class=redis.SSLConnection if settings.redis_tls else redis.Connection,
        host=settings.redis_host,
        port=settings.redis_port,
        password=token,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_socket_timeout * 4,
        socket_timeout=settings.redis_socket_timeout,
        socket_connect_timeout=settings.redis_socket_timeout,
        health_check_interval=30,
    )
    return redis.Redis(connection_pool=pool)


class RedisCache(SignalCache, ProcessedSignals):
    """``SignalCache`` and ``ProcessedSignals`` on one Redis client (pass one to share or test)."""

    def __init__(
        self,
        client: redis.Redis,
        processed_ttl_seconds: int = 86400,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._client = client
        self._processed_ttl = processed_ttl_seconds
        self._clock = clock
        self._shas = {script: _sha1(script) for script in _SCRIPTS}

    def _execute(self, queue: Callable[[Any], object]) -> list[Any]:
        """Run a pipeline built by ``queue``; load the Lua script and rerun once if Redis lost it.

        Scripts are called by hash (``EVALSHA``) so a pipeline stays one round trip; a
        restarted or failed-over server forgets them, and every queued command is safe to
        run twice (keep-newer writes and reads).
        """
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            queue(pipe)
            try:
                return list(pipe.execute())
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                for script in _SCRIPTS:
                    self._shas[script] = str(self._client.script_load(script))
        return []  # pragma: no cover - the loop returns or raises

    def _keep_newer(self, pipe: Any, key: str, args: Sequence[object]) -> None:
        pipe.evalsha(self._shas[_KEEP_NEWER], 1, key, *args)

    # --- signals ------------------------------------------------------------------------

    def _queue_signal(self, pipe: Any, signal: Signal) -> None:
        """Add the keep-newer write of a (still fresh) signal to a pipeline."""
        key = signal_key(signal.symbol, signal.timeframe, signal.source)
        args = [
            _ms(signal.timestamp),
            _ms(signal.received_at),
            signal.model_dump_json(),
            signal_expiry_ms(signal),
        ]
        self._keep_newer(pipe, key, args)

    def _alive(self, signal: Signal) -> bool:
        """Whether the signal's lifetime still runs (an expired one is not written at all)."""
        return signal_expiry_ms(signal) > _ms(self._clock())

    def _queue_reads(self, pipe: Any, symbol: str) -> None:
        keys = [signal_key(symbol, timeframe, source) for timeframe, source in _SLOTS]
        pipe.evalsha(self._shas[_READ_VALUES], len(keys), *keys)

    @staticmethod
    def _parse_signals(raw: Sequence[bytes | None]) -> list[Signal]:
        signals: list[Signal] = []
        for value in raw:
            if value is None:
                continue
            try:
                signals.append(Signal.model_validate_json(value))
            except ValidationError:
                continue  # a value this version cannot read expires by itself; never crash on it
        return signals

    def record_and_read(self, signal: Signal) -> list[Signal]:
        write = self._alive(signal)

        def queue(pipe: Any) -> None:
            if write:
                self._queue_signal(pipe, signal)
            self._queue_reads(pipe, signal.symbol)

        with _redis_errors("caching the signal"):
            results = self._execute(queue)
        return self._parse_signals(results[-1])

    def record_all(self, signals: Sequence[Signal]) -> None:
        alive = [s for s in signals if self._alive(s)]
        if not alive:
            return

        def queue(pipe: Any) -> None:
            for signal in alive:
                self._queue_signal(pipe, signal)

        with _redis_errors("refilling the signal cache"):
            self._execute(queue)

    def latest_signals(self, symbol: str) -> list[Signal]:
        with _redis_errors("reading cached signals"):
            results = self._execute(lambda pipe: self._queue_reads(pipe, symbol))
        return self._parse_signals(results[-1])

    # --- decisions ----------------------------------------------------------------------

    def put_decision(self, decision: Decision) -> None:
        expires = _ms(self._clock()) + DECISION_TTL_SECONDS * 1000
        args = [_ms(decision.decided_at), 0, decision.model_dump_json(), expires]
        key = decision_key(decision.symbol)
        with _redis_errors("caching the decision"):
            self._execute(lambda pipe: self._keep_newer(pipe, key, args))

    def latest_decision(self, symbol: str) -> Decision | None:
        with _redis_errors("reading the cached decision"):
            raw = cast("bytes | None", self._client.hget(decision_key(symbol), "v"))
        if raw is None:
            return None
        try:
            return Decision.model_validate_json(raw)
        except ValidationError:
            return None

    # --- processed-signal register ------------------------------------------------------

    def claim(self, signal_id: str, lease_seconds: int) -> Claim:
        with _redis_errors("claiming the signal"):
            pipe = self._client.pipeline(transaction=False)
            pipe.exists(processed_key(signal_id))
            pipe.set(lease_key(signal_id), "1", nx=True, ex=lease_seconds)
            done, leased = pipe.execute()
            if done:
                if leased:
                    self._client.delete(lease_key(signal_id))
                return Claim.DONE
        return Claim.NEW if leased else Claim.BUSY

    def finish(self, signal_id: str) -> None:
        with _redis_errors("marking the signal processed"):
            pipe = self._client.pipeline(transaction=False)
            pipe.set(processed_key(signal_id), "1", ex=self._processed_ttl)
            pipe.delete(lease_key(signal_id))
            pipe.execute()

    def release(self, signal_id: str) -> None:
        with _redis_errors("releasing the signal"):
            self._client.delete(lease_key(signal_id))

    def check(self) -> None:
        with _redis_errors("pinging Redis"):
            self._client.ping()

    def close(self) -> None:
        """Disconnect every pooled connection (process shutdown)."""
        self._client.connection_pool.disconnect()
