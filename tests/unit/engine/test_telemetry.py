"""The engine's metrics honour ``POWERTOOLS_METRICS_DISABLED``, as Powertools' ``Metrics`` do."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest

from kyperian.engine.telemetry import EngineMetrics


def _emit_some(metrics: EngineMetrics) -> list[str]:
    out = io.StringIO()
    with redirect_stdout(out):
        metrics.duplicate()
        metrics.refused("csrf")
        metrics.order(accepted=True)
    return out.getvalue().splitlines()


@pytest.mark.parametrize(
    ("switches", "printed"),
    [
        ({}, True),
        ({"POWERTOOLS_METRICS_DISABLED": "false"}, True),
        ({"POWERTOOLS_METRICS_DISABLED": "true"}, False),
        ({"POWERTOOLS_DEV": "true"}, False),
        ({"POWERTOOLS_DEV": "true", "POWERTOOLS_METRICS_DISABLED": "false"}, True),
    ],
)
def test_metrics_are_printed_unless_disabled(
    monkeypatch: pytest.MonkeyPatch, switches: dict[str, str], printed: bool
) -> None:
    # GIVEN Powertools' switches set (or not) as a container's environment would
    for name in ("POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV"):
        monkeypatch.delenv(name, raising=False)
    for name, value in switches.items():
        monkeypatch.setenv(name, value)
    # WHEN the engine counts things
    lines = _emit_some(EngineMetrics("test"))
    # THEN it prints one EMF document per metric when enabled, and nothing when disabled
    if printed:
        documents = [json.loads(line) for line in lines]
        assert [d["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] for d in documents] == [
            "DuplicateSignals",
            "EngineRequestsRefused",
            "OrdersSubmitted",
        ]
    else:
        assert lines == []


def test_the_switch_is_read_at_every_emission(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN metrics built while enabled
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    metrics = EngineMetrics("test")
    # WHEN they are disabled afterwards  THEN nothing is printed from then on
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert _emit_some(metrics) == []
