"""How the deployer reads CloudFormation's answers that moto never gives.

Real CloudFormation reports "nothing to change" as a FAILED change set (moto refuses the
request instead), and a rollback-trigger alarm as an update that ends UPDATE_ROLLBACK_COMPLETE.
These tests script those answers with botocore's Stubber on a real client.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from kyperian.ops.deploy import SPECS, Aws, Deployer, DeployError, Plan, Step

STACK = "kyperian-staging-compute"
CHANGE_SET = "arn:aws:cloudformation:us-east-1:123456789012:changeSet/deploy-1/abc"
STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/kyperian-staging-compute/1"
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class StubbedAws(Aws):
    def __init__(self, cloudformation: Any) -> None:
        self._cloudformation = cloudformation

    def cloudformation(self, region: str) -> Any:
        return self._cloudformation


@pytest.fixture
def cfn() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.Session().client("cloudformation", region_name="us-east-1")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def deployer(client: Any, lines: list[str]) -> Deployer:
    step = Step(
        spec=SPECS["compute"],
        name=STACK,
        region="us-east-1",
        template_body="{}",
        parameters={"EnvironmentName": "staging", "ImageTag": "new"},
    )
    plan = Plan(
        environment="staging",
        region="us-east-1",
        primary_region="us-east-1",
        steps=(step,),
        alarm_names=(),
        monitoring_minutes=10,
        dashboards=(),
    )
    return Deployer(
        plan,
        StubbedAws(client),
        poll_seconds=0,
        change_set_name="deploy-1",
        out=lines.append,
        sleep=lambda _: None,
    )


def existing_stack(status: str, reason: str | None = None) -> dict[str, Any]:
    stack: dict[str, Any] = {
        "StackName": STACK,
        "StackId": STACK_ID,
        "CreationTime": NOW,
        "StackStatus": status,
        "Parameters": [{"ParameterKey": "ImageTag", "ParameterValue": "old"}],
    }
    if reason:
        stack["StackStatusReason"] = reason
    return {"Stacks": [stack]}


def expect_change_set(stubber: Stubber, status: str, reason: str = "") -> None:
    stubber.add_response("describe_stacks", existing_stack("UPDATE_COMPLETE"), {"StackName": STACK})
    stubber.add_response(
        "create_change_set",
        {"Id": CHANGE_SET, "StackId": STACK_ID},
        {
            "StackName": STACK,
            "ChangeSetName": "deploy-1",
            "ChangeSetType": "UPDATE",
            "Parameters": ANY,
            "Capabilities": ANY,
            "Tags": ANY,
            "Description": ANY,
            "RollbackConfiguration": {"RollbackTriggers": [], "MonitoringTimeInMinutes": 10},
            "TemplateBody": "{}",
        },
    )
    answer = {"ChangeSetName": "deploy-1", "Status": status, "Changes": []}
    if reason:
        answer["StatusReason"] = reason
    stubber.add_response("describe_change_set", answer, {"ChangeSetName": CHANGE_SET})


def test_a_change_set_with_nothing_to_change_is_deleted_and_the_stack_skipped(
    cfn: tuple[Any, Stubber],
) -> None:
    client, stubber = cfn
    # GIVEN CloudFormation answers the change set with "no changes", as it really does
    expect_change_set(
        stubber,
        "FAILED",
        "The submitted information didn't contain changes. Submit different information.",
    )
    stubber.add_response("delete_change_set", {}, {"ChangeSetName": CHANGE_SET})
    lines: list[str] = []
    d = deployer(client, lines)
    # WHEN the stack is deployed
    result = d.deploy(d.plan.steps[0])
    # THEN the change set is deleted (not left to pile up), nothing executed, and it says so
    assert result.outcome == "unchanged"
    assert "no changes" in lines


def test_an_update_rolled_back_by_an_alarm_fails_the_deploy_and_shows_why(
    cfn: tuple[Any, Stubber],
) -> None:
    client, stubber = cfn
    # GIVEN a change set that replaces the image and an update an alarm then rolls back
    expect_change_set(stubber, "CREATE_COMPLETE")
    stubber.add_response(
        "describe_change_set",
        {
            "Status": "CREATE_COMPLETE",
            "Changes": [
                {
                    "Type": "Resource",
                    "ResourceChange": {
                        "Action": "Modify",
                        "LogicalResourceId": "TaskDefinition",
                        "ResourceType": "AWS::ECS::TaskDefinition",
                        "Replacement": "True",
                    },
                }
            ],
        },
        {"ChangeSetName": CHANGE_SET},
    )
    stubber.add_response("describe_stack_events", {"StackEvents": []}, {"StackName": STACK})
    stubber.add_response("execute_change_set", {}, {"ChangeSetName": CHANGE_SET})
    reason = "Rollback triggered by alarm kyperian-staging-high-latency"
    stubber.add_response(
        "describe_stack_events",
        {
            "StackEvents": [
                {
                    "StackId": STACK_ID,
                    "EventId": "e1",
                    "StackName": STACK,
                    "LogicalResourceId": STACK,
                    "Timestamp": NOW,
                    "ResourceStatus": "UPDATE_ROLLBACK_IN_PROGRESS",
                    "ResourceStatusReason": reason,
                }
            ]
        },
        {"StackName": STACK},
    )
    stubber.add_response(
        "describe_stacks", existing_stack("UPDATE_ROLLBACK_COMPLETE"), {"StackName": STACK}
    )
    lines: list[str] = []
    d = deployer(client, lines)
    # WHEN the stack is deployed
    with pytest.raises(DeployError, match="ended UPDATE_ROLLBACK_COMPLETE") as failure:
        d.deploy(d.plan.steps[0])
    # THEN the image change, the replacement and the alarm that fired were all printed
    assert "parameter ImageTag: old -> new" in lines
    assert any("TaskDefinition [AWS::ECS::TaskDefinition] (REPLACEMENT)" in line for line in lines)
    assert any(reason in line for line in lines)
    assert "rolled the update back" in str(failure.value)


def test_a_stack_whose_creation_rolled_back_is_not_touched(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    # GIVEN a stack left in ROLLBACK_COMPLETE by a failed first creation
    stubber.add_response(
        "describe_stacks", existing_stack("ROLLBACK_COMPLETE"), {"StackName": STACK}
    )
    d = deployer(client, [])
    # WHEN / THEN the deploy stops with the remedy, without creating a change set
    with pytest.raises(DeployError, match="delete the stack, then deploy"):
        d.deploy(d.plan.steps[0])


def test_a_stack_busy_with_another_operation_is_not_touched(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    # GIVEN a stack that another deploy is updating
    stubber.add_response(
        "describe_stacks", existing_stack("UPDATE_IN_PROGRESS"), {"StackName": STACK}
    )
    d = deployer(client, [])
    # WHEN / THEN this deploy waits its turn instead of queueing a change set behind it
    with pytest.raises(DeployError, match="another operation is running"):
        d.deploy(d.plan.steps[0])


def dr_plan() -> Plan:
    from pathlib import Path

    from kyperian.ops.deploy import Artifacts, build_plan, load_parameter_file

    parameters = load_parameter_file(
        Path(__file__).resolve().parents[3] / "cloudformation" / "parameters" / "production.json"
    )
    return build_plan(
        environment="production",
        region="us-east-1",
        parameters=parameters,
        artifacts=Artifacts(image_tag=None, lambda_bucket=None, lambda_key=None),
        only=["dr"],
    )


def test_the_secondary_failover_target_comes_from_the_dr_regions_api_stack(
    cfn: tuple[Any, Stubber],
) -> None:
    # GIVEN the DR region's api stack with its origin target outputs
    client, stubber = cfn
    stubber.add_response(
        "describe_stacks",
        {
            "Stacks": [
                {
                    "StackName": "kyperian-production-api",
                    "CreationTime": NOW,
                    "StackStatus": "UPDATE_COMPLETE",
                    "Outputs": [
                        {
                            "OutputKey": "OriginTargetDomainName",
                            "OutputValue": "d-abc.execute-api.us-west-2.amazonaws.com",
                        },
                        {"OutputKey": "OriginTargetHostedZoneId", "OutputValue": "Z2OJLYMUO9EFXC"},
                    ],
                }
            ]
        },
        {"StackName": "kyperian-production-api"},
    )
    plan = dr_plan()
    assert plan.dr_region == "us-west-2"
    (step,) = plan.steps
    # WHEN the dr step is prepared
    filled = Deployer(plan, StubbedAws(client), out=lambda _: None).with_dr_targets(step)
    # THEN the secondary record points at the DR API, with no edit of the parameter file
    assert (
        filled.parameters["DrOriginTargetDomainName"] == "d-abc.execute-api.us-west-2.amazonaws.com"
    )
    assert filled.parameters["DrOriginTargetHostedZoneId"] == "Z2OJLYMUO9EFXC"
    assert step.parameters["DrOriginTargetDomainName"] == ""


def test_without_a_dr_api_the_secondary_waits(cfn: tuple[Any, Stubber]) -> None:
    client, stubber = cfn
    stubber.add_client_error(
        "describe_stacks",
        service_error_code="ValidationError",
        service_message="Stack with id kyperian-production-api does not exist",
    )
    lines: list[str] = []
    (step,) = dr_plan().steps
    filled = Deployer(dr_plan(), StubbedAws(client), out=lines.append).with_dr_targets(step)
    assert filled.parameters["DrOriginTargetDomainName"] == ""
    assert any("the secondary record waits" in line for line in lines)
