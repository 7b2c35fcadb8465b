"""The Redis adapter against a real redis-server: keys, TTLs, pipelines, pool, TLS + AUTH."""

from __future__ import annotations

import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from pydantic import SecretStr

from kyperian.adapters.cache.redis import RedisCache, build_client
from kyperian.domain.engine_ports import Claim
from kyperian.domain.errors import OperationalError, TemporaryError
from kyperian.domain.models import Signal, Timeframe
from kyperian.fusion import FusionRules, fuse
from kyperian.settings import Settings
from tests.integration.engine.conftest import RedisServer, ttl
from tests.signal_factory import make_signal

pytestmark = pytest.mark.integration

LIFETIMES = {"1W": 7 * 86400, "1D": 86400, "4h": 8 * 3600, "1h": 7200, "30m": 3600, "15m": 1800}


def _cache(client: redis.Redis, **kwargs: Any) -> RedisCache:
    return RedisCache(client, **kwargs)


def recent(age: timedelta = timedelta(0), **fields: Any) -> Signal:
    """A signal made ``age`` before the real now (the server expires keys by its own clock)."""
    return make_signal(at=datetime.now(UTC) - age, **fields)


def test_signal_keys_follow_the_specification_and_expire_after_their_lifetime(
    redis_client: redis.Redis,
) -> None:
    # GIVEN one signal per timeframe, each made 10 minutes before now
    cache = _cache(redis_client)
    made_at = datetime.now(UTC) - timedelta(minutes=10)
    signals = [make_signal(timeframe=tf, source="luxalgo", at=made_at) for tf in LIFETIMES]

    # WHEN they are cached
    cache.record_all(signals)

    # THEN each key is kyperian:signal:SYMBOL:<tf>:<source>, expiring at signal time + lifetime
    for timeframe, lifetime in LIFETIMES.items():
        key = f"kyperian:signal:AAPL:{timeframe}:luxalgo"
        expiry_ms = redis_client.pexpiretime(key)
        expected = int(made_at.timestamp() * 1000) + lifetime * 1000
        assert expiry_ms == expected, timeframe


def test_the_decision_key_lives_five_minutes_and_every_key_has_a_ttl(
    redis_client: redis.Redis,
) -> None:
    # GIVEN a worker's full use of the cache: signals, a decision, a claim, a finished signal
    cache = RedisCache(redis_client)
    now = datetime.now(UTC)
    signal = make_signal(at=now)
    cache.record_and_read(signal)
    cache.put_decision(fuse([signal], FusionRules(), now, symbol="AAPL"))
    cache.claim("sig-a", lease_seconds=60)
    cache.claim("sig-b", lease_seconds=60)
    cache.finish("sig-b")

    # THEN the decision key expires in 5 minutes, and no key is without a TTL (volatile-lru)
    assert 295 <= ttl(redis_client, "kyperian:decision:AAPL") <= 300
    assert 55 <= ttl(redis_client, "kyperian:lease:sig-a") <= 60
    assert ttl(redis_client, "kyperian:processed:sig-b") > 86000
    keys = list(redis_client.scan_iter("kyperian:*"))
    assert len(keys) == 4
    assert all(ttl(redis_client, key) > 0 for key in keys)


def test_an_older_signal_never_replaces_a_newer_one(redis_client: redis.Redis) -> None:
    # GIVEN a newer 4h signal cached
    cache = _cache(redis_client)
    newer = recent(timeframe="4h", action="BUY", age=timedelta(minutes=5))
    older = recent(timeframe="4h", action="SELL", age=timedelta(minutes=50))
    cache.record_and_read(newer)

    # WHEN an older one of the same slot arrives late (a redelivery), then a newest one
    after_older = cache.record_and_read(older)
    newest = recent(timeframe="4h", action="STRONG_SELL", age=timedelta(minutes=1))
    after_newest = cache.record_and_read(newest)

    # THEN the older one changed nothing and the newest replaced the newer
    assert [(s.signal_id, s.action) for s in after_older] == [(newer.signal_id, newer.action)]
    assert [s.signal_id for s in after_newest] == [newest.signal_id]


def test_a_symbols_timeframes_are_written_and_read_in_one_round_trip(
    redis_server: RedisServer,
) -> None:
    # GIVEN a client that counts what it sends to the server, and three cached timeframes
    sends: list[int] = []

    class CountingConnection(redis.Connection):
        def send_packed_command(self, command: Any, check_health: bool = True) -> None:
            sends.append(1)
            super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]

    pool = redis.ConnectionPool(port=redis_server.port, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    client.flushall()
    cache = _cache(client)
    cache.record_all([recent(timeframe=tf) for tf in ("1D", "1h")])
    cache.record_and_read(recent(timeframe="1W"))  # loads the Lua script once
    sends.clear()

    # WHEN a new signal is recorded and the symbol read back
    signals = cache.record_and_read(recent(timeframe="4h"))

    # THEN it took one send (one pipeline) and returned the four timeframes
    assert len(sends) == 1
    assert sorted(s.timeframe.rank for s in signals) == sorted(
        Timeframe(tf).rank for tf in ("1W", "1D", "4h", "1h")
    )
    client.close()


def test_the_lua_script_is_reloaded_after_a_script_flush(redis_client: redis.Redis) -> None:
    # GIVEN a cache that already used its script, then a server that forgot it (failover)
    cache = _cache(redis_client)
    cache.record_and_read(recent(timeframe="1D"))
    redis_client.script_flush()

    # WHEN it writes again  THEN it reloads the script and succeeds
    assert len(cache.record_and_read(recent(timeframe="4h"))) == 2


def test_claims_say_new_busy_then_done(redis_client: redis.Redis) -> None:
    # GIVEN two workers' views of the same signal
    cache = _cache(redis_client)

    # WHEN one claims, the other claims, the first finishes, and the other claims again
    first = cache.claim("sig-1", lease_seconds=30)
    second = cache.claim("sig-1", lease_seconds=30)
    cache.finish("sig-1")
    third = cache.claim("sig-1", lease_seconds=30)

    # THEN NEW, BUSY, DONE, and no lease is left behind
    assert (first, second, third) == (Claim.NEW, Claim.BUSY, Claim.DONE)
    assert redis_client.exists("kyperian:lease:sig-1") == 0


def test_a_released_claim_can_be_taken_again(redis_client: redis.Redis) -> None:
    cache = _cache(redis_client)
    assert cache.claim("sig-2", lease_seconds=30) is Claim.NEW
    cache.release("sig-2")
    assert cache.claim("sig-2", lease_seconds=30) is Claim.NEW


def test_the_pool_is_capped_at_twenty_connections(redis_server: RedisServer) -> None:
    # GIVEN the client built from settings
    client = build_client(Settings(redis_port=redis_server.port, redis_socket_timeout=0.05))
    pool = client.connection_pool
    held = [pool.get_connection() for _ in range(20)]

    # WHEN a 21st connection is wanted  THEN it waits, then fails, instead of opening one
    with pytest.raises(redis.ConnectionError):
        pool.get_connection()
    for connection in held:
        pool.release(connection)
    client.close()


def test_an_unreachable_server_is_a_temporary_error() -> None:
    # GIVEN nothing listening on the port  WHEN used  THEN TemporaryError (decide from the table)
    client = build_client(Settings(redis_port=1, redis_socket_timeout=0.05))
    with pytest.raises(TemporaryError):
        RedisCache(client).latest_signals("AAPL")


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, made with the openssl CLI."""
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "san.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    commands = [
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=test-ca", "-keyout", str(ca_key), "-out", str(ca_cert)],
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(key), "-out", str(csr)],
        ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
         "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(cert)],
    ]  # fmt: skip
    for command in commands:
        subprocess.run(command, check=True, capture_output=True)  # noqa: S603
    return ca_cert, cert, key


def test_tls_and_auth_token_as_elasticache_requires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a TLS-only redis-server that requires an AUTH token, trusted through SSL_CERT_FILE
    try:
        ca_cert, cert, key = _certificates(tmp_path)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("openssl CLI unavailable")
    port = RedisServer(tmp_path).port
    server = RedisServer(
        tmp_path,
        port=port,
        extra=("--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
               "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca_cert),
               "--tls-auth-clients", "no", "--requirepass", "s3cret-token"),
    )  # fmt: skip
    server.start(ping=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_cert))
    good = Settings(redis_port=port, redis_tls=True, redis_auth_token=SecretStr("s3cret-token"))
    wrong = Settings(redis_port=port, redis_tls=True, redis_auth_token=SecretStr("wrong"))
    try:
        # WHEN the engine connects with the right token  THEN it works
        cache = _wait_for_tls(good)
        cache.record_and_read(recent())
        # AND a wrong token is an operational error (a human must fix the secret)
        with pytest.raises(OperationalError):
            RedisCache(build_client(wrong)).check()
    finally:
        server.stop()


def _wait_for_tls(settings: Settings) -> RedisCache:
    cache = RedisCache(build_client(settings))
    for _ in range(100):
        try:
            cache.check()
            return cache
        except TemporaryError:
            time.sleep(0.05)
    raise RuntimeError("TLS redis-server did not answer")
