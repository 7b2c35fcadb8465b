"""scripts/deploy.py against moto, with the real templates and the real staging parameters.

moto's CloudFormation builds the network, config and messaging stacks as they are (VPC,
subnets, queues, bus, rule); data only once translated as the local stack translates it
(``kyperian.local.templates.for_moto``: no GlobalTable or ElastiCache in moto), which one test
does explicitly; api, compute and edge not at all (HTTP API, Fargate, CloudFront). moto keeps
no rollback configuration either, so the tests read what the script sent from the request
itself (a botocore hook), and create the alarms the monitoring stack would have made. A moto
deploy proves the wiring - order, change sets, parameters, triggers, re-runs - not a property
of AWS.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kyperian.local.templates import for_moto, load_yaml
from kyperian.ops import deploy

pytestmark = [
    pytest.mark.integration,
    # moto announces every resource type it skips (secrets, queue policies): known, see above.
    pytest.mark.filterwarnings("ignore:Tried to parse AWS:UserWarning"),
]

REGION = "us-east-1"
REPO = Path(__file__).resolve().parents[3]
STAGING = REPO / "cloudformation" / "parameters" / "staging.json"
MOTO_STACKS = "network,config,messaging"
ALARMS = deploy.alarm_names(deploy.load_template(deploy.SPECS["monitoring"].template), "staging")


@dataclass
class Recorder:
    """Every CloudFormation request the script makes, as it made it."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __call__(self, params: dict[str, Any], event_name: str, **_: Any) -> None:
        self.calls.append((event_name.rsplit(".", 1)[-1], copy.deepcopy(params)))

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == operation]


@dataclass
class Account:
    session: boto3.Session
    requests: Recorder
    dashboards: Path

    def deploy(self, *args: str) -> int:
        argv = ["--environment", "staging", "--region", REGION, "--poll-seconds", "0"]
        argv += ["--dashboards-dir", str(self.dashboards), *args]
        return deploy.main(argv, session=self.session)

    def client(self, service: str) -> Any:
        return self.session.client(service, region_name=REGION)  # type: ignore[call-overload]

    def stack(self, key: str) -> dict[str, Any]:
        stacks = self.client("cloudformation").describe_stacks(StackName=f"kyperian-staging-{key}")
        stack: dict[str, Any] = stacks["Stacks"][0]
        return stack


@pytest.fixture
def account(tmp_path: Path) -> Iterator[Account]:
    """GIVEN an empty moto account with the environment's alarms and one dashboard file."""
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        recorder = Recorder()
        session.events.register("provide-client-params.cloudformation.*", recorder)
        cloudwatch: Any = session.client("cloudwatch", region_name=REGION)
        for name in ALARMS:
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="Kyperian",
                MetricName="Test",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1,
                ComparisonOperator="GreaterThanThreshold",
            )
        dashboards = tmp_path / "dashboards"
        dashboards.mkdir()
        widget = {"type": "text", "properties": {"markdown": "${Environment} in ${Region}"}}
        (dashboards / "main.json").write_text(json.dumps({"widgets": [widget]}))
        yield Account(session, recorder, dashboards)


def test_a_first_deploy_creates_each_stack_through_a_change_set(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the network, config and messaging stacks are deployed to an empty account
    assert account.deploy("--stacks", MOTO_STACKS) == 0

    # THEN each was created by executing a CREATE change set, in dependency order
    created = account.requests.of("CreateChangeSet")
    assert [c["StackName"] for c in created] == [
        "kyperian-staging-network",
        "kyperian-staging-config",
        "kyperian-staging-messaging",
    ]
    assert {c["ChangeSetType"] for c in created} == {"CREATE"}
    assert len(account.requests.of("ExecuteChangeSet")) == 3
    for key in ("network", "config", "messaging"):
        assert account.stack(key)["StackStatus"] == "CREATE_COMPLETE"
    # AND the parameters are the parameter file's
    network = {p["ParameterKey"]: p["ParameterValue"] for p in created[0]["Parameters"]}
    assert network == {"EnvironmentName": "staging", "FlowLogRetentionDays": "30"}
    # AND the resources really exist
    vpcs = account.client("ec2").describe_vpcs(
        Filters=[{"Name": "tag:Name", "Values": ["kyperian-staging-vpc"]}]
    )["Vpcs"]
    assert [v["CidrBlock"] for v in vpcs] == ["10.0.0.0/16"]
    queues = account.client("sqs").list_queues(QueueNamePrefix="kyperian-staging-")["QueueUrls"]
    assert any(url.endswith("/kyperian-staging-signals") for url in queues)
    # AND the changes were printed before they were executed
    out = capsys.readouterr().out
    assert "=== kyperian-staging-network (us-east-1)" in out
    assert "Add     Vpc [AWS::EC2::VPC]" in out


def test_every_change_set_carries_the_alarms_as_rollback_triggers(account: Account) -> None:
    # WHEN the stacks are deployed
    assert account.deploy("--stacks", MOTO_STACKS, "--monitoring-minutes", "12") == 0
    # THEN every operation is watched by the four rollback-trigger alarms, by ARN (not the DLQ
    # alarm: it pages, but a message left by an earlier release must not block a deploy)
    arns = {
        a["AlarmName"]: a["AlarmArn"]
        for a in account.client("cloudwatch").describe_alarms(AlarmNames=ALARMS)["MetricAlarms"]
    }
    assert len(arns) == 4
    assert not any(name.endswith("-dlq-not-empty") for name in arns)
    for request in account.requests.of("CreateChangeSet"):
        rollback = request["RollbackConfiguration"]
        assert sorted(t["Arn"] for t in rollback["RollbackTriggers"]) == sorted(arns.values())
        assert {t["Type"] for t in rollback["RollbackTriggers"]} == {"AWS::CloudWatch::Alarm"}
        # infrastructure stacks are watched during the update only, not for 12 minutes after
        assert rollback["MonitoringTimeInMinutes"] == 0


def test_a_rerun_with_nothing_new_changes_nothing(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a deployed environment
    assert account.deploy("--stacks", MOTO_STACKS) == 0
    executed = len(account.requests.of("ExecuteChangeSet"))
    capsys.readouterr()
    # WHEN the same commit is deployed again
    assert account.deploy("--stacks", MOTO_STACKS) == 0
    # THEN no change set is executed, each stack says so, and all are still healthy
    assert len(account.requests.of("ExecuteChangeSet")) == executed
    assert capsys.readouterr().out.count("no changes") == 3
    assert account.stack("network")["StackStatus"] == "CREATE_COMPLETE"


def test_a_changed_parameter_updates_only_that_stack(
    account: Account, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a deployed environment
    assert account.deploy("--stacks", MOTO_STACKS) == 0
    # WHEN the network's flow-log retention changes in the parameter file
    parameters = json.loads(STAGING.read_text())
    parameters["network"]["FlowLogRetentionDays"] = "14"
    changed = tmp_path / "staging.json"
    changed.write_text(json.dumps(parameters))
    capsys.readouterr()
    before = len(account.requests.of("ExecuteChangeSet"))
    assert account.deploy("--stacks", MOTO_STACKS, "--parameters", str(changed)) == 0
    # THEN one UPDATE change set ran, the old and new values were printed
    assert len(account.requests.of("ExecuteChangeSet")) == before + 1
    assert account.requests.of("CreateChangeSet")[-3]["ChangeSetType"] == "UPDATE"
    assert "parameter FlowLogRetentionDays: 30 -> 14" in capsys.readouterr().out
    network = account.stack("network")
    assert network["StackStatus"] == "UPDATE_COMPLETE"
    assert {"ParameterKey": "FlowLogRetentionDays", "ParameterValue": "14"} in network["Parameters"]


def test_a_firing_alarm_stops_the_deploy_before_any_change(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the high-latency alarm is in ALARM
    firing = next(name for name in ALARMS if name.endswith("high-latency"))
    account.client("cloudwatch").set_alarm_state(
        AlarmName=firing, StateValue="ALARM", StateReason="test"
    )
    # WHEN a deploy starts
    assert account.deploy("--stacks", "network") == 1
    # THEN nothing was attempted and the operator is told which alarm and what to do
    assert account.requests.of("CreateChangeSet") == []
    assert f"{firing} already in ALARM" in capsys.readouterr().err


def test_allow_alarming_deploys_the_fix_without_the_firing_alarm(account: Account) -> None:
    # GIVEN the high-latency alarm is in ALARM
    firing = next(name for name in ALARMS if name.endswith("high-latency"))
    account.client("cloudwatch").set_alarm_state(
        AlarmName=firing, StateValue="ALARM", StateReason="test"
    )
    # WHEN the fix is deployed with --allow-alarming
    assert account.deploy("--stacks", "network", "--allow-alarming") == 0
    # THEN the other rollback-trigger alarms still guard the update
    triggers = account.requests.of("CreateChangeSet")[0]["RollbackConfiguration"]
    assert len(triggers["RollbackTriggers"]) == len(ALARMS) - 1
    assert not any(t["Arn"].endswith(f":{firing}") for t in triggers["RollbackTriggers"])


def test_a_missing_image_stops_the_deploy_before_any_stack(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an image tag that was never pushed
    # WHEN the engine is deployed with it
    code = account.deploy("--stacks", "network,compute", "--image-tag", "not-pushed")
    # THEN no stack was touched, not even the network that comes first
    assert code == 1
    assert account.requests.of("CreateChangeSet") == []
    assert "kyperian-staging-engine:not-pushed is not in ECR" in capsys.readouterr().err


def test_dashboards_are_put_with_their_placeholders_filled(account: Account) -> None:
    # WHEN a deploy finishes
    assert account.deploy("--stacks", "network") == 0
    # THEN the dashboard exists under the environment's name, placeholders filled
    body = account.client("cloudwatch").get_dashboard(DashboardName="kyperian-staging-main")
    widget = json.loads(body["DashboardBody"])["widgets"][0]
    assert widget["properties"]["markdown"] == "staging in us-east-1"


def test_a_dry_run_prints_the_plan_and_calls_no_api(
    account: Account, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the whole staging deploy is planned
    assert account.deploy("--dry-run", "--image-tag", "abc") == 0
    # THEN the plan lists the stacks in order and nothing was created
    out = capsys.readouterr().out
    assert out.index("kyperian-staging-network") < out.index("kyperian-staging-compute")
    assert "ImageTag = abc" in out
    assert account.requests.calls == []
    assert account.client("cloudformation").list_stacks()["StackSummaries"] == []


def test_a_template_over_the_body_limit_goes_through_s3(
    account: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN templates count as too large to send inline, and a bucket for them
    monkeypatch.setattr(deploy, "MAX_TEMPLATE_BODY", 100)
    account.client("s3").create_bucket(Bucket="kyperian-staging-templates")
    # WHEN the network stack is deployed with --template-bucket
    assert (
        account.deploy("--stacks", "network", "--template-bucket", "kyperian-staging-templates")
        == 0
    )
    # THEN CloudFormation was given the template's S3 URL, and built the stack from it
    request = account.requests.of("CreateChangeSet")[0]
    assert "TemplateBody" not in request
    assert request["TemplateURL"].startswith("https://kyperian-staging-templates.s3.us-east-1.")
    assert account.stack("network")["StackStatus"] == "CREATE_COMPLETE"


def test_the_data_stack_deploys_through_the_same_path_once_translated_for_moto(
    account: Account,
) -> None:
    # GIVEN the plan for network, data and messaging, with data.yaml translated the one way
    # moto needs (global tables as regional tables, no ElastiCache), as the local stack does
    plan = deploy.build_plan(
        environment="staging",
        region=REGION,
        parameters=deploy.load_parameter_file(STAGING),
        artifacts=deploy.Artifacts(),
        only=["network", "data", "messaging"],
        dashboards_dir=account.dashboards / "none",
    )
    steps = tuple(
        replace(step, template_body=json.dumps(for_moto(load_yaml(step.template_body))))
        if step.spec.key == "data"
        else step
        for step in plan.steps
    )
    deployer = deploy.Deployer(
        replace(plan, steps=steps), deploy.Aws(account.session), poll_seconds=0, out=lambda _: None
    )
    # WHEN the deployer runs it
    results = deployer.run()
    # THEN the three stacks were created in order, and the tables exist with their keys
    assert [(r.name, r.outcome) for r in results] == [
        ("kyperian-staging-network", "created"),
        ("kyperian-staging-data", "created"),
        ("kyperian-staging-messaging", "created"),
    ]
    table = account.client("dynamodb").describe_table(TableName="kyperian-staging-signals")
    assert {k["AttributeName"] for k in table["Table"]["KeySchema"]} == {"PK", "SK"}
    data_request = account.requests.of("CreateChangeSet")[1]
    assert data_request["StackName"] == "kyperian-staging-data"
    assert len(data_request["RollbackConfiguration"]["RollbackTriggers"]) == len(ALARMS)
