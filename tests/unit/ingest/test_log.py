"""The webhook's log lines: the same as Powertools' defaults write, field for field."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from hypothesis import given
from hypothesis import strategies as st

from kyperian.ingest import handler
from kyperian.ingest.log import (
    FastKeysFormatter,
    json_line_encoder,
    json_message,
    make_formatter,
)
from tests.aws_resources import API_KEY
from tests.conftest import FakeLambdaContext, IngestStack
from tests.events.load import http_event

_UNDECODED = object()


def powertools_decode(message: Any) -> Any:
    """What Powertools' formatter makes of a message with its default decoder."""
    try:
        return json.loads(message)
    except (json.JSONDecodeError, TypeError, ValueError):
        return _UNDECODED


def ours(message: Any) -> Any:
    try:
        return json_message(message)
    except (json.JSONDecodeError, TypeError, ValueError):
        return _UNDECODED


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
).map(json.dumps)
prefixes = st.sampled_from(["", " ", "\n\t", "x", "signals ", "NaN", "Infinity", "-", "tr"])


@given(
    message=st.one_of(
        st.text(max_size=40),
        json_texts,
        st.tuples(prefixes, json_texts).map("".join),
        st.sampled_from(["signals accepted", "request rejected", "true", "null", " 12 ", "NaN"]),
        st.integers(),
        st.none(),
    )
)
def test_a_message_is_decoded_exactly_when_powertools_would_decode_it(message: Any) -> None:
    # GIVEN any message: prose, JSON text, JSON after prose, or not text at all
    expected = powertools_decode(message)
    # WHEN our decoder reads it
    got = ours(message)
    # THEN it decodes the same value, or, like the default, leaves it as it is
    if expected is _UNDECODED:
        assert got is _UNDECODED or got == message
    else:
        assert json.dumps(got) == json.dumps(expected)


@given(
    record=st.dictionaries(
        st.text(max_size=6),
        st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.lists(st.text())),
    )
)
def test_lines_are_encoded_as_powertools_encodes_them(record: dict[str, Any]) -> None:
    # GIVEN any record, including non-ASCII text and values JSON cannot hold (set, bytes)
    record = {**record, "odd": {1, 2} if record else b"raw"}
    default = partial(
        json.dumps, default=str, separators=(",", ":"), indent=None, ensure_ascii=False
    )
    # THEN the encoder writes the very same text as Powertools' default serializer
    assert json_line_encoder().encode(record) == default(record)


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    stream_handler: Any = handler.logger.registered_handler
    previous, stream_handler.stream = stream_handler.stream, sink
    yield sink
    stream_handler.stream = previous


def _alert(**fields: Any) -> dict[str, Any]:
    return {
        "passphrase": API_KEY,
        "symbol": "NASDAQ:LOGS",
        "action": "buy",
        "source": "luxalgo",
        "timeframe": "240",
        **fields,
    }


def test_lines_carry_every_field_and_the_right_correlation_id(
    ingest_stack: IngestStack, logged: io.StringIO
) -> None:
    # GIVEN an alert that is accepted and one that is rejected
    accepted = http_event(body=_alert())
    rejected = http_event(body=_alert(action="hold"))
    # WHEN both are handled
    response = handler.lambda_handler(accepted, FakeLambdaContext())
    handler.lambda_handler(rejected, FakeLambdaContext())
    lines = [json.loads(line) for line in logged.getvalue().splitlines()]
    ok = next(line for line in lines if line["message"] == "signals accepted")
    refused = next(line for line in lines if line["message"] == "request rejected")
    # THEN the accepted line is correlated by the signal's id, the rejected one by the
    # request's id, and each carries Powertools' fields and the Lambda context
    signal_id = json.loads(response["body"])["signal_id"]
    assert ok["correlation_id"] == signal_id
    assert ok["signal_ids"] == [signal_id]
    assert (ok["symbol"], ok["duplicates"]) == ("LOGS", 0)
    assert refused["correlation_id"] == rejected["requestContext"]["requestId"]
    assert refused["reason"] == "validation_failed"
    for line in (ok, refused):
        assert list(line)[:4] == ["level", "location", "message", "timestamp"]
        assert {"service", "cold_start", "function_name", "function_request_id"} <= set(line)
        assert line["function_request_id"] == FakeLambdaContext.aws_request_id


def test_a_gzip_capable_caller_still_gets_plain_json(ingest_stack: IngestStack) -> None:
    # GIVEN a caller that accepts gzip (no route of ours asks for compression)
    event = http_event(body=_alert(symbol="GZIP"), headers={"Accept-Encoding": "gzip, br"})
    # WHEN it posts an alert
    response = handler.lambda_handler(event, FakeLambdaContext())
    # THEN the answer is plain JSON, not compressed
    assert response["statusCode"] == 202
    assert response["isBase64Encoded"] is False
    assert "Content-Encoding" not in response["headers"]
    assert json.loads(response["body"])["symbol"] == "GZIP"


plain = st.one_of(st.text(max_size=8), st.integers(), st.floats(), st.none(), st.booleans())
key_names = st.sampled_from(
    [
        *("service", "correlation_id", "symbol", "level", "location", "timestamp", "message"),
        *("name", "process", "threadName", "cold_start", "function_name", "exception"),
        *("exception_name", "exception_notes", "stack_trace", "xray_trace_id"),
    ]
) | st.text(min_size=1, max_size=6)
messages = st.one_of(st.text(max_size=20), json_texts, st.dictionaries(st.text(max_size=3), plain))


def _raise() -> Any:
    try:
        raise ValueError("boom")
    except ValueError:
        return sys.exc_info()


@given(
    message=messages,
    args=st.sampled_from([(), ("x",)]),
    extras=st.dictionaries(key_names, plain, max_size=4),
    keys=st.dictionaries(key_names, st.one_of(plain, st.just("%(funcName)s")), max_size=4),
    context_keys=st.dictionaries(st.text(min_size=1, max_size=5), plain, max_size=2),
    with_exception=st.booleans(),
)
def test_the_formatter_writes_what_powertools_formatter_writes(
    message: Any,
    args: tuple[str, ...],
    extras: dict[str, Any],
    keys: dict[str, Any],
    context_keys: dict[str, Any],
    with_exception: bool,
) -> None:
    # GIVEN Powertools' formatter and ours, with the same decoder, encoder and keys
    reference = LambdaPowertoolsFormatter(
        json_deserializer=json_message, json_serializer=json_line_encoder().encode
    )
    ours = make_formatter()
    for formatter in (reference, ours):
        formatter.append_keys(**{"service": "svc", **keys})
    ours.thread_safe_append_keys(**context_keys)  # thread-local: shared by both
    reserved = {"message", "asctime", *vars(logging.makeLogRecord({}))}  # makeRecord refuses them
    extra = {k: v for k, v in extras.items() if k not in reserved}
    if isinstance(message, str) and args:
        message += " %s"
    record = logging.getLogger("fmt-test").makeRecord(
        "fmt-test",
        logging.INFO,
        __file__,
        7,
        message,
        args,
        _raise() if with_exception else None,
        "caller",
        extra,
    )
    try:
        # WHEN each formats the same record
        expected: Any = _formatted(reference, record)
        got = _formatted(ours, record)
    finally:
        ours.thread_safe_clear_keys()
    # THEN the lines are the same, character for character (or both refuse the keys)
    assert got == expected


def _formatted(formatter: logging.Formatter, record: logging.LogRecord) -> Any:
    try:
        return formatter.format(record)
    except (ValueError, TypeError) as exc:  # a reserved key given a non-text value
        return type(exc)


@contextlib.contextmanager
def in_time_zone(zone: str) -> Iterator[None]:
    """The process in another time zone (``TZ`` + ``time.tzset``), restored afterwards."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = zone
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


instants = st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False)
"""Epoch seconds from 1970 to 2100, as ``LogRecord.created`` holds them."""


@given(
    moments=st.lists(
        st.one_of(
            instants, st.tuples(instants, st.floats(0, 0.999)).map(lambda p: int(p[0]) + p[1])
        ),
        min_size=1,
        max_size=8,
    ),
    zone=st.sampled_from(["UTC0", "EST5EDT,M3.2.0,M11.1.0", "IST-5:30", "NPT-5:45"]),
    utc=st.booleans(),
)
def test_time_stamps_are_powertools_own_for_any_instant_and_zone(
    moments: list[float], zone: str, utc: bool
) -> None:
    # GIVEN a process in some time zone, and records made at any instants, several in one
    # second (the second's text is reused) and some across seconds or zone changes
    reference = LambdaPowertoolsFormatter(utc=utc)
    ours = make_formatter()
    ours.converter = reference.converter
    with in_time_zone(zone):
        for moment in sorted(moments) + moments:
            created = {"created": moment, "msecs": (moment - int(moment)) * 1000}
            record = logging.makeLogRecord(created)
            # WHEN each formats the record's time
            # THEN the stamps are the same, character for character
            assert ours.formatTime(record) == reference.formatTime(record)


def test_a_change_of_time_zone_within_a_second_shows_at_once() -> None:
    # GIVEN a stamp written in one zone
    ours, reference = make_formatter(), LambdaPowertoolsFormatter()
    record = logging.makeLogRecord({"created": 1_795_500_000.25, "msecs": 250.0})
    with in_time_zone("UTC0"):
        assert ours.formatTime(record).endswith(",250+0000")
    # WHEN the process moves to another zone within the same second
    with in_time_zone("IST-5:30"):
        # THEN the next stamp is in the new zone, as Powertools writes it
        assert ours.formatTime(record) == reference.formatTime(record)
        assert ours.formatTime(record).endswith(",250+0530")


def test_other_time_formats_are_powertools_own() -> None:
    # GIVEN formatters asking for a date format, RFC 3339, or a datetime directive
    record = logging.makeLogRecord({"created": 1_795_500_000.987654, "msecs": 987.0})
    for options in (
        {"datefmt": "%d/%m/%Y %H:%M:%S.%F"},
        {"use_rfc3339": True},
        {"datefmt": "%Y %f", "use_datetime_directive": True},
    ):
        reference = LambdaPowertoolsFormatter(**options)
        ours = FastKeysFormatter(**options)
        # WHEN each formats the same record's time  THEN the stamps are the same
        assert ours.formatTime(record) == reference.formatTime(record)
