"""What the engine drills share: their environment, engine settings, alerts and SQS bodies.

The exactly-once and kill-switch drills (``exactly_once_drill``, ``kill_switch_drill``) build
engines with the service's own wiring against an emulator and a redis-server
(``kyperian.local.ephemeral``); this module gives them the same credentials, the same
settings (auto-trading on, the paper venue in the ledger, short visibility and lease), the
same alerts and the EventBridge envelope SQS delivers, which the runbook drill (``drill``)
sends too. It never touches a real AWS account: the credentials are the emulator's.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any, Final

from kyperian.adapters.aws.eventbridge import DETAIL_TYPE, EVENT_SOURCE
from kyperian.domain.models import Signal, iso_utc
from kyperian.engine.telemetry import logger

ENVIRONMENT: Final = "drill"
REGION: Final = "us-east-1"
VISIBILITY_SECONDS: Final = 5
LEASE_SECONDS: Final = 2
CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "drill",
    "AWS_SECRET_ACCESS_KEY": "drill",  # the emulator accepts any credentials
    "AWS_DEFAULT_REGION": REGION,
    "POWERTOOLS_METRICS_DISABLED": "true",
}


def engine_settings(endpoint: str, redis_port: int) -> dict[str, Any]:
    """Settings fields of a drill engine: auto-trading, no worker, short visibility and lease."""
    return {
        "environment": ENVIRONMENT,
        "aws_endpoint_url": endpoint,
        "redis_port": redis_port,
        "redis_socket_timeout": 0.2,
        "auto_trading": True,
        "approval_mode": False,
        "worker_enabled": False,
        "worker_visibility_seconds": VISIBILITY_SECONDS,
        "order_lease_seconds": LEASE_SECONDS,
        "aws_read_timeout": 5.0,
    }


def strong_buy(symbol: str, timeframe: str, source: str, received_at: datetime, sid: str) -> Signal:
    """A STRONG_BUY alert at 100 with full confidence, on the bar of ``received_at``."""
    moment = received_at.replace(microsecond=0)
    return Signal(
        signal_id=sid, symbol=symbol, action="STRONG_BUY", timeframe=timeframe, source=source,
        price=100.0, confidence=100.0, timestamp=moment, key_time=moment,
        received_at=received_at, ttl=int((moment + timedelta(days=7)).timestamp()),
    )  # fmt: skip


def envelope(signal: Signal) -> str:
    """The SQS body the EventBridge rule delivers for a validated signal (a fresh event id)."""
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": DETAIL_TYPE,
            "source": EVENT_SOURCE,
            "account": "000000000000",
            "time": iso_utc(signal.received_at),
            "region": REGION,
            "resources": [],
            "detail": signal.to_event_detail(),
        }
    )


@contextmanager
def drill_environment() -> Iterator[None]:
    """The drill's credentials in the environment, restored afterwards."""
    saved = {name: os.environ.get(name) for name in CREDENTIALS}
    os.environ.update(CREDENTIALS)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def quiet() -> Iterator[None]:
    """Only warnings from the engine and none from the emulator's request log, meanwhile."""
    werkzeug = logging.getLogger("werkzeug")
    levels = (werkzeug.level, logger.log_level)
    werkzeug.setLevel(logging.ERROR)
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        werkzeug.setLevel(levels[0])
        logger.setLevel(levels[1])
