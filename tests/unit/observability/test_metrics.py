"""Every metric a dashboard or an alarm names exists: emitted by our code, or AWS's own.

What the code emits is not read from the source but observed: the webhook handler is run on
each of its routes and outcomes (moto behind it), the engine's telemetry on each of its
events, and the Embedded Metric Format documents they print are parsed. A ``Kyperian``
metric must then match an emitted one by namespace, name and dimension names, with
dimension values the code can produce (the ``service`` of the function serving the route
that emits it, per ``api.yaml``). An ``AWS/*`` (or Container Insights) metric must be one
of the documented metrics of a resource type the templates create, with dimensions naming
those resources.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from moto import mock_aws

from kyperian.domain.decisions import VetoCode
from kyperian.domain.models import Action, Source, Timeframe
from kyperian.engine.telemetry import SERVICE as ENGINE_SERVICE
from kyperian.engine.telemetry import EngineMetrics
from kyperian.fusion import FusionRules, fuse
from kyperian.ingest import handler
from kyperian.ingest.parse import RequestRejected
from kyperian.local.resources import SERVICES as AWS_SERVICES
from tests.aws_resources import API_KEY, create_ingest_resources
from tests.conftest import FakeLambdaContext, rewire
from tests.events.load import http_event
from tests.signal_factory import NOW, make_signal
from tests.unit.observability.support import (
    DASHBOARDS,
    ENVIRONMENTS,
    MetricRef,
    alarm_metrics,
    catalog,
    dashboard_metrics,
    render_dashboard,
    rendered,
    split_metric,
)

NAMESPACE: Final = "Kyperian"
AWS_NAMESPACES: Final = {"ECS/ContainerInsights"}  # plus every AWS/*


@dataclass(frozen=True)
class Emitted:
    """One metric of one EMF document: name, dimension values, unit, and who emitted it."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]
    unit: str
    emitter: str  # a route key ("POST /webhook") or "engine"

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)


def parse_emf(output: str, emitter: str) -> list[Emitted]:
    """The metrics of every EMF document printed in ``output``."""
    found = []
    for line in output.splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            for dimension_set in directive["Dimensions"]:
                dims = tuple((name, str(document[name])) for name in dimension_set)
                for metric in directive["Metrics"]:
                    found.append(
                        Emitted(
                            directive["Namespace"],
                            metric["Name"],
                            dims,
                            metric.get("Unit", "None"),
                            emitter,
                        )
                    )
    return found


# --- what the webhook handler emits -----------------------------------------------------------


def _alert(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "passphrase": API_KEY,
        "symbol": "NASDAQ:OBSV",
        "action": "buy",
        "source": "luxalgo",
        "timeframe": "240",
        "price": 10.5,
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def _bad_base64() -> dict[str, Any]:
    event = http_event(body=_alert())
    event["body"], event["isBase64Encoded"] = "%%% not base64 %%%", True
    return event


def _ingest_requests() -> list[tuple[str, Callable[[], dict[str, Any]], int]]:
    """(route, event factory, expected status): every outcome the handler can answer."""
    mtf = {
        "passphrase": API_KEY,
        "symbol": "OBSM",
        "source": "technicals",
        "signals": [{"timeframe": "1W", "action": "sell"}, {"timeframe": "D", "action": "buy"}],
    }
    return [
        ("POST /webhook", lambda: http_event(body=_alert()), 202),
        ("POST /webhook", lambda: http_event(body=_alert()), 202),  # duplicate delivery
        ("POST /webhook", lambda: http_event(body=_alert(passphrase="wrong")), 401),
        ("POST /webhook", lambda: http_event(body=_alert(action="hold")), 400),
        ("POST /webhook", lambda: http_event(body='{"price": {{close}}}'), 400),
        ("POST /webhook", lambda: http_event(body="x" * 16385), 413),
        ("POST /webhook", lambda: http_event(body=_alert(), content_type="application/xml"), 415),
        ("POST /webhook", _bad_base64, 400),
        ("POST /webhook/mtf", lambda: http_event(path="/webhook/mtf", body=mtf), 202),
        ("POST /webhook/mtf", lambda: http_event(path="/webhook/mtf", body=mtf), 202),  # again
        ("POST /webhook/mtf", lambda: http_event(path="/webhook/mtf", body={"x": 1}), 401),
        ("GET /health", lambda: http_event(method="GET", path="/health", body=None), 200),
    ]


def _call(event: dict[str, Any], route: str) -> tuple[int, list[Emitted]]:
    out = io.StringIO()
    with redirect_stdout(out):
        response = handler.lambda_handler(event, FakeLambdaContext())
    return int(response["statusCode"]), parse_emf(out.getvalue(), route)


@pytest.fixture(scope="module")
def ingest_emitted() -> Iterator[list[Emitted]]:
    """GIVEN the webhook handler run on each route and outcome, its EMF output parsed.

    Module-scoped (the runs take seconds): its own moto account and environment.
    """
    with pytest.MonkeyPatch.context() as patch, mock_aws():
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "KYPERIAN_ENVIRONMENT": "test",
            "POWERTOOLS_METRICS_NAMESPACE": NAMESPACE,
        }.items():
            patch.setenv(name, value)
        patch.delenv("KYPERIAN_AWS_ENDPOINT_URL", raising=False)
        patch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
        session: Any = boto3.session.Session(region_name="us-east-1")
        clients = {name: session.client(name) for name in AWS_SERVICES}
        resources = create_ingest_resources(clients)
        rewire()
        try:
            yield _run_every_outcome(clients, resources.table, patch)
        finally:
            rewire()


def _run_every_outcome(
    clients: dict[str, Any], table: str, patch: pytest.MonkeyPatch
) -> list[Emitted]:
    emitted: list[Emitted] = []
    for route, event, status in _ingest_requests():
        code, metrics = _call(event(), route)
        assert code == status, route
        emitted += metrics
    # behind CloudFront: a request without the origin header is refused (403)
    clients["secretsmanager"].create_secret(
        Name="/kyperian/test/api/origin-secret", SecretString="edge-value"
    )
    patch.setenv("KYPERIAN_ORIGIN_SECRET_ID", "/kyperian/test/api/origin-secret")
    rewire()
    code, metrics = _call(http_event(body=_alert()), "POST /webhook")
    assert code == 403
    emitted += metrics
    patch.delenv("KYPERIAN_ORIGIN_SECRET_ID")
    rewire()
    # publishing fails and so does the undo (the delete is refused): UndoFailed, 503
    patch.setenv("KYPERIAN_EVENT_BUS_NAME", "kyperian-test-missing-bus")
    rewire()
    for client in (handler.wiring().store._client,):  # type: ignore[attr-defined]
        client.meta.events.register_first("before-send.dynamodb.DeleteItem", _refuse)
        client.meta.events.register_first("before-send.dynamodb.TransactWriteItems", _refuse)
    for route, path, body in (
        ("POST /webhook", "/webhook", _alert(symbol="OBSU")),
        ("POST /webhook/mtf", "/webhook/mtf", {**_mtf_body("OBSU"), "passphrase": API_KEY}),
    ):
        code, metrics = _call(http_event(path=path, body=body), route)
        assert code == 503
        emitted += metrics
    patch.delenv("KYPERIAN_EVENT_BUS_NAME")
    rewire()
    # the key rotated: the previous one still works in its grace period, and is counted
    clients["secretsmanager"].put_secret_value(
        SecretId="/kyperian/test/api/key", SecretString="rotated-observability-key"
    )
    rewire()
    for route, path, body in (
        ("POST /webhook", "/webhook", _alert(symbol="OBSR")),
        ("POST /webhook/mtf", "/webhook/mtf", {**_mtf_body("OBSR"), "passphrase": API_KEY}),
    ):
        code, metrics = _call(http_event(path=path, body=body), route)
        assert code == 202
        emitted += metrics
    # a dependency failure on each webhook route: nothing stored, 503
    clients["dynamodb"].delete_table(TableName=table)
    code, metrics = _call(http_event(body=_alert(symbol="OBSX")), "POST /webhook")
    assert code == 503
    emitted += metrics
    mtf = {"passphrase": API_KEY, "symbol": "OBSX", "source": "ai", "signals": [_entry()]}
    code, metrics = _call(http_event(path="/webhook/mtf", body=mtf), "POST /webhook/mtf")
    assert code == 503
    emitted += metrics
    return emitted


def _refuse(request: Any, **kwargs: Any) -> None:
    raise EndpointConnectionError(endpoint_url=request.url)


def _mtf_body(symbol: str) -> dict[str, Any]:
    return {"symbol": symbol, "source": "ai", "signals": [_entry(), {**_entry(), "timeframe": "D"}]}


def _entry() -> dict[str, str]:
    return {"timeframe": "1h", "action": "sell"}


# --- what the engine emits --------------------------------------------------------------------


def engine_emitted() -> list[Emitted]:
    """Every event of the engine's telemetry, on real fused decisions."""
    rules = FusionRules()
    aligned = [
        make_signal(symbol="OBSE", timeframe="1D", action="BUY", age=timedelta(hours=1)),
        make_signal(symbol="OBSE", timeframe="4h", action="STRONG_BUY", age=timedelta(hours=1)),
    ]
    conflicting = [
        make_signal(symbol="OBSV", timeframe="1W", action="SELL", age=timedelta(hours=1)),
        make_signal(symbol="OBSV", timeframe="4h", action="BUY", age=timedelta(hours=1)),
    ]
    traded = fuse(aligned, rules, NOW, symbol="OBSE", trigger=aligned[-1])
    vetoed = fuse(conflicting, rules, NOW, symbol="OBSV", trigger=conflicting[-1])
    assert traded.actionable
    assert vetoed.vetoes
    metrics = EngineMetrics("test")
    out = io.StringIO()
    with redirect_stdout(out):
        metrics.decided(traded, 42.0, degraded=True)
        metrics.decided(vetoed, 12.0, degraded=False)
        metrics.duplicate()
        metrics.poison()
        metrics.failed()
        metrics.order(accepted=True)
        metrics.order(accepted=False)
        metrics.halted("drill")
        metrics.reconciliation(1)
        metrics.schwab_refresh_token_days(4.5)
    return parse_emf(out.getvalue(), "engine")


# --- the code's vocabulary --------------------------------------------------------------------


def _rejection_codes() -> set[str]:
    codes: set[str] = set()
    pending: list[type[RequestRejected]] = [RequestRejected]
    while pending:
        cls = pending.pop()
        codes.add(cls.code)
        pending += cls.__subclasses__()
    return codes


def dimension_domain(metric: str, dimension: str) -> set[str] | None:
    """The values the code can give a dimension (None: not enumerable here)."""
    if dimension == "action":
        return {a.value for a in Action}
    if dimension == "timeframe":
        return {t.value for t in Timeframe}
    if dimension == "source":
        return {s.value for s in Source}
    if dimension == "reason":
        return {v.value for v in VetoCode} if metric == "Vetoes" else _rejection_codes()
    return None


def route_services(environment: str) -> dict[str, str]:
    """Route key -> POWERTOOLS_SERVICE_NAME of the function serving it (api.yaml)."""
    api = rendered("api", environment)["Resources"]
    services = {}
    for resource in api.values():
        if resource["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        target = resource["Properties"]["Target"].removeprefix("integrations/")
        target = target.removeprefix("${").removesuffix("}")
        uri = api[target]["Properties"]["IntegrationUri"]["Fn::GetAtt"][0]
        variables = api[uri]["Properties"]["Environment"]["Variables"]
        services[resource["Properties"]["RouteKey"]] = variables["POWERTOOLS_SERVICE_NAME"]
    return services


@pytest.fixture(scope="module")
def emitted(ingest_emitted: list[Emitted]) -> list[Emitted]:
    return ingest_emitted + engine_emitted()


def service_values(record: Emitted, environment: str) -> str:
    """The ``service`` value this record has once deployed."""
    if record.emitter == "engine":
        return ENGINE_SERVICE
    return route_services(environment)[record.emitter]


# --- Kyperian metrics -------------------------------------------------------------------------


def references(environment: str) -> list[MetricRef]:
    refs = alarm_metrics(environment)
    for name in DASHBOARDS:
        refs += dashboard_metrics(name, environment)
    return refs


def kyperian_problems(ref: MetricRef, emitted: list[Emitted], environment: str) -> list[str]:
    """Why ``ref`` names no metric the code emits (empty when it does)."""
    same = [
        e
        for e in emitted
        if e.namespace == ref.namespace
        and e.name == ref.name
        and e.dimension_names == ref.dimension_names
    ]
    if not same:
        shapes = sorted({tuple(sorted(e.dimension_names)) for e in emitted if e.name == ref.name})
        return [
            f"{ref.where}: {ref.name} {sorted(ref.dimension_names)} not emitted; code: {shapes}"
        ]
    found = []
    for name, value in ref.dimensions:
        if name == "environment":
            if value != environment:
                found.append(f"{ref.where}: environment={value!r}, expected {environment!r}")
        elif name == "service":
            services = {service_values(e, environment) for e in same}
            if value not in services:
                found.append(f"{ref.where}: {ref.name} service={value!r}; emitted by {services}")
        else:
            domain = dimension_domain(ref.name, name)
            if domain is not None and value not in domain:
                found.append(f"{ref.where}: {ref.name} {name}={value!r} not in {sorted(domain)}")
    return found


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_kyperian_metric_named_is_emitted_by_the_code(
    emitted: list[Emitted], environment: str
) -> None:
    # GIVEN the metrics the code emitted, and those the dashboards and alarms name
    refs = [r for r in references(environment) if r.namespace == NAMESPACE]
    assert refs
    # THEN each named one is emitted with the same name, dimensions and possible values
    problems = [p for ref in refs for p in kyperian_problems(ref, emitted, environment)]
    assert problems == []


def test_emitted_metrics_use_one_namespace_and_documented_values(emitted: list[Emitted]) -> None:
    # THEN everything the code emits is in the Kyperian namespace, with service and environment
    assert {e.namespace for e in emitted} == {NAMESPACE}
    assert all({"service", "environment"} <= e.dimension_names for e in emitted)
    assert {dict(e.dimensions)["service"] for e in emitted if e.emitter == "engine"} == {"engine"}
    assert {dict(e.dimensions)["service"] for e in emitted if e.emitter != "engine"} == {
        handler.logger.service
    }
    # AND every dimension value is one the code's vocabulary defines
    for e in emitted:
        for name, value in e.dimensions:
            domain = dimension_domain(e.name, name)
            assert domain is None or value in domain, (e.name, name, value)


def test_every_metric_the_issue_asks_for_is_emitted(emitted: list[Emitted]) -> None:
    # THEN signals, rejections, latency, decisions, vetoes, sizes and degraded mode all exist
    shapes = {(e.name, e.dimension_names - {"service", "environment"}) for e in emitted}
    wanted = {
        ("SignalsAccepted", frozenset()),
        ("SignalsAccepted", frozenset({"action"})),
        ("SignalsAccepted", frozenset({"timeframe"})),
        ("SignalsAccepted", frozenset({"source"})),
        ("SignalsRejected", frozenset({"reason"})),
        ("ValidationLatency", frozenset()),
        ("SignalsProcessed", frozenset()),
        ("DecisionsMade", frozenset({"action"})),
        ("Vetoes", frozenset({"reason"})),
        ("PositionSize", frozenset()),
        ("WebhookToDecisionLatency", frozenset()),
        ("DegradedMode", frozenset()),
    }
    assert wanted <= shapes, wanted - shapes
    # AND every emitted metric is shown somewhere (no metric nobody looks at)
    named = {r.name for env in ENVIRONMENTS for r in references(env)}
    assert {e.name for e in emitted} <= named, {e.name for e in emitted} - named


def test_a_misnamed_metric_is_reported(emitted: list[Emitted]) -> None:
    # GIVEN references the code cannot satisfy
    wrong_name = MetricRef(NAMESPACE, "SignalAccepted", (("service", "engine"),), "test")
    wrong_dims = MetricRef(
        NAMESPACE,
        "SignalsAccepted",
        (("service", "signal-validator"), ("environment", "production"), ("symbol", "AAPL")),
        "test",
    )
    wrong_service = MetricRef(
        NAMESPACE,
        "DegradedMode",
        (("service", "signal-validator"), ("environment", "production")),
        "test",
    )
    wrong_value = MetricRef(
        NAMESPACE,
        "Vetoes",
        (("service", "engine"), ("environment", "production"), ("reason", "unauthorized")),
        "test",
    )
    # THEN each is reported
    for ref in (wrong_name, wrong_dims, wrong_service, wrong_value):
        assert kyperian_problems(ref, emitted, "production"), ref


# --- complete breakdowns on the dashboards ----------------------------------------------------


def _widget_values(dashboard: str, title: str, metric: str, dimension: str) -> set[str]:
    body = render_dashboard(dashboard, "production")
    (widget,) = [w for w in body["widgets"] if w["properties"].get("title") == title]
    values = set()
    for entry in widget["properties"]["metrics"]:
        strings, _ = split_metric(entry)
        if len(strings) >= 2 and strings[1] == metric:
            pairs = dict(zip(strings[2::2], strings[3::2], strict=True))
            if dimension in pairs:
                values.add(pairs[dimension])
    return values


@pytest.mark.parametrize(
    ("dashboard", "title", "metric", "dimension"),
    [
        ("trading", "Signals by action", "SignalsAccepted", "action"),
        ("trading", "Signals by timeframe", "SignalsAccepted", "timeframe"),
        ("trading", "Signals by source", "SignalsAccepted", "source"),
        ("trading", "Decisions by action", "DecisionsMade", "action"),
        ("trading", "Veto rate by reason (% of decisions)", "Vetoes", "reason"),
        ("main", "Rejected requests by reason (4xx)", "SignalsRejected", "reason"),
    ],
)
def test_breakdowns_cover_every_value_the_code_can_emit(
    dashboard: str, title: str, metric: str, dimension: str
) -> None:
    # GIVEN a widget that breaks a metric down by a dimension
    shown = _widget_values(dashboard, title, metric, dimension)
    # THEN it shows every value the code defines, so a new action or reason is never hidden
    assert shown == dimension_domain(metric, dimension)


def test_per_action_signals_sum_both_webhook_functions() -> None:
    # GIVEN the pie of signals by action
    body = render_dashboard("trading", "production")
    (pie,) = [w for w in body["widgets"] if w["properties"].get("title") == "Signals by action"]
    assert pie["properties"]["view"] == "pie"
    services = {
        dict(zip(s[2::2], s[3::2], strict=True))["service"]
        for s, _ in map(split_metric, pie["properties"]["metrics"])
        if s
    }
    # THEN both functions that accept signals are counted
    assert services == {"signal-validator", "mtf-handler"}


# --- AWS metrics ------------------------------------------------------------------------------

AWS_METRICS: Final[dict[str, set[str]]] = {
    # the documented metrics of each service that the dashboards and alarms use
    "AWS/Lambda": {"Duration", "Errors", "Throttles", "Invocations", "ConcurrentExecutions"},
    "AWS/ApiGateway": {"Latency", "IntegrationLatency", "4xx", "5xx", "Count"},
    "AWS/SQS": {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
        "NumberOfMessagesSent",
        "NumberOfMessagesDeleted",
    },
    "AWS/ECS": {"CPUUtilization", "MemoryUtilization"},
    "ECS/ContainerInsights": {"RunningTaskCount", "DesiredTaskCount", "PendingTaskCount"},
    "AWS/ElastiCache": {
        "CacheHitRate",
        "DatabaseMemoryUsagePercentage",
        "Evictions",
        "CurrConnections",
        "EngineCPUUtilization",
    },
    "AWS/DynamoDB": {
        "SuccessfulRequestLatency",
        "ThrottledRequests",
        "ReadThrottleEvents",
        "WriteThrottleEvents",
        "ReplicationLatency",
    },
    "AWS/Events": {"Invocations", "FailedInvocations", "InvocationsSentToDlq", "TriggeredRules"},
}
DYNAMODB_OPERATIONS: Final = {"PutItem", "GetItem", "Query", "TransactWriteItems", "DeleteItem"}


def aws_problems(ref: MetricRef, environment: str) -> list[str]:
    """Why ``ref`` is not an AWS metric of a resource the templates create."""
    names = catalog(environment)
    if ref.name not in AWS_METRICS.get(ref.namespace, set()):
        return [f"{ref.where}: {ref.namespace} {ref.name} is not a metric this project knows"]
    allowed: dict[str, Callable[[Any], bool]] = {
        "FunctionName": lambda v: v in names.functions,
        "QueueName": lambda v: v in names.queues,
        "ClusterName": lambda v: v in names.clusters,
        "ServiceName": lambda v: v in names.services,
        "CacheClusterId": lambda v: v in names.cache_nodes,
        "TableName": lambda v: v in names.tables,
        "Operation": lambda v: v in DYNAMODB_OPERATIONS,
        "ReceivingRegion": lambda v: v == "us-west-2",
        "EventBusName": lambda v: v in names.buses,
        "RuleName": lambda v: v in names.rules,
        "ApiId": lambda v: v == {"Fn::ImportValue": f"{environment}:HttpApiId"},
        "Stage": lambda v: v == environment,
    }
    found = []
    for name, value in ref.dimensions:
        check = allowed.get(name)
        if check is None or not check(value):
            found.append(f"{ref.where}: {ref.namespace} {ref.name} {name}={value!r} unknown")
    if ref.namespace == "ECS/ContainerInsights":
        cluster = ref.dimension("ClusterName")
        if cluster not in names.container_insights_clusters:
            found.append(f"{ref.where}: Container Insights is not enabled on {cluster}")
    return found


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_every_aws_metric_named_belongs_to_a_resource_the_templates_create(
    environment: str,
) -> None:
    # GIVEN the AWS metrics the dashboards and alarms name
    refs = [r for r in references(environment) if r.namespace != NAMESPACE]
    assert refs
    # THEN each is in an AWS namespace, a documented metric, about our resources
    assert all(r.namespace.startswith("AWS/") or r.namespace in AWS_NAMESPACES for r in refs)
    problems = [p for ref in refs for p in aws_problems(ref, environment)]
    assert problems == []


def test_http_api_id_the_alarms_import_is_exported_by_the_api_stack() -> None:
    exports = {
        output.get("Export", {}).get("Name")
        for output in rendered("api", "production").get("Outputs", {}).values()
    }
    assert "production:HttpApiId" in exports


def test_an_aws_metric_of_a_foreign_resource_is_reported() -> None:
    # GIVEN a metric of a queue and a metric name the templates know nothing of
    foreign = MetricRef(
        "AWS/SQS", "ApproximateAgeOfOldestMessage", (("QueueName", "someone-else"),), "t"
    )
    typo = MetricRef(
        "AWS/SQS",
        "ApproximateAgeOfOldestMesage",
        (("QueueName", "kyperian-production-signals"),),
        "t",
    )
    # THEN both are reported
    assert aws_problems(foreign, "production")
    assert aws_problems(typo, "production")


def test_the_bad_base64_scenario_really_is_not_base64() -> None:
    with pytest.raises(binascii.Error):
        base64.b64decode(_bad_base64()["body"], validate=True)
