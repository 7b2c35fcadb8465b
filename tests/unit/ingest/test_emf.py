"""The webhook's EMF documents: CloudWatch extracts exactly what was counted, from fewer lines."""

from __future__ import annotations

import io
import json
from collections import Counter
from contextlib import redirect_stdout
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kyperian.ingest import handler
from kyperian.ingest.emf import COUNT, MILLISECONDS, RequestMetrics, Unit
from tests.aws_resources import API_KEY
from tests.conftest import FakeLambdaContext, IngestStack
from tests.events.load import http_event

DEFAULTS = {"service": "signal-validator", "environment": "test"}
Point = tuple[str, str, tuple[tuple[str, str], ...], float]  # name, unit, dimensions, value


def extract(document: dict[str, Any]) -> list[Point]:
    """What CloudWatch takes from one document, read the way the EMF specification says.

    Each directive's metrics are published once per dimension set; a dimension's value is
    the root member of that name (a string), a metric's value the root member of its name
    (a number or an array of numbers).
    """
    points: list[Point] = []
    for directive in document["_aws"]["CloudWatchMetrics"]:
        assert set(directive) == {"Namespace", "Dimensions", "Metrics"}
        assert len(directive["Metrics"]) <= 100
        for dimension_set in directive["Dimensions"]:
            assert len(dimension_set) <= 30
            dims = tuple(sorted((key, document[key]) for key in dimension_set))
            assert all(isinstance(value, str) for _, value in dims)
            for metric in directive["Metrics"]:
                values = document[metric["Name"]]
                for value in values if isinstance(values, list) else [values]:
                    points.append((metric["Name"], metric["Unit"], dims, value))
    return points


def printed(metrics: RequestMetrics) -> list[dict[str, Any]]:
    """What ``flush`` prints, each line checked to be the compact JSON of its document."""
    expected = [json.dumps(d, separators=(",", ":")) for d in metrics.documents()]
    out = io.StringIO()
    with redirect_stdout(out):
        metrics.flush()
    lines = out.getvalue().splitlines()
    if lines:  # nothing is printed when metrics are disabled
        assert lines == expected
    return [json.loads(line) for line in lines]


def fixed_clock() -> float:
    return 1_795_900_000.123


def wanted(
    adds: list[tuple[str, Unit, float]], breakdowns: list[tuple[str, Unit, float, dict[str, str]]]
) -> Counter[Point]:
    """The data points the calls stand for: one per value and per extra dimension."""
    base = tuple(sorted(DEFAULTS.items()))
    points: Counter[Point] = Counter((name, unit, base, value) for name, unit, value in adds)
    for name, unit, value, by in breakdowns:
        for key, dimension in by.items():
            points[(name, unit, tuple(sorted({**DEFAULTS, key: dimension}.items())), value)] += 1
    return points


def test_an_accepted_alert_is_one_document_with_every_breakdown() -> None:
    # GIVEN what the webhook counts for one accepted signal
    metrics = RequestMetrics("Kyperian", clock=fixed_clock)
    metrics.set_dimensions(**DEFAULTS)
    by = {"action": "BUY", "timeframe": "4h", "source": "luxalgo"}
    metrics.add("ValidationLatency", MILLISECONDS, 0.25)
    metrics.add("SignalsAccepted", COUNT, 1)
    metrics.add_by("SignalsAccepted", COUNT, 1, by)
    # WHEN the invocation ends
    documents = printed(metrics)
    # THEN one document carries the totals and the three breakdowns
    (document,) = documents
    assert Counter(extract(document)) == wanted(
        [("ValidationLatency", MILLISECONDS, 0.25), ("SignalsAccepted", COUNT, 1.0)],
        [("SignalsAccepted", COUNT, 1.0, by)],
    )
    # AND the next invocation starts empty
    assert printed(metrics) == []


def test_signals_of_one_mtf_alert_are_broken_down_apart() -> None:
    # GIVEN two signals accepted by one alert (their totals share one member: [1, 1])
    metrics = RequestMetrics("Kyperian", clock=fixed_clock)
    metrics.set_dimensions(**DEFAULTS)
    first = {"action": "BUY", "timeframe": "1h", "source": "ai"}
    second = {"action": "SELL", "timeframe": "1D", "source": "ai"}
    for by in (first, second):
        metrics.add("SignalsAccepted", COUNT, 1)
        metrics.add_by("SignalsAccepted", COUNT, 1, by)
    # WHEN printed
    documents = printed(metrics)
    # THEN the totals and one document per signal: each signal counted once per dimension
    assert len(documents) == 3
    points = Counter(p for d in documents for p in extract(d))
    assert points == wanted(
        [("SignalsAccepted", COUNT, 1.0)] * 2,
        [("SignalsAccepted", COUNT, 1.0, first), ("SignalsAccepted", COUNT, 1.0, second)],
    )


names = st.sampled_from(["SignalsAccepted", "SignalsRejected", "ValidationLatency", "action"])
units = st.sampled_from([COUNT, MILLISECONDS])
values = st.sampled_from([1.0, 2.0, 0.5])
dimension_names = st.sampled_from(["action", "timeframe", "source", "reason", "SignalsAccepted"])
breakdown_by = st.dictionaries(dimension_names, st.sampled_from(["BUY", "4h", "ai"]), min_size=1)


@given(
    adds=st.lists(st.tuples(names, units, values), max_size=6),
    breakdowns=st.lists(st.tuples(names, units, values, breakdown_by), max_size=4),
)
def test_cloudwatch_extracts_exactly_what_was_counted(
    adds: list[tuple[str, Unit, float]], breakdowns: list[tuple[str, Unit, float, dict[str, str]]]
) -> None:
    # GIVEN any counts and breakdowns, whatever their names, units and values
    # (a unit per name, as CloudWatch keeps one: the last one given wins in a document)
    unit_of = {name: unit for name, unit, _ in adds}
    adds = [(name, unit_of[name], value) for name, _, value in adds]
    metrics = RequestMetrics("Kyperian", clock=fixed_clock)
    metrics.set_dimensions(**DEFAULTS)
    valid = [b for b in breakdowns if b[0] not in b[3]]
    for _ in range(2):  # twice: the second invocation reuses the directives' text
        for name, unit, value in adds:
            metrics.add(name, unit, value)
        for name, unit, value, by in breakdowns:
            if name in by:
                with pytest.raises(ValueError, match="cannot be broken down"):
                    metrics.add_by(name, unit, value, by)
            else:
                metrics.add_by(name, unit, value, by)
        # WHEN printed
        documents = printed(metrics)
        # THEN CloudWatch reads every data point once, with its dimensions, and nothing else
        assert Counter(p for d in documents for p in extract(d)) == wanted(adds, valid)
        assert len(documents) <= 1 + len(valid)


@pytest.fixture
def disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")


def test_disabled_metrics_print_nothing(disabled: None) -> None:
    # GIVEN POWERTOOLS_METRICS_DISABLED=true and something counted
    metrics = RequestMetrics("Kyperian", clock=fixed_clock)
    metrics.add("SignalsAccepted", COUNT, 1)
    metrics.add_by("SignalsAccepted", COUNT, 1, {"action": "BUY"})
    # THEN nothing is printed, and nothing is kept for a later invocation either
    assert printed(metrics) == []
    assert metrics.documents() == []


def _emf_lines(event: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    out = io.StringIO()
    with redirect_stdout(out):
        response = handler.lambda_handler(event, FakeLambdaContext())
    lines = [json.loads(line) for line in out.getvalue().splitlines() if '"_aws"' in line]
    return response["statusCode"], lines


def _alert(**fields: Any) -> dict[str, Any]:
    return {
        "passphrase": API_KEY,
        "symbol": "NASDAQ:EMFA",
        "action": "buy",
        "source": "luxalgo",
        "timeframe": "240",
        **fields,
    }


def test_the_webhook_prints_one_document_per_request(ingest_stack: IngestStack) -> None:
    # WHEN an alert is accepted, and one is rejected
    accepted = _emf_lines(http_event(body=_alert()))
    rejected = _emf_lines(http_event(body=_alert(action="hold")))
    # THEN each printed one document with its totals and breakdowns
    assert accepted[0] == 202
    (document,) = accepted[1]
    assert {(n, dict(d).get("action")) for n, _, d, _ in extract(document)} >= {
        ("SignalsAccepted", None),
        ("SignalsAccepted", "BUY"),
        ("ValidationLatency", None),
    }
    assert rejected[0] == 400
    (document,) = rejected[1]
    assert {(n, dict(d).get("reason")) for n, _, d, _ in extract(document)} == {
        ("SignalsRejected", None),
        ("SignalsRejected", "validation_failed"),
    }


def test_the_webhook_honours_metrics_disabled(ingest_stack: IngestStack, disabled: None) -> None:
    # GIVEN POWERTOOLS_METRICS_DISABLED=true (the local stack and the drills set it)
    # WHEN alerts are accepted and rejected
    accepted = _emf_lines(http_event(body=_alert(symbol="EMFD")))
    rejected = _emf_lines(http_event(body=_alert(action="hold")))
    # THEN they are answered as usual, and no metric document is printed
    assert (accepted[0], rejected[0]) == (202, 400)
    assert accepted[1] == rejected[1] == []
