"""``aws_max_attempts`` means attempts, the first included, as its name says.

botocore's retry config has two counters: ``max_attempts`` counts *retries* after the first
call (3 there means 4 calls), ``total_max_attempts`` counts every call. The clients built by
``make_client`` must send exactly the number of calls the setting (or the caller) names,
whatever botocore calls it. Each call is answered 500 here before it leaves the process.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.awsrequest import AWSResponse, HTTPHeaders
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from kyperian.adapters.aws.clients import make_client
from kyperian.settings import Settings


class _Body:
    """The raw body botocore reads from a response (an AWS 500 in DynamoDB's JSON)."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Any:
        yield self._payload

    def read(self, *_: Any) -> bytes:
        return self._payload


def _calls_sent(client: Any) -> int:
    """How many HTTP calls one ``describe_table`` sends when every one fails with a 500."""
    sent: list[str] = []
    payload = b'{"__type":"InternalServerError","message":"try again"}'

    def fail(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.url)
        return AWSResponse(request.url, 500, HTTPHeaders(), _Body(payload))

    client.meta.events.register("before-send", fail)
    with pytest.raises(ClientError):
        client.describe_table(TableName="t")
    return len(sent)


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda _seconds: None)


def _settings(**fields: Any) -> Settings:
    return Settings(
        aws_endpoint_url="http://127.0.0.1:9",
        aws_region="us-east-1",
        **fields,
    )


@settings(max_examples=10, deadline=None)
@given(attempts=st.integers(min_value=1, max_value=5))
def test_the_setting_is_the_number_of_calls_sent(attempts: int) -> None:
    # GIVEN a client built with aws_max_attempts = N, and an AWS that always answers 500
    client = make_client("dynamodb", _settings(aws_max_attempts=attempts))
    # WHEN one call is made
    sent = _calls_sent(client)
    # THEN N calls went out, the first one included (not N retries after it)
    assert sent == attempts


def test_the_default_is_three_calls() -> None:
    # GIVEN the default settings
    client = make_client("dynamodb", _settings())
    # WHEN one call fails every time THEN it is tried three times in all
    assert _calls_sent(client) == 3


def test_a_caller_budget_wins_over_the_setting() -> None:
    # GIVEN a caller with a tighter budget (the webhook Lambda) than the setting
    client = make_client("dynamodb", _settings(aws_max_attempts=4), max_attempts=2)
    # WHEN one call fails every time THEN the caller's count is sent, not the setting's
    assert _calls_sent(client) == 2
