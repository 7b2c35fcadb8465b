"""Deploy one environment's CloudFormation stacks, in dependency order, through change sets.

The one deploy path, used by ``.github/workflows/deploy.yml`` and by hand, as
``kyperian deploy apply ...`` or ``python scripts/deploy.py ...`` (the same arguments). For
every stack the environment's parameter file names (``cloudformation/parameters/<env>.json``,
an object per stack), in the order below, it creates a change set, waits for it, prints the
changes,
executes it and waits for the stack, printing its events. A change set with nothing to change
is deleted and the stack skipped, so a re-run is a no-op. Every create/update carries
CloudFormation rollback triggers - the alarms ``monitoring.yaml`` flags as such - so an
update that sets one off during the operation or the monitoring period after it rolls itself
back. Finally the dashboards in ``dashboards/*.json`` are put, with their placeholders filled.

What it must never do: deploy the ``cicd`` bootstrap stack (the roles the pipeline itself runs
with) unless ``--bootstrap`` says an administrator is at the keyboard; carry on after a stack
failed; start an update while a rollback-trigger alarm is already firing (it would roll back
at once and hide the cause) unless ``--allow-alarming`` says this deploy is the fix; deploy
production when its alarms reach no one (``monitoring.AlertEmail`` empty in the parameter file),
or a production DR deploy whose notices topic would not e-mail the primary's ``NoticeEmail``.

Usage::

    python scripts/deploy.py --environment staging --region us-east-1 \\
        --image-tag "$GITHUB_SHA" --lambda-s3-uri s3://bucket/lambda/<sha>.zip
    python scripts/deploy.py --environment production --dry-run         # print the plan only
    python scripts/deploy.py --environment production --region us-west-2 \\
        --parameters cloudformation/parameters/production-dr.json      # the DR region
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
import yaml
from botocore.exceptions import BotoCoreError, ClientError

from kyperian.ops.parameters import ParameterFile, notice_subscriber_problem

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_cloudformation.type_defs import ParameterTypeDef, RollbackTriggerTypeDef
    from mypy_boto3_cloudwatch import CloudWatchClient

ROOT: Final = Path(__file__).resolve().parents[3]
TEMPLATES: Final = ROOT / "cloudformation"
DASHBOARDS: Final = ROOT / "dashboards"
PROJECT: Final = "kyperian"
ENVIRONMENTS: Final = ("staging", "production")

# CloudFormation limits this script works within.
MAX_TEMPLATE_BODY: Final = 51_200
MAX_ROLLBACK_TRIGGERS: Final = 5
MAX_MONITORING_MINUTES: Final = 180
CAPABILITIES: Final = ("CAPABILITY_IAM", "CAPABILITY_NAMED_IAM")

NO_CHANGES: Final = ("didn't contain changes", "No updates are to be performed")
IN_PROGRESS_SUFFIX: Final = "_IN_PROGRESS"
SUCCEEDED: Final = frozenset({"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"})
# Statuses from which a new change set cannot start; each needs a human first.
BLOCKED: Final = {
    "CREATE_FAILED": "its creation failed with rollback disabled: delete the stack, then deploy",
    "ROLLBACK_COMPLETE": "its creation failed and was rolled back: delete the stack, then deploy",
    "ROLLBACK_FAILED": "its creation failed and so did the rollback: delete the stack",
    "UPDATE_ROLLBACK_FAILED": "an update rollback failed: run continue-update-rollback first",
    "DELETE_FAILED": "a delete failed: finish deleting it first",
}


class DeployError(Exception):
    """The deploy cannot go on; the message says what happened and what to do."""


# --- the stacks ------------------------------------------------------------------------------


@dataclass(frozen=True)
class StackSpec:
    """One stack of the environment and what the deploy feeds it besides the parameter file."""

    key: str
    region: str | None = None
    """A fixed region (CloudFront/WAF-scope resources live in us-east-1); None = the deploy's."""
    bootstrap: bool = False
    """Deployed by an administrator with ``--bootstrap`` only, never by the pipeline."""
    image: bool = False
    """Takes the engine image tag (parameter ``ImageTag``)."""
    lambda_code: bool = False
    """Takes the Lambda package location (``CodeS3Bucket``/``CodeS3Key``)."""
    serves_traffic: bool = False
    """Changes what answers requests: watched by the alarms for a while after the update."""

    @property
    def template(self) -> Path:
        return TEMPLATES / f"{self.key}.yaml"


# The deploy order of docs/architecture.md: each stack imports only exports of stacks above it
# (checked by check_import_order), dr needs api's origin targets, edge needs dr's origin
# record, and monitoring precedes compute (the ECS service's deployment alarms are monitoring's).
STACKS: Final = (
    StackSpec("cicd", bootstrap=True),
    StackSpec("network"),
    StackSpec("config"),
    StackSpec("data"),
    StackSpec("messaging"),
    StackSpec("api", lambda_code=True, serves_traffic=True),
    StackSpec("dr"),
    StackSpec("edge", region="us-east-1", serves_traffic=True),
    StackSpec("monitoring"),
    StackSpec("compute", image=True, serves_traffic=True),
)
SPECS: Final = {spec.key: spec for spec in STACKS}
MONITORING_STACK: Final = "monitoring"
DR_STACK: Final = "dr"


def stack_name(environment: str, key: str) -> str:
    return f"{PROJECT}-{environment}-{key}"


# --- templates -------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that reads CloudFormation short forms (``!Ref``, ``!Sub``...) as long forms."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix in {"Ref", "Condition"}:
        return {suffix: value}
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)  # type: ignore[no-untyped-call]


def compact_template(body: str) -> str:
    """``body`` (YAML or JSON) as compact JSON: the same template, without comments or spaces."""
    loader = _CfnLoader(body)
    try:
        data = loader.get_single_data()
    finally:
        loader.dispose()  # type: ignore[no-untyped-call]
    return json.dumps(data, separators=(",", ":"), sort_keys=False)


def load_template(path: Path) -> dict[str, Any]:
    try:
        loader = _CfnLoader(path.read_text(encoding="utf-8"))  # a SafeLoader: plain data only
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()  # type: ignore[no-untyped-call]
    except (OSError, yaml.YAMLError) as exc:
        raise DeployError(f"cannot read template {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise DeployError(f"{path} is not a CloudFormation template")
    return data


def _render_environment(value: Any, environment: str) -> str | None:
    """A name built with ``!Sub ...${EnvironmentName}...`` as a string, if it is one."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        text = sub[0] if isinstance(sub, list) else sub
        if isinstance(text, str):
            rendered = text.replace("${EnvironmentName}", environment)
            return None if "${" in rendered else rendered
    return None


def template_exports(template: Mapping[str, Any], environment: str) -> set[str]:
    names = set()
    for output in (template.get("Outputs") or {}).values():
        export = output.get("Export") if isinstance(output, dict) else None
        if isinstance(export, dict):
            name = _render_environment(export.get("Name"), environment)
            if name:
                names.add(name)
    return names


def template_imports(template: Mapping[str, Any], environment: str) -> set[str]:
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "Fn::ImportValue":
                    name = _render_environment(value, environment)
                    if name:
                        names.add(name)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(template.get("Resources"))
    walk(template.get("Outputs"))
    return names


def check_import_order(
    templates: Mapping[str, Mapping[str, Any]], environment: str = "staging"
) -> None:
    """Every import must be exported by a stack earlier in ``STACKS``.

    ``templates`` maps stack keys to templates; keys follow ``STACKS`` order.
    """
    exported: dict[str, str] = {}
    for spec in STACKS:
        template = templates.get(spec.key)
        if template is None:
            continue
        for name in sorted(template_imports(template, environment)):
            if name not in exported:
                raise DeployError(
                    f"stack {spec.key} imports {name}, which no stack before it exports: "
                    "fix the order in scripts/deploy.py STACKS or the template"
                )
        for name in template_exports(template, environment):
            exported[name] = spec.key


def alarm_names(monitoring: Mapping[str, Any], environment: str) -> list[str]:
    """The rollback-trigger alarms of ``monitoring.yaml``, named for ``environment``.

    An alarm is one when its template flags it (``Metadata: {Kyperian: {RollbackTrigger:
    true}}``); alarms meant for on-call only (queue age, rejections...) are not, so they never
    roll a deploy back.
    """
    names = []
    for resource in (monitoring.get("Resources") or {}).values():
        if not isinstance(resource, dict) or resource.get("Type") not in {
            "AWS::CloudWatch::Alarm",
            "AWS::CloudWatch::CompositeAlarm",
        }:
            continue
        flags = (resource.get("Metadata") or {}).get("Kyperian") or {}
        if flags.get("RollbackTrigger") is not True:
            continue
        name = _render_environment((resource.get("Properties") or {}).get("AlarmName"), environment)
        if name:
            names.append(name)
    return names


# --- parameter files -------------------------------------------------------------------------


def load_parameter_file(path: Path) -> dict[str, dict[str, str]]:
    """``{stack key: {ParameterKey: value}}`` from a parameter file.

    Accepts an object per stack (``{"network": {"FlowLogRetentionDays": "30"}}``) or, per
    stack, CloudFormation's list form (``[{"ParameterKey": ..., "ParameterValue": ...}]``).
    Values are strings as CloudFormation wants them (numbers and booleans are converted).
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeployError(f"cannot read parameter file {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise DeployError(f"{path}: expected an object of stacks, got {type(raw).__name__}")
    stacks: dict[str, dict[str, str]] = {}
    for key, entry in raw.items():
        if key not in SPECS:
            raise DeployError(
                f"{path}: unknown stack {key!r}; known stacks: {', '.join(SPECS)} "
                "(add a new stack to STACKS in scripts/deploy.py, in dependency order)"
            )
        stacks[key] = _parameters_of(path, key, entry)
    return stacks


_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def alarm_subscriber_problem(
    environment: str, parameters: Mapping[str, Mapping[str, str]]
) -> str | None:
    """Why the alarms of this deploy would reach no one, or None when they reach someone.

    The subscriber is ``monitoring.AlertEmail`` of the parameter file (the SNS topic's email
    subscription). A production deploy refuses to run without one; other environments warn.
    """
    monitoring = parameters.get(MONITORING_STACK)
    if monitoring is None:
        return f"the parameter file has no {MONITORING_STACK} stack, so no alarm subscriber"
    email = monitoring.get("AlertEmail", "").strip()
    if not email:
        return (
            f"{MONITORING_STACK}.AlertEmail is empty: the {environment} alarms would page no one. "
            "Set it to the on-call address (cloudformation/parameters/README.md)"
        )
    if not _EMAIL.fullmatch(email):
        return f"{MONITORING_STACK}.AlertEmail {email!r} is not an email address"
    return None


def check_alarm_subscriber(environment: str, parameters: Mapping[str, Mapping[str, str]]) -> None:
    """Refuse a production deploy whose alarms reach no one (issue 17, "alarms reach someone").

    Raises
    ------
    DeployError
        For production, when ``alarm_subscriber_problem`` finds a problem.
    """
    problem = alarm_subscriber_problem(environment, parameters)
    if problem and environment == "production":
        raise DeployError(f"refusing a production deploy: {problem}")
    if problem:
        print(f"warning: {problem}", file=sys.stderr, flush=True)


def notice_subscriber_of(path: Path, parameters: Mapping[str, Mapping[str, str]]) -> str | None:
    """For a DR file, why its notices topic would not e-mail the primary file's address.

    ``kyperian.ops.parameters.notice_subscriber_problem`` on this file and the primary file
    beside it (``production.json`` for ``production-dr.json``); None for a primary file.
    """
    primary = path.with_name(f"{path.stem.removesuffix('-dr')}{path.suffix}")
    if not path.stem.endswith("-dr") or not primary.is_file():
        return None
    return notice_subscriber_problem(
        ParameterFile(path.stem, {k: dict(v) for k, v in parameters.items()}),
        ParameterFile(primary.stem, load_parameter_file(primary)),
    )


def _parameters_of(path: Path, key: str, entry: Any) -> dict[str, str]:
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(entry, dict):
        pairs = entry.items()
    elif isinstance(entry, list) and all(
        isinstance(p, dict) and "ParameterKey" in p and "ParameterValue" in p for p in entry
    ):
        pairs = ((p["ParameterKey"], p["ParameterValue"]) for p in entry)
    else:
        raise DeployError(
            f"{path}: stack {key!r} must map parameter names to values "
            "(or be a list of ParameterKey/ParameterValue objects)"
        )
    parameters: dict[str, str] = {}
    for name, raw in pairs:
        value = ("true" if raw else "false") if isinstance(raw, bool) else raw
        if not isinstance(name, str) or not isinstance(value, str | int | float):
            raise DeployError(f"{path}: stack {key!r} parameter {name!r} must be a plain value")
        parameters[name] = str(value)
    return parameters


# --- the plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Artifacts:
    """What this deploy ships: the engine image tag and the Lambda package in S3."""

    image_tag: str | None = None
    lambda_bucket: str | None = None
    lambda_key: str | None = None

    @classmethod
    def from_uri(cls, image_tag: str | None, s3_uri: str | None) -> Artifacts:
        if s3_uri is None:
            return cls(image_tag=image_tag)
        match = re.fullmatch(r"s3://([^/]+)/(.+)", s3_uri)
        if not match:
            raise DeployError(f"--lambda-s3-uri must look like s3://bucket/key, got {s3_uri!r}")
        return cls(image_tag=image_tag, lambda_bucket=match.group(1), lambda_key=match.group(2))


@dataclass(frozen=True)
class Step:
    """One stack to deploy: where, from which template, with which parameters."""

    spec: StackSpec
    name: str
    region: str
    template_body: str
    parameters: dict[str, str]
    """From the file and the artifacts; what CloudFormation gets (plus ``keep_previous``)."""
    keep_previous: tuple[str, ...] = ()
    """Artifact parameters not given this time: an existing stack keeps its values."""
    template_parameters: frozenset[str] = frozenset()

    def cfn_parameters(self, *, exists: bool) -> list[ParameterTypeDef]:
        missing = [p for p in self.keep_previous if not exists]
        if missing:
            raise DeployError(
                f"{self.name} does not exist yet and needs {', '.join(missing)}: pass "
                "--image-tag / --lambda-s3-uri"
            )
        parameters: list[ParameterTypeDef] = [
            {"ParameterKey": k, "ParameterValue": v} for k, v in sorted(self.parameters.items())
        ]
        parameters += [{"ParameterKey": k, "UsePreviousValue": True} for k in self.keep_previous]
        return parameters


@dataclass(frozen=True)
class Plan:
    environment: str
    region: str
    primary_region: str
    steps: tuple[Step, ...]
    alarm_names: tuple[str, ...]
    monitoring_minutes: int
    dashboards: tuple[Path, ...] = ()
    dr_region: str | None = None
    """The DR region (config/data DrRegion); its api stack fills dr's secondary target."""

    def monitoring_for(self, step: Step) -> int:
        return self.monitoring_minutes if step.spec.serves_traffic else 0

    def describe(self) -> str:
        lines = [
            f"Deploy plan: environment {self.environment}, region {self.region} "
            f"(primary {self.primary_region})",
        ]
        for number, step in enumerate(self.steps, 1):
            lines.append(f"  {number}. {step.name} [{step.region}] <- {step.spec.template.name}")
            for key, value in sorted(step.parameters.items()):
                lines.append(f"       {key} = {value}")
            for key in step.keep_previous:
                lines.append(f"       {key} = (previous value)")
            if step.region == self.region and self.alarm_names:
                lines.append(
                    f"       rollback triggers: {len(self.alarm_names)} alarms, "
                    f"monitoring {self.monitoring_for(step)} min after the update"
                )
        if self.alarm_names:
            lines.append("  Rollback-trigger alarms (those that exist when each stack deploys):")
            lines += [f"    - {name}" for name in self.alarm_names]
        for path in self.dashboards:
            lines.append(f"  Dashboard {dashboard_name(self, path)} <- {path.name}")
        return "\n".join(lines)


def dashboard_name(plan: Plan, path: Path) -> str:
    suffix = "" if plan.region == plan.primary_region else f"-{plan.region}"
    return f"{PROJECT}-{plan.environment}-{path.stem}{suffix}"


def build_plan(
    *,
    environment: str,
    region: str,
    parameters: Mapping[str, Mapping[str, str]],
    artifacts: Artifacts,
    only: Sequence[str] = (),
    bootstrap: bool = False,
    monitoring_minutes: int = 10,
    rollback_alarms: Sequence[str] | None = None,
    dashboards_dir: Path = DASHBOARDS,
    templates_dir: Path = TEMPLATES,
) -> Plan:
    """Order and check everything a deploy will do, without calling AWS."""
    if environment not in ENVIRONMENTS:
        raise DeployError(f"unknown environment {environment!r}; one of {', '.join(ENVIRONMENTS)}")
    if not 0 <= monitoring_minutes <= MAX_MONITORING_MINUTES:
        raise DeployError(f"--monitoring-minutes must be 0..{MAX_MONITORING_MINUTES}")
    unknown = [key for key in only if key not in SPECS]
    if unknown:
        raise DeployError(f"unknown stack(s) {', '.join(unknown)}; known: {', '.join(SPECS)}")
    not_in_file = [key for key in only if key not in parameters]
    if not_in_file:
        raise DeployError(
            f"stack(s) {', '.join(not_in_file)} have no entry in the parameter file, "
            "so they do not belong to this environment/region"
        )

    templates = {
        spec.key: load_template(templates_dir / f"{spec.key}.yaml")
        for spec in STACKS
        if spec.key in parameters
    }
    check_import_order(templates, environment)

    steps = []
    for spec in STACKS:
        if spec.key not in parameters or (only and spec.key not in only):
            continue
        if spec.bootstrap and not bootstrap:
            continue
        steps.append(
            _step(
                spec,
                environment=environment,
                region=spec.region or region,
                file_parameters=parameters[spec.key],
                template=templates[spec.key],
                template_body=(templates_dir / f"{spec.key}.yaml").read_text(encoding="utf-8"),
                artifacts=artifacts,
            )
        )
    if not steps:
        raise DeployError("nothing to deploy: no stack of the parameter file was selected")

    if rollback_alarms is None:
        monitoring = templates.get(MONITORING_STACK)
        names = alarm_names(monitoring, environment) if monitoring else []
    else:
        names = list(rollback_alarms)
    if len(names) > MAX_ROLLBACK_TRIGGERS:
        raise DeployError(
            f"{len(names)} alarms but CloudFormation takes at most {MAX_ROLLBACK_TRIGGERS} "
            "rollback triggers: choose them with --rollback-alarms (or use a composite alarm)"
        )
    primary = next(
        (p["PrimaryRegion"] for p in parameters.values() if p.get("PrimaryRegion")), region
    )
    dashboards = tuple(sorted(dashboards_dir.glob("*.json"))) if dashboards_dir.is_dir() else ()
    dr_region = next((p["DrRegion"] for p in parameters.values() if p.get("DrRegion")), None)
    return Plan(
        environment=environment,
        region=region,
        primary_region=primary,
        steps=tuple(steps),
        alarm_names=tuple(names),
        monitoring_minutes=monitoring_minutes,
        dashboards=dashboards,
        dr_region=dr_region,
    )


def _step(
    spec: StackSpec,
    *,
    environment: str,
    region: str,
    file_parameters: Mapping[str, str],
    template: Mapping[str, Any],
    template_body: str,
    artifacts: Artifacts,
) -> Step:
    name = stack_name(environment, spec.key)
    declared = template.get("Parameters") or {}
    unknown = sorted(set(file_parameters) - set(declared))
    if unknown:
        raise DeployError(
            f"{name}: parameter(s) {', '.join(unknown)} are not in {spec.template.name}"
        )
    given_env = file_parameters.get("EnvironmentName")
    if given_env is not None and given_env != environment:
        raise DeployError(
            f"{name}: the parameter file says EnvironmentName={given_env}, "
            f"but this deploy is for {environment} (wrong parameter file?)"
        )

    parameters = dict(file_parameters)
    if "EnvironmentName" in declared:
        parameters["EnvironmentName"] = environment
    keep_previous: list[str] = []

    def feed(key: str, value: str | None) -> None:
        if key not in declared:
            raise DeployError(f"{name}: {spec.template.name} has no parameter {key}")
        if value is not None:
            parameters[key] = value
        elif key not in parameters:
            keep_previous.append(key)

    if spec.image:
        feed("ImageTag", artifacts.image_tag)
    if spec.lambda_code:
        feed("CodeS3Bucket", artifacts.lambda_bucket)
        feed("CodeS3Key", artifacts.lambda_key)

    for key, declaration in declared.items():
        has_default = isinstance(declaration, dict) and "Default" in declaration
        if key not in parameters and key not in keep_previous and not has_default:
            raise DeployError(
                f"{name}: parameter {key} has no default and no value in the parameter file"
            )
    return Step(
        spec=spec,
        name=name,
        region=region,
        template_body=template_body,
        parameters=parameters,
        keep_previous=tuple(keep_previous),
        template_parameters=frozenset(declared),
    )


# --- dashboards ------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z0-9_:.]+)\}")


def render_dashboard(body: str, values: Mapping[str, str], source: str) -> str:
    """Fill ``${Name}`` placeholders; an unknown one is an error, never left in place."""
    missing: set[str] = set()

    def fill(match: re.Match[str]) -> str:
        key = match.group(1)
        if key in values:
            return values[key]
        missing.add(key)
        return match.group(0)

    rendered = _PLACEHOLDER.sub(fill, body)
    if missing:
        raise DeployError(
            f"{source}: unknown placeholder(s) {', '.join(sorted(missing))}; known: "
            f"{', '.join(sorted(values))}"
        )
    try:
        json.loads(rendered)
    except ValueError as exc:
        raise DeployError(f"{source}: not valid JSON after substitution: {exc}") from exc
    return rendered


def dashboard_values(
    plan: Plan, account_id: str, outputs: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    values = {
        "Environment": plan.environment,
        "EnvironmentName": plan.environment,
        "Region": plan.region,
        "AWS::Region": plan.region,
        "AccountId": account_id,
        "AWS::AccountId": account_id,
    }
    for key, stack_outputs in outputs.items():
        for output, value in stack_outputs.items():
            values[f"{key}.{output}"] = value
    return values


# --- talking to AWS --------------------------------------------------------------------------


class Aws:
    """Clients per region, all from one session (and one endpoint, e.g. moto's)."""

    def __init__(self, session: boto3.Session, endpoint_url: str | None = None) -> None:
        self._session = session
        self._endpoint_url = endpoint_url

    def cloudformation(self, region: str) -> CloudFormationClient:
        return self._session.client(
            "cloudformation", region_name=region, endpoint_url=self._endpoint_url
        )

    def cloudwatch(self, region: str) -> CloudWatchClient:
        return self._session.client(
            "cloudwatch", region_name=region, endpoint_url=self._endpoint_url
        )

    def client(self, service: str, region: str) -> Any:
        """A client for which the project carries no type stubs (s3, ecr, sts)."""
        return self._session.client(  # type: ignore[call-overload]
            service, region_name=region, endpoint_url=self._endpoint_url
        )


@dataclass
class StackResult:
    name: str
    outcome: str  # created | updated | unchanged
    changes: int = 0
    outputs: dict[str, str] = field(default_factory=dict)


Printer = Callable[[str], None]


def _print(line: str) -> None:
    print(line, flush=True)


def _error_text(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    return f"{error.get('Code', 'Error')}: {error.get('Message', str(exc))}"


def describe_stack(cfn: Any, name: str) -> dict[str, Any] | None:
    """The stack's description, or None when it does not exist (any other error raises)."""
    try:
        stacks = cfn.describe_stacks(StackName=name)["Stacks"]
    except ClientError as exc:
        if "does not exist" in _error_text(exc):
            return None
        raise
    return dict(stacks[0]) if stacks else None


class Deployer:
    """Runs a ``Plan`` against AWS: change sets, waits, events, rollback triggers, dashboards."""

    def __init__(
        self,
        plan: Plan,
        aws: Aws,
        *,
        role_arn: str | None = None,
        allow_alarming: bool = False,
        poll_seconds: float = 5.0,
        timeout_minutes: float = 90.0,
        change_set_name: str | None = None,
        template_bucket: str | None = None,
        out: Printer = _print,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.plan = plan
        self.aws = aws
        self.role_arn = role_arn
        self.allow_alarming = allow_alarming
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_minutes * 60
        self.change_set_name = change_set_name or "deploy-" + datetime.now(UTC).strftime(
            "%Y%m%d%H%M%S"
        )
        self.template_bucket = template_bucket
        self.out = out
        self.sleep = sleep
        self.outputs: dict[str, dict[str, str]] = {}

    # -- the whole run --

    def run(self) -> list[StackResult]:
        self.preflight()
        results = []
        for step in self.plan.steps:
            results.append(self.deploy(step))
            self.outputs[step.spec.key] = results[-1].outputs
        self.put_dashboards()
        return results

    def preflight(self) -> None:
        """Fail before touching any stack when the artifacts this deploy names are missing."""
        for step in self.plan.steps:
            if step.spec.image and "ImageTag" in step.parameters:
                self._check_image(step)
            if step.spec.lambda_code and "CodeS3Key" in step.parameters:
                self._check_package(step)

    def _check_image(self, step: Step) -> None:
        repository = f"{PROJECT}-{self.plan.environment}-engine"
        tag = step.parameters["ImageTag"]
        ecr = self.aws.client("ecr", step.region)
        try:
            ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])
        except ClientError as exc:
            raise DeployError(
                f"image {repository}:{tag} is not in ECR ({_error_text(exc)}): "
                "push it first (the deploy workflow's build job does)"
            ) from exc

    def _check_package(self, step: Step) -> None:
        bucket, key = step.parameters["CodeS3Bucket"], step.parameters["CodeS3Key"]
        s3 = self.aws.client("s3", step.region)
        try:
            s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            raise DeployError(
                f"Lambda package s3://{bucket}/{key} is missing ({_error_text(exc)}): "
                "upload build/lambda.zip first (make package: kyperian ops package-lambda)"
            ) from exc

    # -- one stack --

    def deploy(self, step: Step) -> StackResult:
        if step.spec.key == DR_STACK:
            step = self.with_dr_targets(step)
        cfn = self.aws.cloudformation(step.region)
        self.out(f"\n=== {step.name} ({step.region})")
        stack = describe_stack(cfn, step.name)
        status = stack["StackStatus"] if stack else None
        if status in BLOCKED:
            raise DeployError(f"{step.name} is {status}: {BLOCKED[status]}")
        if status and status.endswith(IN_PROGRESS_SUFFIX) and status != "REVIEW_IN_PROGRESS":
            raise DeployError(f"{step.name} is {status}: another operation is running; wait")
        exists = status is not None and status != "REVIEW_IN_PROGRESS"
        if stack and exists:
            self._print_parameter_changes(stack, step)

        rollback = self.rollback_configuration(step)
        request: dict[str, Any] = {
            "StackName": step.name,
            "ChangeSetName": self.change_set_name,
            "ChangeSetType": "UPDATE" if exists else "CREATE",
            "Parameters": step.cfn_parameters(exists=exists),
            "Capabilities": list(CAPABILITIES),
            "Tags": [
                {"Key": "Project", "Value": PROJECT},
                {"Key": "Environment", "Value": self.plan.environment},
            ],
            "Description": f"scripts/deploy.py {self.change_set_name}",
            "RollbackConfiguration": rollback,
            **self._template_argument(step),
        }
        if self.role_arn and not step.spec.bootstrap:
            # The bootstrap stack creates that role: an administrator deploys it as themself.
            request["RoleARN"] = self.role_arn
        try:
            created = cfn.create_change_set(**request)
        except ClientError as exc:
            if any(marker in _error_text(exc) for marker in NO_CHANGES):
                self.out("no changes")
                return StackResult(step.name, "unchanged", outputs=self._outputs(stack))
            raise DeployError(f"{step.name}: change set not created: {_error_text(exc)}") from exc

        change_set = self._wait_for_change_set(cfn, created["Id"], step.name)
        if change_set["Status"] == "FAILED":
            reason = change_set.get("StatusReason", "")
            cfn.delete_change_set(ChangeSetName=created["Id"])
            if any(marker in reason for marker in NO_CHANGES):
                self.out("no changes")
                return StackResult(step.name, "unchanged", outputs=self._outputs(stack))
            raise DeployError(f"{step.name}: change set failed: {reason}")

        changes = self._changes(cfn, created["Id"])
        self._print_changes(changes)
        seen = {e["EventId"] for e in self._events(cfn, step.name)}
        cfn.execute_change_set(ChangeSetName=created["Id"])
        final = self._wait_for_stack(cfn, step.name, seen)
        return StackResult(
            step.name,
            "updated" if exists else "created",
            changes=len(changes),
            outputs=self._outputs(final),
        )

    def with_dr_targets(self, step: Step) -> Step:
        """``step`` with the secondary failover target read from the DR region's api stack.

        The parameter file leaves ``DrOriginTarget*`` empty; the values are the DR region's
        ``kyperian-<env>-api`` outputs. While that stack does not exist the record waits (no
        secondary); once it does, every deploy of ``dr`` keeps the failover pair complete, so
        failing over needs no edit. A value given in the parameter file wins.
        """
        if not self.plan.dr_region or step.parameters.get("DrOriginTargetDomainName"):
            return step
        name = stack_name(self.plan.environment, "api")
        stack = describe_stack(self.aws.cloudformation(self.plan.dr_region), name)
        outputs = self._outputs(stack) if stack else {}
        target, zone = (
            outputs.get("OriginTargetDomainName"),
            outputs.get("OriginTargetHostedZoneId"),
        )
        if not (target and zone):
            self.out(f"dr: no {name} in {self.plan.dr_region} yet; the secondary record waits")
            return step
        self.out(f"dr: secondary target {target} from {name} in {self.plan.dr_region}")
        parameters = dict(
            step.parameters, DrOriginTargetDomainName=target, DrOriginTargetHostedZoneId=zone
        )
        return replace(step, parameters=parameters)

    def rollback_configuration(self, step: Step) -> dict[str, Any]:
        """The alarms that roll this stack's operation back, and how long they are watched.

        Only alarms that exist (a missing trigger fails the whole operation) in the stack's own
        region. One already in ALARM stops the deploy, unless ``allow_alarming``: then it is
        left out, as a fix for what it reports must be able to go out.
        """
        minutes = self.plan.monitoring_for(step)
        if not self.plan.alarm_names or step.region != self.plan.region:
            return {"RollbackTriggers": [], "MonitoringTimeInMinutes": minutes}
        cloudwatch = self.aws.cloudwatch(step.region)
        found = cloudwatch.describe_alarms(
            AlarmNames=list(self.plan.alarm_names),
            AlarmTypes=["MetricAlarm", "CompositeAlarm"],
        )
        alarms = [
            (a["AlarmName"], a["AlarmArn"], a["StateValue"], "AWS::CloudWatch::Alarm")
            for a in found.get("MetricAlarms", [])
        ] + [
            (a["AlarmName"], a["AlarmArn"], a["StateValue"], "AWS::CloudWatch::CompositeAlarm")
            for a in found.get("CompositeAlarms", [])
        ]
        firing = sorted(name for name, _, state, _ in alarms if state == "ALARM")
        if firing and not self.allow_alarming:
            raise DeployError(
                f"{', '.join(firing)} already in ALARM: the update would roll back at once. "
                "Investigate first (runbooks/), or deploy the fix with --allow-alarming"
            )
        triggers: list[RollbackTriggerTypeDef] = [
            {"Arn": arn, "Type": kind}
            for name, arn, state, kind in sorted(alarms)
            if state != "ALARM"
        ]
        missing = sorted(set(self.plan.alarm_names) - {name for name, *_ in alarms})
        watched = len(triggers)
        note = f" ({len(missing)} not created yet)" if missing else ""
        self.out(f"rollback triggers: {watched} alarms{note}, monitoring {minutes} min")
        if firing:
            self.out(f"warning: left out (already in ALARM): {', '.join(firing)}")
        return {"RollbackTriggers": triggers, "MonitoringTimeInMinutes": minutes}

    def _template_argument(self, step: Step) -> dict[str, str]:
        if len(step.template_body.encode()) <= MAX_TEMPLATE_BODY:
            return {"TemplateBody": step.template_body}
        # Comments and indentation count too: the same template as compact JSON (long-form
        # intrinsics, as the loader reads them) often fits, and needs no bucket (the cicd
        # stack, which creates the buckets, must deploy without one).
        compact = compact_template(step.template_body)
        if len(compact.encode()) <= MAX_TEMPLATE_BODY:
            return {"TemplateBody": compact}
        if not self.template_bucket:
            raise DeployError(
                f"{step.spec.template.name} exceeds {MAX_TEMPLATE_BODY} bytes: pass "
                "--template-bucket to upload it"
            )
        key = f"templates/{self.change_set_name}/{step.spec.template.name}"
        s3 = self.aws.client("s3", step.region)
        s3.put_object(Bucket=self.template_bucket, Key=key, Body=step.template_body.encode())
        # CloudFormation reads it with the caller's permissions: a plain URL, nothing presigned.
        return {
            "TemplateURL": f"https://{self.template_bucket}.s3.{step.region}.amazonaws.com/{key}"
        }

    # -- waiting and printing --

    def _deadline(self) -> float:
        return time.monotonic() + self.timeout_seconds

    def _wait_for_change_set(
        self, cfn: CloudFormationClient, change_set: str, name: str
    ) -> dict[str, Any]:
        deadline = self._deadline()
        while True:
            described = dict(cfn.describe_change_set(ChangeSetName=change_set))
            if described["Status"] in {"CREATE_COMPLETE", "FAILED"}:
                return described
            if time.monotonic() > deadline:
                raise DeployError(f"{name}: change set still {described['Status']}; gave up")
            self.sleep(self.poll_seconds)

    def _changes(self, cfn: CloudFormationClient, change_set: str) -> list[dict[str, Any]]:
        changes: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"ChangeSetName": change_set}
            if token:
                kwargs["NextToken"] = token
            page = cfn.describe_change_set(**kwargs)
            changes += [dict(c.get("ResourceChange", {})) for c in page.get("Changes", [])]
            token = page.get("NextToken")
            if not token:
                return changes

    def _print_changes(self, changes: Sequence[Mapping[str, Any]]) -> None:
        self.out(f"{len(changes)} change(s):")
        for line in format_changes(changes):
            self.out("  " + line)

    def _print_parameter_changes(self, stack: Mapping[str, Any], step: Step) -> None:
        previous = {
            p["ParameterKey"]: p.get("ParameterValue", "") for p in stack.get("Parameters", [])
        }
        for key, value in sorted(step.parameters.items()):
            if key in previous and previous[key] != value:
                self.out(f"parameter {key}: {previous[key]} -> {value}")

    def _wait_for_stack(
        self, cfn: CloudFormationClient, name: str, seen: set[str]
    ) -> dict[str, Any]:
        """Poll until the stack settles, printing each new event once (oldest first)."""
        deadline = self._deadline()
        while True:
            fresh = [e for e in self._events(cfn, name) if e["EventId"] not in seen]
            for event in reversed(fresh):  # the API lists newest first
                seen.add(event["EventId"])
                self.out("  " + format_event(event))
            stack = describe_stack(cfn, name)
            if stack is None:
                raise DeployError(f"{name} disappeared while deploying")
            status = stack["StackStatus"]
            if status in SUCCEEDED:
                self.out(f"{name}: {status}")
                return stack
            if not status.endswith(IN_PROGRESS_SUFFIX):
                reason = stack.get("StackStatusReason", "")
                raise DeployError(
                    f"{name} ended {status}{': ' + reason if reason else ''}. A rollback "
                    "trigger or a failed resource rolled the update back; the events above "
                    "say which (docs/deploying.md#rolling-back)"
                )
            if time.monotonic() > deadline:
                raise DeployError(
                    f"{name} still {status} after {self.timeout_seconds / 60:.0f} min; it goes "
                    "on in CloudFormation - watch it there before deploying again"
                )
            self.sleep(self.poll_seconds)

    def _events(self, cfn: CloudFormationClient, name: str) -> list[dict[str, Any]]:
        """The stack's latest events (one page, newest first); none for a new stack."""
        try:
            return [dict(e) for e in cfn.describe_stack_events(StackName=name)["StackEvents"]]
        except ClientError:
            return []

    def _outputs(self, stack: Mapping[str, Any] | None) -> dict[str, str]:
        if not stack:
            return {}
        return {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs", [])}

    # -- dashboards --

    def put_dashboards(self) -> None:
        if not self.plan.dashboards:
            return
        account = self.aws.client("sts", self.plan.region).get_caller_identity()["Account"]
        for step in self.plan.steps:
            self.outputs.setdefault(step.spec.key, {})
        values = dashboard_values(self.plan, str(account), self.outputs)
        cloudwatch = self.aws.cloudwatch(self.plan.region)
        self.out("")
        for path in self.plan.dashboards:
            name = dashboard_name(self.plan, path)
            body = render_dashboard(path.read_text(encoding="utf-8"), values, path.name)
            answer = cloudwatch.put_dashboard(DashboardName=name, DashboardBody=body)
            problems = [m.get("Message", "") for m in answer.get("DashboardValidationMessages", [])]
            if problems:
                raise DeployError(f"dashboard {name} rejected: {'; '.join(problems)}")
            self.out(f"dashboard {name}: put")


def format_changes(changes: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    """One line per resource change: action, logical id, type, replacement."""
    for change in changes:
        replacement = change.get("Replacement")
        tail = " (REPLACEMENT)" if replacement == "True" else ""
        tail = " (replacement if needed)" if replacement == "Conditional" else tail
        yield (
            f"{change.get('Action', '?'):<7} {change.get('LogicalResourceId', '?')} "
            f"[{change.get('ResourceType', '?')}]{tail}"
        )


def format_event(event: Mapping[str, Any]) -> str:
    stamp = event["Timestamp"].strftime("%H:%M:%S")
    reason = event.get("ResourceStatusReason")
    return f"{stamp} {event.get('LogicalResourceId', '?')} {event.get('ResourceStatus', '?')}" + (
        f" - {reason}" if reason else ""
    )


def read_stack_outputs(aws: Aws, plan: Plan) -> dict[str, dict[str, str]]:
    """Outputs of every stack of the plan that exists (for --outputs-file)."""
    outputs: dict[str, dict[str, str]] = {}
    for step in plan.steps:
        cfn = aws.cloudformation(step.region)
        try:
            stacks = cfn.describe_stacks(StackName=step.name)["Stacks"]
        except ClientError:
            continue
        outputs[step.spec.key] = {
            o["OutputKey"]: o.get("OutputValue", "") for o in stacks[0].get("Outputs", [])
        }
    return outputs


def execution_role(aws: Aws, plan: Plan) -> str | None:
    """The CloudFormation execution role the cicd stack made, if it exists in this account."""
    cfn = aws.cloudformation(plan.primary_region)
    try:
        stacks = cfn.describe_stacks(StackName=stack_name(plan.environment, "cicd"))["Stacks"]
    except ClientError:
        return None
    for output in stacks[0].get("Outputs", []):
        if output["OutputKey"] == "CfnExecutionRoleArn":
            return output.get("OutputValue")
    return None


def write_summary(results: Sequence[StackResult], path: str | None) -> None:
    """A Markdown table of the run for the GitHub job summary, when there is one."""
    if not path:
        return
    lines = ["| stack | outcome | changes |", "|---|---|---|"]
    lines += [f"| {r.name} | {r.outcome} | {r.changes} |" for r in results]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


# --- command line ----------------------------------------------------------------------------


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Deploy Kyperian's CloudFormation stacks with change sets.",
    )
    add_arguments(parser)
    return parser.parse_args(argv)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The deploy's options, for this script's parser and for ``kyperian deploy apply``."""
    parser.add_argument("--environment", "-e", required=True, choices=ENVIRONMENTS)
    parser.add_argument(
        "--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    )
    parser.add_argument(
        "--parameters",
        type=Path,
        help="parameter file (default cloudformation/parameters/<env>.json)",
    )
    parser.add_argument("--image-tag", help="engine image tag in ECR (the commit SHA)")
    parser.add_argument("--lambda-s3-uri", help="s3://bucket/key of the Lambda package zip")
    parser.add_argument("--stacks", help="comma-separated subset of stacks, e.g. network,data")
    parser.add_argument(
        "--bootstrap", action="store_true", help="also deploy the cicd stack (administrators)"
    )
    parser.add_argument(
        "--monitoring-minutes",
        type=int,
        default=10,
        help="minutes the alarms are watched after a traffic-serving stack updates (default 10)",
    )
    parser.add_argument("--rollback-alarms", help="comma-separated alarm names (override)")
    parser.add_argument(
        "--allow-alarming",
        action="store_true",
        help="deploy although a trigger alarm is in ALARM (it is left out): for the fix",
    )
    parser.add_argument("--role-arn", help="CloudFormation execution role (default: cicd's)")
    parser.add_argument("--template-bucket", help="bucket for templates over 51,200 bytes")
    parser.add_argument("--dashboards-dir", type=Path, default=DASHBOARDS)
    parser.add_argument("--outputs-file", type=Path, help="write every stack's outputs (JSON)")
    parser.add_argument("--change-set-name", help="default deploy-<UTC timestamp>")
    parser.add_argument("--poll-seconds", type=float, default=5.0)
    parser.add_argument("--timeout-minutes", type=float, default=90.0)
    parser.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server")
    parser.add_argument("--dry-run", action="store_true", help="print the plan; call no AWS API")


def main(argv: Sequence[str] | None = None, session: boto3.Session | None = None) -> int:
    return run(_parse(argv), session)


def run(args: argparse.Namespace, session: boto3.Session | None = None) -> int:
    """Deploy as ``args`` (``add_arguments``'s options) say; 0 when done, 1 when refused/failed."""
    try:
        if not args.region:
            raise DeployError("no region: pass --region or set AWS_REGION")
        parameters_path = args.parameters or TEMPLATES / "parameters" / f"{args.environment}.json"
        parameters = load_parameter_file(parameters_path)
        plan = build_plan(
            environment=args.environment,
            region=args.region,
            parameters=parameters,
            artifacts=Artifacts.from_uri(args.image_tag, args.lambda_s3_uri),
            only=[s.strip() for s in args.stacks.split(",") if s.strip()] if args.stacks else (),
            bootstrap=args.bootstrap,
            monitoring_minutes=args.monitoring_minutes,
            rollback_alarms=(
                [a.strip() for a in args.rollback_alarms.split(",") if a.strip()]
                if args.rollback_alarms
                else None
            ),
            dashboards_dir=args.dashboards_dir,
        )
        print(plan.describe(), flush=True)
        notices = notice_subscriber_of(parameters_path, parameters)
        if args.dry_run:
            for problem in (alarm_subscriber_problem(args.environment, parameters), notices):
                if problem:
                    print(f"warning: {problem}", file=sys.stderr, flush=True)
            return 0
        check_alarm_subscriber(args.environment, parameters)
        if notices and args.environment == "production":
            raise DeployError(f"refusing a production deploy: {notices}")
        if notices:
            print(f"warning: {notices}", file=sys.stderr, flush=True)
        aws = Aws(session or boto3.Session(), endpoint_url=args.endpoint_url)
        role_arn = args.role_arn or execution_role(aws, plan)
        if role_arn:
            print(f"CloudFormation execution role: {role_arn}", flush=True)
        deployer = Deployer(
            plan,
            aws,
            role_arn=role_arn,
            allow_alarming=args.allow_alarming,
            poll_seconds=args.poll_seconds,
            timeout_minutes=args.timeout_minutes,
            change_set_name=args.change_set_name,
            template_bucket=args.template_bucket,
        )
        results = deployer.run()
        write_summary(results, os.environ.get("GITHUB_STEP_SUMMARY"))
        if args.outputs_file:
            args.outputs_file.write_text(
                json.dumps(read_stack_outputs(aws, plan), indent=2, sort_keys=True) + "\n",
                encoding="utf-8",
            )
    except DeployError as exc:
        print(f"deploy: {exc}", file=sys.stderr, flush=True)
        return 1
    except (ClientError, BotoCoreError) as exc:
        print(f"deploy: AWS call failed: {exc}", file=sys.stderr, flush=True)
        return 1
    print("\ndeploy: done", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
