"""boto3 clients built one way for the whole system, and botocore failures classified.

Every client honours ``KYPERIAN_AWS_ENDPOINT_URL`` (moto locally, unset on AWS) and uses
short timeouts with the 'standard' retry mode, because the webhook must answer
TradingView within 3 seconds. ``classify`` turns a botocore exception into the domain's
``TemporaryError`` (retry later) or ``OperationalError`` (a human must act).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kyperian.domain.errors import KyperianError, OperationalError, TemporaryError

if TYPE_CHECKING:
    from kyperian.settings import Settings

_OPERATIONAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ResourceNotFound",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ValidationException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "DecryptionFailure",
    }
)


def make_client(
    service: str,
    settings: Settings,
    read_timeout: float | None = None,
    *,
    connect_timeout: float | None = None,
    max_attempts: int | None = None,
) -> Any:
    """A boto3 client for ``service`` configured from settings (endpoint, region, timeouts).

    ``read_timeout`` overrides the setting for calls that hold the connection open on
    purpose, such as an SQS long poll; ``connect_timeout`` and ``max_attempts`` for callers
    with a tighter budget (the webhook Lambda must give up and undo inside its timeout).
    ``max_attempts`` (and the ``aws_max_attempts`` setting behind the default) counts every
    attempt, the first included: botocore's ``total_max_attempts``. Its ``max_attempts``
    counts retries after the first attempt, so 3 there would mean 4 calls.
    """
    attempts = settings.aws_max_attempts if max_attempts is None else max_attempts
    config = Config(
        region_name=settings.aws_region,
        connect_timeout=settings.aws_connect_timeout
        if connect_timeout is None
        else connect_timeout,
        read_timeout=settings.aws_read_timeout if read_timeout is None else read_timeout,
        retries={"mode": "standard", "total_max_attempts": attempts},
        max_pool_connections=20,
    )
    session: Any = boto3.session.Session()  # typed per service by callers, not here
    return session.client(service, endpoint_url=settings.aws_endpoint_url, config=config)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a ``ClientError`` (``""`` when absent)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


def classify(exc: Exception, action: str) -> KyperianError:
    """Map a botocore failure during ``action`` to a domain error that says what to do next."""
    if isinstance(exc, ClientError):
        code = error_code(exc)
        if code in _OPERATIONAL_CODES:
            return OperationalError(f"{action} failed: {code}")
        return TemporaryError(f"{action} failed: {code or 'unknown error'}")
    if isinstance(exc, BotoCoreError):
        return TemporaryError(f"{action} failed: {type(exc).__name__}")
    return TemporaryError(f"{action} failed: {type(exc).__name__}")
