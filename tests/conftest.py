"""Fixtures shared by every tier: fake AWS credentials, a Lambda context, moto wiring."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from moto import mock_aws

from kyperian.local.resources import SERVICES as AWS_SERVICES
from kyperian.settings import get_settings
from tests.aws_resources import IngestResources, create_ingest_resources

REGION = "us-east-1"

# Two shared cores: judge properties by what they find, not by how fast examples come.
hypothesis_settings.register_profile(
    "kyperian", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("kyperian")


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with fake credentials, so nothing can reach a real account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "POWERTOOLS_METRICS_NAMESPACE": "Kyperian",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("KYPERIAN_AWS_ENDPOINT_URL", raising=False)
    get_settings.cache_clear()


@dataclass
class FakeLambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str = "kyperian-test-signal-validator"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = (
        "arn:aws:lambda:us-east-1:123456789012:function:kyperian-test-signal-validator"
    )
    aws_request_id: str = "52fdfc07-2182-454f-963f-5f0f9a621d72"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 10_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@dataclass
class IngestStack:
    """moto-backed AWS with the ingestion resources, and clients to inspect it."""

    resources: IngestResources
    clients: dict[str, Any]


@pytest.fixture
def ingest_stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[IngestStack]:
    """In-process moto with the table, bus, rule -> queue and API key; handler rewired to it."""

    with mock_aws():
        session: Any = boto3.session.Session(region_name=REGION)
        clients = {name: session.client(name) for name in AWS_SERVICES}
        resources = create_ingest_resources(clients)
        monkeypatch.setenv("KYPERIAN_ENVIRONMENT", "test")
        rewire()
        yield IngestStack(resources, clients)
        rewire()


def rewire() -> None:
    """Re-read settings and rebuild the handler's clients (after changing the environment)."""
    from kyperian.ingest import handler

    get_settings.cache_clear()
    handler.wiring.cache_clear()
