"""Secrets read through Powertools' cached parameters layer (Secrets Manager).

A warm Lambda reads each secret at most once per ``max_age`` seconds, so the API key
check costs no AWS call per request, and a rotated key is picked up within that time.
The previous value (``AWSPREVIOUS``), which the webhook accepts for a grace period after a
rotation, is read only when a presented key is not the current one, and cached the same way.
Values are never logged.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import BotoCoreError, ClientError

from kyperian.domain.errors import OperationalError
from kyperian.domain.ports import PreviousSecret, SecretSource


class CachedSecrets(SecretSource):
    """``SecretSource`` over Secrets Manager with Powertools' in-memory cache."""

    def __init__(self, client: Any, max_age_seconds: int) -> None:
        self._client = client
        self._provider = SecretsProvider(boto3_client=client)
        self._max_age = max_age_seconds
        self._previous: dict[str, tuple[float, PreviousSecret | None]] = {}

    def get(self, secret_id: str) -> str:
        try:
            value = self._provider.get(secret_id, max_age=self._max_age)
        except GetParameterError as exc:
            raise OperationalError(f"secret {secret_id} cannot be read") from exc
        if not isinstance(value, str) or not value:
            raise OperationalError(f"secret {secret_id} is empty or not text")
        return value

    def previous(self, secret_id: str) -> PreviousSecret | None:
        cached = self._previous.get(secret_id)
        if cached is not None and time.monotonic() - cached[0] < self._max_age:
            return cached[1]
        found = self._read_previous(secret_id)
        self._previous[secret_id] = (time.monotonic(), found)
        return found

    def _read_previous(self, secret_id: str) -> PreviousSecret | None:
        """AWSPREVIOUS's value and the creation time of AWSCURRENT (when it took over)."""
        try:
            versions = self._client.list_secret_version_ids(SecretId=secret_id)["Versions"]
            current = _created(versions, "AWSCURRENT")
            if current is None or _created(versions, "AWSPREVIOUS") is None:
                return None
            value = self._client.get_secret_value(SecretId=secret_id, VersionStage="AWSPREVIOUS")[
                "SecretString"
            ]
        except (ClientError, BotoCoreError, KeyError):
            return None  # no previous key to honour: only the current one is accepted
        return PreviousSecret(value, current) if value else None


def _created(versions: list[dict[str, Any]], stage: str) -> datetime | None:
    for version in versions:
        if stage in version.get("VersionStages", []):
            created: datetime = version["CreatedDate"]
            return created
    return None
