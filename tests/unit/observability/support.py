"""What the observability tests compare: dashboards, alarms and the resources the templates make.

Dashboards are read as the deploy script puts them (``${Environment}``, ``${Region}`` and
``${AccountId}`` filled); alarms and resource names come from the CloudFormation templates
rendered with an environment's parameter file (``tests/unit/infra/cfn.py``). Nothing here
imports the application.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

from tests.unit.infra.cfn import REPO_ROOT, load_template, template_names

DASHBOARD_DIR: Final = REPO_ROOT / "dashboards"
DASHBOARDS: Final = ("main", "trading")
ENVIRONMENTS: Final = ("staging", "production")
REGION: Final = "us-east-1"
ACCOUNT: Final = "123456789012"
PLACEHOLDERS: Final = frozenset({"Environment", "Region", "AccountId"})
"""What the deploy script fills in a dashboard (scripts/deploy.py ``dashboard_values``)."""

_PLACEHOLDER: Final = re.compile(r"\$\{([A-Za-z0-9_:.]+)\}")


def dashboard_text(name: str) -> str:
    return (DASHBOARD_DIR / f"{name}.json").read_text(encoding="utf-8")


def placeholders(text: str) -> set[str]:
    return set(_PLACEHOLDER.findall(text))


def render_dashboard(name: str, environment: str, region: str = REGION) -> dict[str, Any]:
    """The dashboard body as put for ``environment`` in ``region``."""
    values = {"Environment": environment, "Region": region, "AccountId": ACCOUNT}
    text = _PLACEHOLDER.sub(lambda m: values[m.group(1)], dashboard_text(name))
    body: dict[str, Any] = json.loads(text)
    return body


@dataclass(frozen=True)
class MetricRef:
    """One metric a dashboard widget or an alarm names."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, Any], ...]
    where: str

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(name for name, _ in self.dimensions)

    def dimension(self, name: str) -> Any:
        return dict(self.dimensions)[name]


def metric_entries(widget: dict[str, Any]) -> Iterator[list[Any]]:
    """The ``metrics`` arrays of a metric widget (raw metrics and expressions)."""
    yield from widget.get("properties", {}).get("metrics", [])


def split_metric(entry: list[Any]) -> tuple[list[str], dict[str, Any]]:
    """``[ns, name, k, v, ..., {options}]`` -> (the strings, the options)."""
    if entry and isinstance(entry[-1], dict):
        return list(entry[:-1]), dict(entry[-1])
    return list(entry), {}


def dashboard_metrics(name: str, environment: str) -> list[MetricRef]:
    """Every raw metric of every metric widget (expressions are not metrics)."""
    refs = []
    for widget in render_dashboard(name, environment)["widgets"]:
        title = widget.get("properties", {}).get("title", "?")
        for entry in metric_entries(widget):
            strings, _ = split_metric(entry)
            if not strings:
                continue  # an expression
            namespace, metric, *pairs = strings
            dims = tuple(zip(pairs[::2], pairs[1::2], strict=True))
            refs.append(MetricRef(namespace, metric, dims, f"dashboards/{name}.json {title!r}"))
    return refs


def widget_titles(name: str) -> set[str]:
    body = render_dashboard(name, "production")
    return {w["properties"]["title"] for w in body["widgets"] if "title" in w["properties"]}


def alarm_arns(name: str, environment: str) -> list[str]:
    """Alarm ARNs a dashboard shows (alarm status widgets and alarm annotations)."""
    arns: list[str] = []
    for widget in render_dashboard(name, environment)["widgets"]:
        properties = widget["properties"]
        arns += properties.get("alarms", [])
        arns += properties.get("annotations", {}).get("alarms", [])
    return arns


# --- templates ------------------------------------------------------------------------------


def rendered(stack: str, environment: str) -> dict[str, Any]:
    result: dict[str, Any] = load_template(stack).rendered(environment)
    return result


def resources(environment: str, resource_type: str) -> list[dict[str, Any]]:
    """Properties of every resource of a type, across every template."""
    found = []
    for stack in template_names():
        for resource in rendered(stack, environment)["Resources"].values():
            if resource["Type"] == resource_type:
                found.append(resource.get("Properties", {}))
    return found


def alarms(environment: str) -> dict[str, dict[str, Any]]:
    """Alarm name -> properties, from monitoring.yaml."""
    return {
        props["AlarmName"]: props
        for props in resources(environment, "AWS::CloudWatch::Alarm")
        if isinstance(props.get("AlarmName"), str)
    }


def alarm_metrics(environment: str) -> list[MetricRef]:
    """Every metric an alarm reads, plain or inside metric math."""
    refs = []
    for name, props in alarms(environment).items():
        where = f"cloudformation/monitoring.yaml {name}"
        if "MetricName" in props:
            dims = tuple((d["Name"], d["Value"]) for d in props.get("Dimensions", []))
            refs.append(MetricRef(props["Namespace"], props["MetricName"], dims, where))
        for query in props.get("Metrics", []):
            if "MetricStat" not in query:
                continue
            metric = query["MetricStat"]["Metric"]
            dims = tuple((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
            refs.append(MetricRef(metric["Namespace"], metric["MetricName"], dims, where))
    return refs


@dataclass(frozen=True)
class Catalog:
    """Names of what the templates create for one environment (the runbooks' contract)."""

    environment: str
    clusters: frozenset[str]
    services: frozenset[str]
    task_families: frozenset[str]
    log_groups: frozenset[str]
    queues: frozenset[str]
    functions: frozenset[str]
    tables: frozenset[str]
    caches: frozenset[str]
    cache_nodes: frozenset[str]
    secrets: frozenset[str]
    alarms: frozenset[str]
    repositories: frozenset[str]
    stacks: frozenset[str]
    topics: frozenset[str]
    ssm_parameters: frozenset[str]
    buses: frozenset[str]
    rules: frozenset[str]
    dashboards: frozenset[str]
    container_insights_clusters: frozenset[str]

    @property
    def scalable_targets(self) -> frozenset[str]:
        return frozenset(f"service/{c}/{s}" for c in self.clusters for s in self.services)


def _names(environment: str, resource_type: str, key: str) -> frozenset[str]:
    return frozenset(
        str(props[key])
        for props in resources(environment, resource_type)
        if isinstance(props.get(key), str)
    )


def _ssm_parameter_names(environment: str) -> frozenset[str]:
    """Parameters templates create, and those parameter files name (created out of band)."""
    names = set(_names(environment, "AWS::SSM::Parameter", "Name"))
    params = json.loads(
        (REPO_ROOT / "cloudformation/parameters" / f"{environment}.json").read_text()
    )
    for stack, values in params.items():
        declared = load_template(stack).parameters
        for key, value in values.items():
            if str(declared.get(key, {}).get("Type", "")).startswith("AWS::SSM::Parameter::Value"):
                names.add(value)
    return frozenset(names)


@cache
def catalog(environment: str) -> Catalog:
    clusters = _names(environment, "AWS::ECS::Cluster", "ClusterName")
    insights = frozenset(
        props["ClusterName"]
        for props in resources(environment, "AWS::ECS::Cluster")
        if {"Name": "containerInsights", "Value": "enabled"} in props.get("ClusterSettings", [])
    )
    caches = _names(environment, "AWS::ElastiCache::ReplicationGroup", "ReplicationGroupId")
    node_count = {
        props["ReplicationGroupId"]: int(props.get("NumCacheClusters", 1))
        for props in resources(environment, "AWS::ElastiCache::ReplicationGroup")
    }
    tables = _names(environment, "AWS::DynamoDB::GlobalTable", "TableName") | _names(
        environment, "AWS::DynamoDB::Table", "TableName"
    )
    return Catalog(
        environment=environment,
        clusters=clusters,
        services=_names(environment, "AWS::ECS::Service", "ServiceName"),
        task_families=_names(environment, "AWS::ECS::TaskDefinition", "Family"),
        log_groups=_names(environment, "AWS::Logs::LogGroup", "LogGroupName"),
        queues=_names(environment, "AWS::SQS::Queue", "QueueName"),
        functions=_names(environment, "AWS::Lambda::Function", "FunctionName"),
        tables=tables,
        caches=caches,
        cache_nodes=frozenset(
            f"{group}-{index:03d}" for group in caches for index in range(1, node_count[group] + 1)
        ),
        secrets=_names(environment, "AWS::SecretsManager::Secret", "Name"),
        alarms=_names(environment, "AWS::CloudWatch::Alarm", "AlarmName"),
        repositories=_names(environment, "AWS::ECR::Repository", "RepositoryName"),
        stacks=frozenset(f"kyperian-{environment}-{name}" for name in template_names()),
        topics=_names(environment, "AWS::SNS::Topic", "TopicName"),
        ssm_parameters=_ssm_parameter_names(environment),
        buses=_names(environment, "AWS::Events::EventBus", "Name"),
        rules=_names(environment, "AWS::Events::Rule", "Name"),
        dashboards=frozenset(f"kyperian-{environment}-{name}" for name in DASHBOARDS),
        container_insights_clusters=insights,
    )


def runbook_dir() -> Path:
    return REPO_ROOT / "runbooks"
