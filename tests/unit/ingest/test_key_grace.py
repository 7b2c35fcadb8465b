"""The rotation grace period ends: the previous key works inside it and never after it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kyperian.domain.ports import PreviousSecret
from kyperian.ingest import handler
from kyperian.settings import Settings
from tests.conftest import FakeLambdaContext
from tests.events.load import http_event
from tests.ingest_doubles import FixedSecret, MemoryPublisher, MemoryStore

CURRENT = "the-current-key-0123456789abcdef"
PREVIOUS = "the-previous-key-0123456789abcdef"
GRACE = 3600


@pytest.fixture
def rotated(request: pytest.FixtureRequest) -> Iterator[None]:
    """The handler wired to in-memory ports; the key rotated ``request.param`` seconds ago."""
    replaced_at = datetime.now(UTC) - timedelta(seconds=request.param)
    settings = Settings(environment="test", api_key_grace_seconds=GRACE)
    secrets = FixedSecret(CURRENT, PreviousSecret(PREVIOUS, replaced_at))
    wired = handler.Wiring(settings, MemoryStore(), MemoryPublisher(), secrets)
    original = handler.wiring
    handler.wiring = lambda: wired  # type: ignore[assignment]
    yield
    handler.wiring = original


def post(key: str, symbol: str, header: bool = False) -> int:
    body: dict[str, Any] = {"symbol": symbol, "action": "buy", "source": "ai", "timeframe": "60"}
    headers = {"X-API-Key": key} if header else {}
    if not header:
        body["passphrase"] = key
    event = http_event(body=json.dumps(body), headers=headers)
    status: int = handler.lambda_handler(event, FakeLambdaContext())["statusCode"]
    return status


@pytest.mark.parametrize("rotated", [GRACE - 60], indirect=True)
def test_previous_key_works_just_inside_the_grace_period(rotated: None) -> None:
    # GIVEN a rotation a minute before the grace period ends
    # WHEN alerts arrive with the previous key, in the body and in the header
    # THEN both are accepted
    assert (post(PREVIOUS, "GRACEA"), post(PREVIOUS, "GRACEB", header=True)) == (202, 202)


@pytest.mark.parametrize("rotated", [GRACE + 60, 30 * 86400], indirect=True)
def test_previous_key_is_refused_once_the_grace_period_is_over(rotated: None) -> None:
    # GIVEN a rotation older than the grace period (a minute older, and a month)
    # WHEN alerts arrive with the previous key, and with the current one
    # THEN the previous key is refused however it is sent; the current one still works
    assert post(PREVIOUS, "GRACEC") == 401
    assert post(PREVIOUS, "GRACED", header=True) == 401
    assert post(CURRENT, "GRACEE") == 202
