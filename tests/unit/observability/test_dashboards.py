"""The dashboards are valid CloudWatch dashboard bodies, parameterized, and the only copy.

Validation follows the documented dashboard body structure (CloudWatch API reference,
"Dashboard Body Structure and Syntax"): a ``widgets`` array; each widget has ``type``, a
position on the 24-column grid and ``properties``; metric widgets have a ``region`` and a
``metrics`` array (or an alarm annotation), each metric being
``[Namespace, MetricName, DimName, DimValue, ..., {rendering options}]`` or one expression
object; metric ids are unique and every id an expression reads is defined. The deploy script
fills ``${Environment}``, ``${Region}`` and ``${AccountId}`` and nothing else.
"""

from __future__ import annotations

import re
from typing import Any, Final

import pytest

from tests.unit.infra.cfn import template_names
from tests.unit.observability.support import (
    DASHBOARDS,
    PLACEHOLDERS,
    alarm_arns,
    catalog,
    dashboard_text,
    metric_entries,
    placeholders,
    render_dashboard,
    split_metric,
)

WIDGET_TYPES: Final = {"metric", "text", "log", "alarm", "explorer"}
VIEWS: Final = {"timeSeries", "singleValue", "gauge", "bar", "pie"}
STATS: Final = re.compile(
    r"^(SampleCount|Average|Sum|Minimum|Maximum|IQM|p\d{1,2}(\.\d+)?|p100|tm\d{1,2}|tc\d{1,2}|ts\d{1,2}|wm\d{1,2})$"
)
METRIC_OPTIONS: Final = {
    "accountId", "color", "id", "label", "period", "region", "stat", "visible", "yAxis",
}  # fmt: skip
EXPRESSION_KEYS: Final = {
    "expression",
    "id",
    "label",
    "color",
    "visible",
    "yAxis",
    "period",
    "region",
}
METRIC_PROPERTIES: Final = {
    "accountId", "annotations", "end", "legend", "liveData", "metrics", "period", "region",
    "setPeriodToTimeRange", "singleValueFullPrecision", "sparkline", "stacked", "start", "stat",
    "title", "view", "yAxis", "labels", "table", "trend",
}  # fmt: skip
METRIC_ID: Final = re.compile(r"^[a-z][a-zA-Z0-9_]*$")
EXPRESSION_IDS: Final = re.compile(r"\b([a-z][a-zA-Z0-9_]*)\b")
FUNCTIONS: Final = {"fill", "if", "and", "or", "sum", "avg", "max", "min", "abs", "rate", "diff"}


def _widgets(name: str) -> list[dict[str, Any]]:
    widgets: list[dict[str, Any]] = render_dashboard(name, "production")["widgets"]
    return widgets


@pytest.mark.parametrize("name", DASHBOARDS)
def test_only_the_deploy_scripts_placeholders_are_used(name: str) -> None:
    # GIVEN the dashboard source
    # THEN it is parameterized by environment and region (and the account for alarm ARNs) only
    used = placeholders(dashboard_text(name))
    assert {"Environment", "Region"} <= used
    assert used <= PLACEHOLDERS
    # AND no environment, region or account is written in it
    text = dashboard_text(name)
    assert not re.search(r"kyperian-(staging|production)|us-(east|west)-\d|\d{12}", text)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_body_structure(name: str) -> None:
    # GIVEN the dashboard as the deploy script puts it
    body = render_dashboard(name, "production")
    # THEN it has the documented top-level shape
    assert set(body) <= {"widgets", "start", "end", "periodOverride", "variables"}
    assert 0 < len(body["widgets"]) <= 500
    assert body.get("periodOverride", "auto") in {"auto", "inherit"}
    for widget in body["widgets"]:
        title = widget.get("properties", {}).get("title", widget["type"])
        # AND every widget has a type, a place on the 24-column grid and properties
        assert widget["type"] in WIDGET_TYPES, title
        assert 0 <= widget["x"] <= 23, title
        assert widget["y"] >= 0, title
        assert 1 <= widget["width"] <= 24, title
        assert 1 <= widget["height"] <= 1000, title
        assert widget["x"] + widget["width"] <= 24, title
        assert isinstance(widget["properties"], dict), title


@pytest.mark.parametrize("name", DASHBOARDS)
def test_widgets_do_not_overlap(name: str) -> None:
    taken: dict[tuple[int, int], str] = {}
    for widget in _widgets(name):
        title = widget["properties"].get("title", widget["type"])
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in taken, f"{title!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = title


@pytest.mark.parametrize("name", DASHBOARDS)
def test_metric_widgets_are_well_formed(name: str) -> None:
    for widget in (w for w in _widgets(name) if w["type"] == "metric"):
        properties = widget["properties"]
        title = properties["title"]
        # GIVEN a metric widget: THEN a title, its region, known properties and a valid view
        assert properties["region"] == "us-east-1", title
        assert set(properties) <= METRIC_PROPERTIES, (title, set(properties) - METRIC_PROPERTIES)
        assert properties.get("view", "timeSeries") in VIEWS, title
        if "stat" in properties:
            assert STATS.match(properties["stat"]), title
        if "period" in properties:
            assert properties["period"] % 60 == 0, title
        # AND metrics, or exactly one alarm annotation instead
        metrics = list(metric_entries(widget))
        alarms = properties.get("annotations", {}).get("alarms", [])
        assert bool(metrics) != bool(alarms), title
        assert len(alarms) <= 1, title
        assert len(metrics) <= 100, title
        _check_metrics(title, metrics)


def _check_metrics(title: str, metrics: list[list[Any]]) -> None:
    ids: set[str] = set()
    expressions: list[str] = []
    for entry in metrics:
        strings, options = split_metric(entry)
        if not strings:
            # an expression: one object with an id and a label
            assert set(options) <= EXPRESSION_KEYS, (title, entry)
            assert "expression" in options, (title, entry)
            assert options.get("label"), (title, entry)
            expressions.append(options["expression"])
        else:
            # a metric: namespace, name, then name/value pairs; no "." shorthand
            assert len(strings) >= 2, (title, entry)
            assert len(strings) % 2 == 0, (title, entry)
            assert "." not in strings, (title, entry)
            assert set(options) <= METRIC_OPTIONS, (title, entry)
            if "stat" in options:
                assert STATS.match(options["stat"]), (title, entry)
        if "id" in options:
            assert METRIC_ID.match(options["id"]), (title, options["id"])
            assert options["id"] not in ids, (title, options["id"])
            ids.add(options["id"])
    for expression in expressions:
        referenced = set(EXPRESSION_IDS.findall(expression)) - FUNCTIONS
        assert referenced <= ids, (title, expression, referenced - ids)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_log_and_alarm_widgets_name_what_exists(name: str) -> None:
    # GIVEN the log groups and alarms the templates create
    for environment in ("staging", "production"):
        names = catalog(environment)
        body = render_dashboard(name, environment)
        for widget in body["widgets"]:
            properties = widget["properties"]
            if widget["type"] == "log":
                # THEN every log query reads existing log groups, in the dashboard's region
                sources = re.findall(r"SOURCE '([^']+)'", properties["query"])
                assert sources, properties["query"]
                assert set(sources) <= names.log_groups, sources
                assert properties["region"] == "us-east-1"
            if widget["type"] == "alarm":
                assert 0 < len(properties["alarms"]) <= 100
        # AND every alarm shown is one monitoring.yaml defines
        shown = {arn.rsplit(":", 1)[-1] for arn in alarm_arns(name, environment)}
        assert shown <= names.alarms, shown - names.alarms
        prefix = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:kyperian-{environment}-"
        assert all(a.startswith(prefix) for a in alarm_arns(name, environment))


def test_main_dashboard_shows_every_alarm() -> None:
    # THEN on-call sees the state of all alarms at the top of the main dashboard
    shown = {arn.rsplit(":", 1)[-1] for arn in alarm_arns("main", "production")}
    assert shown == catalog("production").alarms


def test_no_dashboard_is_defined_in_a_template() -> None:
    # GIVEN every template: THEN none carries a dashboard body (dashboards/*.json is the source)
    from tests.unit.observability.support import rendered

    for stack in template_names():
        types = {r["Type"] for r in rendered(stack, "production")["Resources"].values()}
        assert "AWS::CloudWatch::Dashboard" not in types, stack


def test_the_validator_rejects_a_broken_widget() -> None:
    # GIVEN an expression reading an undefined id and a duplicated id
    broken = [
        ["Kyperian", "SignalsAccepted", "service", "engine", {"id": "a"}],
        ["Kyperian", "SignalsRejected", "service", "engine", {"id": "a"}],
    ]
    # THEN the checks used above fail on it
    with pytest.raises(AssertionError):
        _check_metrics("broken", broken)
    with pytest.raises(AssertionError):
        _check_metrics("broken", [[{"expression": "FILL(x, 0)", "label": "x", "id": "y"}]])
