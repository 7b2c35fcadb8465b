"""Secrets read through Powertools' cached parameters layer (Secrets Manager).

A warm Lambda reads each secret at most once per ``max_age`` seconds, so the API key
check costs no AWS call per request, and a rotated key is picked up within that time.
Values are never logged.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

from kyperian.domain.errors import OperationalError
from kyperian.domain.ports import SecretSource


class CachedSecrets(SecretSource):
    """``SecretSource`` over Secrets Manager with Powertools' in-memory cache."""

    def __init__(self, client: Any, max_age_seconds: int) -> None:
        self._provider = SecretsProvider(boto3_client=client)
        self._max_age = max_age_seconds

    def get(self, secret_id: str) -> str:
        try:
            value = self._provider.get(secret_id, max_age=self._max_age)
        except GetParameterError as exc:
            raise OperationalError(f"secret {secret_id} cannot be read") from exc
        if not isinstance(value, str) or not value:
            raise OperationalError(f"secret {secret_id} is empty or not text")
        return value
