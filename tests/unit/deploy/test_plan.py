"""The deploy plan: stack order, parameter files, artifacts, rollback triggers, placeholders.

Pure: these tests build plans from the real templates and parameter files (and small ones in
tmp_path) without calling AWS.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kyperian.ops.deploy import (
    SPECS,
    STACKS,
    Artifacts,
    DeployError,
    alarm_names,
    build_plan,
    check_import_order,
    compact_template,
    dashboard_name,
    format_changes,
    load_parameter_file,
    load_template,
    render_dashboard,
    template_exports,
    template_imports,
)

REPO = Path(__file__).resolve().parents[3]
PARAMETERS = REPO / "cloudformation" / "parameters"
ARTIFACTS = Artifacts(image_tag="0123abc", lambda_bucket="bucket", lambda_key="lambda/0123abc.zip")

MINI_TEMPLATE = """\
AWSTemplateFormatVersion: "2010-09-09"
Description: test
Parameters:
  EnvironmentName:
    Type: String
  Retention:
    Type: Number
    Default: 30
  Required:
    Type: String
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub kyperian-${EnvironmentName}-q
"""


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def mini_templates(tmp_path: Path, *keys: str) -> Path:
    for key in keys:
        (tmp_path / f"{key}.yaml").write_text(MINI_TEMPLATE, encoding="utf-8")
    return tmp_path


def plan_for(environment: str, file: str, **kwargs: Any) -> Any:
    return build_plan(
        environment=environment,
        region=kwargs.pop("region", "us-east-1"),
        parameters=load_parameter_file(PARAMETERS / file),
        artifacts=kwargs.pop("artifacts", ARTIFACTS),
        **kwargs,
    )


# --- order --------------------------------------------------------------------------------


def test_stacks_deploy_in_dependency_order_and_the_bootstrap_stack_is_left_out() -> None:
    # GIVEN the staging parameter file, which lists every stack including cicd
    # WHEN the plan is built
    plan = plan_for("staging", "staging.json")
    # THEN the stacks come in the layer order and the pipeline never deploys its own roles
    assert [s.spec.key for s in plan.steps] == [
        "network",
        "config",
        "data",
        "messaging",
        "api",
        "dr",
        "edge",
        "monitoring",
        "compute",
    ]
    assert [s.name for s in plan.steps][:2] == [
        "kyperian-staging-network",
        "kyperian-staging-config",
    ]


def test_bootstrap_puts_cicd_first() -> None:
    # WHEN an administrator asks for the bootstrap stack
    plan = plan_for("staging", "staging.json", bootstrap=True)
    # THEN it comes before everything that needs its artifact stores
    assert plan.steps[0].spec.key == "cicd"


def test_every_import_of_the_real_templates_is_exported_by_an_earlier_stack() -> None:
    # GIVEN every real template
    templates = {s.key: load_template(s.template) for s in STACKS if s.template.exists()}
    # WHEN the order is checked
    check_import_order(templates, "staging")
    # THEN it passes, and the check is not vacuous: some stack really imports
    assert any(template_imports(t, "staging") for t in templates.values())
    assert "staging:VpcId" in template_exports(templates["network"], "staging")


def test_an_import_exported_only_by_a_later_stack_is_refused() -> None:
    # GIVEN network importing something only compute exports
    templates: dict[str, Any] = {
        "network": {"Resources": {"R": {"Properties": {"X": {"Fn::ImportValue": "staging:Late"}}}}},
        "compute": {"Outputs": {"O": {"Value": "v", "Export": {"Name": "staging:Late"}}}},
    }
    # WHEN / THEN the order check names the stack and the import
    with pytest.raises(DeployError, match="network imports staging:Late"):
        check_import_order(templates)


def test_the_edge_stack_always_goes_to_us_east_1() -> None:
    # WHEN production is deployed from another region
    plan = plan_for("production", "production.json", region="eu-west-1")
    # THEN CloudFront's WAF stack still targets us-east-1, the rest the deploy region
    regions = {s.spec.key: s.region for s in plan.steps}
    assert regions["edge"] == "us-east-1"
    assert regions["network"] == "eu-west-1"


def test_the_dr_file_deploys_only_the_stacks_it_names() -> None:
    # WHEN the DR region's parameter file is used
    plan = plan_for("production", "production-dr.json", region="us-west-2")
    keys = [s.spec.key for s in plan.steps]
    # THEN only its stacks, in order; the DR dashboards get a region suffix
    assert keys == [k for k in SPECS if k in keys]
    assert "edge" not in keys
    assert plan.primary_region == "us-east-1"
    assert dashboard_name(plan, Path("main.json")) == "kyperian-production-main-us-west-2"


def test_a_subset_keeps_the_order_whatever_order_it_is_asked_in() -> None:
    plan = plan_for("staging", "staging.json", only=["messaging", "network"])
    assert [s.spec.key for s in plan.steps] == ["network", "messaging"]


# --- parameter files ----------------------------------------------------------------------


def test_both_parameter_file_forms_give_the_same_parameters(tmp_path: Path) -> None:
    # GIVEN the same parameters as an object and as CloudFormation's list form
    as_object = write(tmp_path / "a.json", {"network": {"FlowLogRetentionDays": 30}})
    as_list = write(
        tmp_path / "b.json",
        {"network": [{"ParameterKey": "FlowLogRetentionDays", "ParameterValue": "30"}]},
    )
    # WHEN both are loaded
    # THEN they agree, and numbers became the strings CloudFormation expects
    assert load_parameter_file(as_object) == load_parameter_file(as_list)
    assert load_parameter_file(as_object) == {"network": {"FlowLogRetentionDays": "30"}}


def test_an_unknown_stack_in_the_parameter_file_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "p.json", {"netwrok": {}})
    with pytest.raises(DeployError, match="unknown stack 'netwrok'"):
        load_parameter_file(path)


def test_a_malformed_stack_entry_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "p.json", {"network": ["FlowLogRetentionDays=30"]})
    with pytest.raises(DeployError, match="must map parameter names"):
        load_parameter_file(path)


def test_a_parameter_the_template_does_not_declare_is_refused() -> None:
    # GIVEN a typo in a parameter name
    parameters = load_parameter_file(PARAMETERS / "staging.json")
    parameters["network"]["FlowLogRetentionDayz"] = "30"
    # WHEN / THEN the plan names the stack and the parameter
    with pytest.raises(DeployError, match=r"kyperian-staging-network.*FlowLogRetentionDayz"):
        build_plan(
            environment="staging", region="us-east-1", parameters=parameters, artifacts=ARTIFACTS
        )


def test_the_production_file_cannot_deploy_staging() -> None:
    with pytest.raises(DeployError, match="EnvironmentName=production"):
        plan_for("staging", "production.json")


def test_a_required_parameter_missing_everywhere_is_refused(tmp_path: Path) -> None:
    # GIVEN a template whose parameter "Required" has no default and no value
    templates = mini_templates(tmp_path, "network")
    # WHEN / THEN
    with pytest.raises(DeployError, match="parameter Required has no default"):
        build_plan(
            environment="staging",
            region="us-east-1",
            parameters={"network": {}},
            artifacts=Artifacts(),
            templates_dir=templates,
        )


def test_a_stack_not_in_the_file_cannot_be_selected() -> None:
    with pytest.raises(DeployError, match="edge have no entry"):
        plan_for("production", "production-dr.json", only=["edge"], region="us-west-2")


# --- artifacts ----------------------------------------------------------------------------


def test_the_image_tag_and_lambda_package_are_fed_to_their_stacks() -> None:
    plan = plan_for("staging", "staging.json")
    steps = {s.spec.key: s for s in plan.steps}
    assert steps["compute"].parameters["ImageTag"] == "0123abc"
    assert steps["api"].parameters["CodeS3Bucket"] == "bucket"
    assert steps["api"].parameters["CodeS3Key"] == "lambda/0123abc.zip"
    assert "ImageTag" not in steps["network"].parameters


def test_without_artifacts_an_existing_stack_keeps_its_previous_image() -> None:
    # GIVEN an infrastructure-only deploy (no image tag, no package)
    plan = plan_for("staging", "staging.json", artifacts=Artifacts())
    compute = next(s for s in plan.steps if s.spec.key == "compute")
    # WHEN the parameters for an existing stack are made
    parameters = compute.cfn_parameters(exists=True)
    # THEN the image tag is the previous one
    assert {"ParameterKey": "ImageTag", "UsePreviousValue": True} in parameters
    # AND a stack that does not exist yet cannot be created without one
    with pytest.raises(DeployError, match="needs ImageTag"):
        compute.cfn_parameters(exists=False)


def test_an_s3_uri_is_split_into_bucket_and_key() -> None:
    artifacts = Artifacts.from_uri("t", "s3://kyperian-staging-artifacts/lambda/abc.zip")
    assert (artifacts.lambda_bucket, artifacts.lambda_key) == (
        "kyperian-staging-artifacts",
        "lambda/abc.zip",
    )
    with pytest.raises(DeployError, match="s3://bucket/key"):
        Artifacts.from_uri("t", "https://example.com/x.zip")


# --- rollback triggers --------------------------------------------------------------------


def test_rollback_triggers_are_the_alarms_the_monitoring_template_flags() -> None:
    # GIVEN one flagged alarm and one for on-call only
    template = {
        "Resources": {
            "Latency": {
                "Type": "AWS::CloudWatch::Alarm",
                "Metadata": {"Kyperian": {"RollbackTrigger": True}},
                "Properties": {"AlarmName": {"Fn::Sub": "kyperian-${EnvironmentName}-latency"}},
            },
            "QueueAge": {
                "Type": "AWS::CloudWatch::Alarm",
                "Properties": {"AlarmName": {"Fn::Sub": "kyperian-${EnvironmentName}-queue-age"}},
            },
        }
    }
    # WHEN / THEN only the flagged one rolls deploys back
    assert alarm_names(template, "staging") == ["kyperian-staging-latency"]


def test_the_real_rollback_triggers_fit_cloudformations_limit() -> None:
    # GIVEN the real monitoring template
    names = alarm_names(load_template(SPECS["monitoring"].template), "production")
    # THEN its flagged alarms are the specification's, named for the environment, at most five
    assert "kyperian-production-high-latency" in names
    assert "kyperian-production-high-error-rate" in names
    assert 0 < len(names) <= 5
    assert plan_for("production", "production.json").alarm_names == tuple(names)


def test_only_traffic_serving_stacks_are_watched_after_their_update() -> None:
    # WHEN the plan sets a 7-minute monitoring period
    plan = plan_for("staging", "staging.json", monitoring_minutes=7)
    minutes = {s.spec.key: plan.monitoring_for(s) for s in plan.steps}
    # THEN the stacks that change what answers requests wait 7 minutes, the others do not
    assert minutes["api"] == minutes["compute"] == minutes["edge"] == 7
    assert minutes["network"] == minutes["data"] == 0


def test_more_than_five_rollback_alarms_are_refused() -> None:
    with pytest.raises(DeployError, match="at most 5"):
        plan_for("staging", "staging.json", rollback_alarms=[f"a{i}" for i in range(6)])


# --- dashboards and printing --------------------------------------------------------------


def test_dashboard_placeholders_are_filled() -> None:
    widget = {"properties": {"region": "${Region}", "title": "${Environment} ${api.HttpApiId}"}}
    body = json.dumps({"widgets": [widget]})
    rendered = render_dashboard(
        body, {"Region": "us-east-1", "Environment": "staging", "api.HttpApiId": "a1b2"}, "d.json"
    )
    props = json.loads(rendered)["widgets"][0]["properties"]
    assert props == {"region": "us-east-1", "title": "staging a1b2"}


def test_an_unknown_dashboard_placeholder_is_an_error_not_a_broken_dashboard() -> None:
    with pytest.raises(DeployError, match=r"unknown placeholder\(s\) Stage"):
        render_dashboard('{"title": "${Stage}"}', {"Region": "us-east-1"}, "d.json")


def test_changes_print_one_line_each_and_flag_replacements() -> None:
    lines = list(
        format_changes(
            [
                {
                    "Action": "Modify",
                    "LogicalResourceId": "Service",
                    "ResourceType": "AWS::ECS::Service",
                    "Replacement": "False",
                },
                {
                    "Action": "Modify",
                    "LogicalResourceId": "Table",
                    "ResourceType": "AWS::DynamoDB::Table",
                    "Replacement": "True",
                },
            ]
        )
    )
    assert lines[0].startswith("Modify  Service [AWS::ECS::Service]")
    assert lines[1].endswith("(REPLACEMENT)")


def test_a_dead_letter_queue_alarm_never_blocks_or_rolls_back_a_deploy() -> None:
    # GIVEN the real monitoring template
    names = alarm_names(load_template(SPECS["monitoring"].template), "production")
    # THEN the DLQ alarm pages but is no rollback trigger (a message an earlier release left in
    # a DLQ would refuse or roll back every deploy until drained), and the others still are
    assert "kyperian-production-dlq-not-empty" not in names
    assert "kyperian-production-high-error-rate" in names


def test_a_template_over_the_inline_limit_is_sent_as_compact_json() -> None:
    # GIVEN the largest template, whose YAML with comments is near CloudFormation's 51,200 bytes
    body = (REPO / "cloudformation" / "cicd.yaml").read_text(encoding="utf-8")
    # WHEN it is compacted
    compact = compact_template(body)
    # THEN it is the same template (long-form intrinsics), far below the limit
    assert json.loads(compact) == load_template(REPO / "cloudformation" / "cicd.yaml")
    assert len(compact.encode()) < 0.8 * 51_200
