"""The conventions every template and parameter file keeps (docs/architecture.md, STYLE.md).

Descriptions on templates, parameters and outputs; one EnvironmentName parameter; parameter
files that name exactly the parameters of each stack; exports named ``<env>:Key`` and every
import backed by an export; a reason beside every checkov suppression; no account ids (but
AWS's own Elastic Load Balancing log-delivery accounts). IAM is checked in
test_iam_least_privilege.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.unit.infra.cfn import (
    DEPLOY_TIME_PARAMETERS,
    PARAMETER_DIR,
    TEMPLATE_DIR,
    load_parameter_file,
    load_template,
    lookup,
    parameter_file_names,
    template_names,
)

EXPECTED_STACKS = {
    "network",
    "config",
    "data",
    "messaging",
    "api",
    "edge",
    "compute",
    "monitoring",
    "cicd",
    "dr",
}


def walk(value: Any) -> Iterator[Any]:
    """Every node of a parsed template, depth first."""
    yield value
    if isinstance(value, dict):
        for item in value.values():
            yield from walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item)


def test_the_stacks_of_the_issue_exist() -> None:
    assert set(template_names()) == EXPECTED_STACKS


@pytest.mark.parametrize("name", sorted(EXPECTED_STACKS))
def test_template_parameters_and_outputs_are_described(name: str) -> None:
    # GIVEN a template
    template = load_template(name)
    # THEN it, each of its parameters and each of its outputs says what it is
    assert template.body.get("Description", "").strip()
    undocumented = [
        f"{kind} {key}"
        for kind, section in (("parameter", template.parameters), ("output", template.outputs))
        for key, spec in section.items()
        if not str(spec.get("Description", "")).strip()
    ]
    assert undocumented == []


@pytest.mark.parametrize("name", sorted(EXPECTED_STACKS))
def test_every_template_takes_the_environment(name: str) -> None:
    spec = load_template(name).parameters["EnvironmentName"]
    assert (spec["Type"], spec["AllowedValues"], "Default" in spec) == (
        "String",
        ["staging", "production"],
        False,
    )


@pytest.mark.parametrize("parameter_file", ["staging", "production", "production-dr"])
def test_parameter_files_exist(parameter_file: str) -> None:
    assert parameter_file in parameter_file_names()


@pytest.mark.parametrize("parameter_file", parameter_file_names())
def test_parameter_file_keys_match_the_template_parameters(parameter_file: str) -> None:
    # GIVEN a parameter file: one object per stack
    stacks = load_parameter_file(parameter_file)
    environment = parameter_file.removesuffix("-dr")
    for stack, values in stacks.items():
        template = load_template(stack)
        # THEN it gives every parameter but those the deploy workflow fills, and nothing else
        expected = set(template.parameters) - DEPLOY_TIME_PARAMETERS.get(stack, frozenset())
        assert set(values) == expected, stack
        # AND values are strings, for the environment the file is named after
        assert all(isinstance(value, str) for value in values.values()), stack
        assert values["EnvironmentName"] == environment, stack


@pytest.mark.parametrize("parameter_file", ["staging", "production"])
def test_an_environment_file_covers_every_stack(parameter_file: str) -> None:
    assert set(load_parameter_file(parameter_file)) == EXPECTED_STACKS


def test_the_dr_file_deploys_only_regional_stacks() -> None:
    # config (secrets are replicas), edge (us-east-1) and dr (Route 53) exist once per environment
    assert set(load_parameter_file("production-dr")) == EXPECTED_STACKS - {"config", "edge", "dr"}


def test_deploy_time_parameters_have_no_default() -> None:
    for stack, names in DEPLOY_TIME_PARAMETERS.items():
        parameters = load_template(stack).parameters
        assert {name: "Default" in parameters[name] for name in names} == dict.fromkeys(
            names, False
        )


@pytest.mark.parametrize("parameter_file", parameter_file_names())
def test_parameter_values_satisfy_the_template_constraints(parameter_file: str) -> None:
    for stack, values in load_parameter_file(parameter_file).items():
        parameters = load_template(stack).parameters
        for key, value in values.items():
            spec = parameters[key]
            if "AllowedValues" in spec:
                assert value in [str(v) for v in spec["AllowedValues"]], (stack, key)
            if "AllowedPattern" in spec:
                assert re.fullmatch(spec["AllowedPattern"], value), (stack, key)


def exports() -> dict[str, str]:
    """Export name (as written) -> stack."""
    found = {}
    for name in template_names():
        for output in load_template(name).outputs.values():
            if "Export" in output:
                found[output["Export"]["Name"]["Fn::Sub"]] = name
    return found


def test_exports_are_named_environment_colon_key() -> None:
    names = list(exports())
    assert [n for n in names if not re.fullmatch(r"\$\{EnvironmentName\}:[A-Z][A-Za-z]+", n)] == []


def test_exports_stay_few() -> None:
    # Each export pins its value while imported: keep the list short and stable.
    assert len(exports()) <= 16


@pytest.mark.parametrize("name", sorted(EXPECTED_STACKS))
def test_every_import_is_exported_by_another_stack(name: str) -> None:
    # GIVEN the exports of all stacks
    available = exports()
    # WHEN a template imports a value
    imported = [
        node["Fn::ImportValue"]["Fn::Sub"]
        for node in walk(load_template(name).body)
        if isinstance(node, dict) and "Fn::ImportValue" in node
    ]
    # THEN some other stack exports it
    missing = [i for i in imported if i not in available or available[i] == name]
    assert missing == []


@pytest.mark.parametrize("name", sorted(EXPECTED_STACKS))
def test_every_checkov_suppression_carries_its_reason(name: str) -> None:
    for logical_id, resource in load_template(name).resources.items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert re.fullmatch(r"CKV2?_AWS_\d+|CKV_KYP_\d+", skip["id"]), logical_id
            assert len(skip.get("comment", "").split()) >= 5, (logical_id, skip["id"])


@pytest.mark.parametrize("name", sorted(EXPECTED_STACKS))
def test_no_cfn_lint_suppression_without_reason(name: str) -> None:
    # cfn-lint suppressions need a reason comment next to them; there are none today.
    text = (TEMPLATE_DIR / f"{name}.yaml").read_text(encoding="utf-8")
    assert "ignore_checks" not in text


@pytest.mark.parametrize(
    "path", sorted([*TEMPLATE_DIR.glob("*.yaml"), *PARAMETER_DIR.glob("*.json")]), ids=str
)
def test_no_account_id_is_written_down(path: Any) -> None:
    # Account ids come from AWS::AccountId or operator-created SSM parameters, never from git.
    # The one exception: AWS's regional Elastic Load Balancing accounts that deliver ALB access
    # logs (compute.yaml's ElbLogDeliveryAccount mapping, from the ELB documentation).
    found = re.findall(r"(?<![\d.])\d{12}(?![\d.])", path.read_text(encoding="utf-8"))
    assert [account for account in found if account not in elb_log_delivery_accounts()] == []


def elb_log_delivery_accounts() -> set[str]:
    mapping = load_template("compute").body["Mappings"]["ElbLogDeliveryAccount"]
    return {entry["AccountId"] for entry in mapping.values()}


def test_elb_log_delivery_accounts_are_only_in_their_mapping() -> None:
    # GIVEN the accounts of the mapping
    accounts = elb_log_delivery_accounts()
    # THEN none of them appears anywhere else (so the exception above hides no real account)
    text = (TEMPLATE_DIR / "compute.yaml").read_text(encoding="utf-8")
    assert all(text.count(account) == 1 for account in accounts)
    assert len(accounts) >= 17


@pytest.mark.parametrize("name", sorted(EXPECTED_STACKS))
def test_named_resources_carry_the_environment(name: str) -> None:
    # GIVEN every explicit name property of a template rendered for production
    rendered = load_template(name).rendered("production")
    name_keys = {
        "Name",
        "TableName",
        "QueueName",
        "FunctionName",
        "LogGroupName",
        "ClusterName",
        "ServiceName",
        "Family",
        "RepositoryName",
        "TopicName",
        "AlarmName",
        "ReplicationGroupId",
        "RoleName",
        "BucketName",
        "PolicyName",
    }
    # (DNS records and VPC endpoints name DNS zones and AWS services, not our resources.)
    not_ours = {"AWS::Route53::RecordSet", "AWS::EC2::VPCEndpoint"}
    names = [
        value
        for resource in rendered["Resources"].values()
        if resource["Type"] not in not_ours
        for key, value in resource.get("Properties", {}).items()
        if key in name_keys and isinstance(value, str)
    ]
    # THEN each says which environment it belongs to
    assert [n for n in names if "production" not in n] == []


def test_lookup_picks_list_items_by_field() -> None:
    data = {"Tags": [{"Key": "a.b", "Value": 1}, {"Key": "c", "Value": 2}]}
    assert (lookup(data, "Tags[Key=a.b].Value"), lookup(data, "Tags[1].Key")) == (1, "c")
    with pytest.raises(KeyError, match="0 items"):
        lookup(data, "Tags[Key=missing]")
