"""Least privilege for deploys, read from the templates (issue 17, finding 2).

Every role a stack creates carries a permissions boundary; the CloudFormation execution role
may create roles, give them policies and pass them only with the workload boundary; no grant
uses ``Action: "*"``, a service wildcard such as ``lambda:*`` or ``NotAction``; and
``Resource: "*"`` sits only on reads and on the few writes AWS offers no resource for, each
listed below with its reason; and every action a workload role grants is one the workload
boundary allows (else AWS denies it at run time). The checks are plain functions, run once
against the real templates and once against small bad templates, so a test that could never
fail would show.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

import pytest

from tests.unit.infra.cfn import (
    load_parameter_file,
    load_template,
    parameter_file_names,
    template_names,
)

WORKLOAD_BOUNDARY: Final = "arn:aws:iam::123456789012:policy/kyperian-production-workload-boundary"
#: Writes that AWS offers no resource-level permission for, so they need ``Resource: "*"``.
UNSCOPABLE_WRITES: Final[dict[str, str]] = {
    "ecs:RegisterTaskDefinition": "task definitions have no ARN before they exist",
    "ecs:DeregisterTaskDefinition": "takes the revision, no resource-level permission",
    "logs:PutResourcePolicy": "account-level resource policies (EventBridge to Logs)",
    "logs:DeleteResourcePolicy": "account-level resource policies (EventBridge to Logs)",
    "logs:CreateLogDelivery": "vended log deliveries (WAF logging) have no resource",
    "logs:UpdateLogDelivery": "vended log deliveries (WAF logging) have no resource",
    "logs:DeleteLogDelivery": "vended log deliveries (WAF logging) have no resource",
    "route53:CreateHealthCheck": "a health check has no ARN before it exists",
    "ec2:CreateNetworkInterface": "Lambda's VPC attachment (workload boundary only)",
    "ec2:DeleteNetworkInterface": "Lambda's VPC attachment (workload boundary only)",
    "ec2:AssignPrivateIpAddresses": "Lambda's VPC attachment (workload boundary only)",
    "ec2:UnassignPrivateIpAddresses": "Lambda's VPC attachment (workload boundary only)",
}
READ_VERBS: Final = ("Describe", "Get", "List")
PIPELINE_ROLES: Final = ("DeployRole", "CfnExecutionRole", "PlanRole", "DriftRole")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def roles(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in body["Resources"].items()
        if resource["Type"] == "AWS::IAM::Role"
    }


def granted_statements(body: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role or policy, statement) of every inline role policy and the workload boundary."""
    for logical_id, role in roles(body).items():
        for policy in role.get("Properties", {}).get("Policies", []):
            for statement in policy["PolicyDocument"]["Statement"]:
                yield logical_id, statement
    for logical_id, resource in body["Resources"].items():
        if resource["Type"] == "AWS::IAM::ManagedPolicy" and logical_id != "PipelineBoundary":
            for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                yield logical_id, statement


def roles_without_boundary(body: dict[str, Any]) -> list[str]:
    return [
        logical_id
        for logical_id, role in roles(body).items()
        if not role.get("Properties", {}).get("PermissionsBoundary")
    ]


def statement_findings(where: str, statement: dict[str, Any]) -> list[str]:
    """What breaks least privilege in one Allow statement (empty when nothing does)."""
    if statement.get("Effect") != "Allow":
        return []
    sid = statement.get("Sid", "?")
    if "NotAction" in statement:
        return [f"{where}.{sid}: NotAction grants everything else"]
    actions = [str(action) for action in as_list(statement["Action"])]
    findings = [f"{where}.{sid}: Action {a!r}" for a in actions if a == "*"]
    findings += [
        f"{where}.{sid}: service wildcard {a!r}" for a in actions if re.fullmatch(r"[\w-]+:\*", a)
    ]
    if "*" in as_list(statement.get("Resource", [])):
        findings += [
            f"{where}.{sid}: unscoped write {a!r}"
            for a in actions
            if a not in UNSCOPABLE_WRITES and not a.split(":")[-1].startswith(READ_VERBS)
        ]
    return findings


def template_findings(body: dict[str, Any]) -> list[str]:
    findings = [f"{r}: no PermissionsBoundary" for r in roles_without_boundary(body)]
    for where, statement in granted_statements(body):
        findings += statement_findings(where, statement)
    return findings


# --- the real templates ----------------------------------------------------------------------


@pytest.mark.parametrize("name", template_names())
def test_templates_grant_least_privilege(name: str) -> None:
    # GIVEN a template rendered for production
    body = load_template(name).rendered("production")
    # WHEN its roles, grants and boundaries are read
    findings = template_findings(body)
    # THEN every role carries a boundary and no grant is a wildcard or an unscoped write
    assert findings == []


@pytest.mark.parametrize("name", ["api", "compute", "network"])
def test_workload_roles_carry_the_workload_boundary(name: str) -> None:
    body = load_template(name).rendered("production")
    boundaries = {
        logical_id: role["Properties"]["PermissionsBoundary"]
        for logical_id, role in roles(body).items()
    }
    assert boundaries
    assert set(boundaries.values()) == {WORKLOAD_BOUNDARY}


def test_pipeline_roles_carry_the_pipeline_boundary() -> None:
    body = load_template("cicd").rendered("production")
    assert {
        logical_id: role["Properties"]["PermissionsBoundary"]
        for logical_id, role in roles(body).items()
    } == {
        logical_id: {"Ref": "PipelineBoundary"}
        for logical_id in PIPELINE_ROLES
        if logical_id in roles(body)
    }


def exec_statements() -> dict[str, dict[str, Any]]:
    body = load_template("cicd").rendered("production")
    policies = body["Resources"]["CfnExecutionRole"]["Properties"]["Policies"]
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"]}


def test_execution_role_creates_and_changes_roles_only_with_the_boundary() -> None:
    # GIVEN the execution role's statements
    statements = exec_statements()
    # WHEN the statements that create a role or give it permissions are picked out
    granting = {"iam:CreateRole", "iam:PutRolePolicy", "iam:AttachRolePolicy"}
    guarded = {
        sid: s["Condition"]["StringEquals"]["iam:PermissionsBoundary"]
        for sid, s in statements.items()
        if granting & set(as_list(s["Action"]))
    }
    # THEN every one of them demands the workload boundary
    assert set(guarded) == {
        "StackRolesWithTheBoundary",
        "AttachOnlyTheManagedPoliciesTheTemplatesUse",
    }
    assert list(guarded.values()) == [{"Ref": "WorkloadBoundary"}] * 2
    # AND no other statement grants them, nor removes a boundary
    others = {
        action
        for sid, s in statements.items()
        if sid not in guarded
        for action in as_list(s["Action"])
    }
    assert others & (granting | {"iam:DeleteRolePermissionsBoundary"}) == set()


def test_execution_role_passes_only_stack_roles_to_their_services() -> None:
    passing = {
        sid: s for sid, s in exec_statements().items() if "iam:PassRole" in as_list(s["Action"])
    }
    assert list(passing) == ["PassStackRoles"]
    statement = passing["PassStackRoles"]
    assert statement["Resource"] == "arn:aws:iam::123456789012:role/kyperian-production-*"
    assert set(statement["Condition"]["StringEquals"]["iam:PassedToService"]) == {
        "lambda.amazonaws.com",
        "ecs-tasks.amazonaws.com",
        "ecs.amazonaws.com",
        "vpc-flow-logs.amazonaws.com",
    }


def test_execution_role_never_invokes_a_function() -> None:
    actions = {a for s in exec_statements().values() for a in as_list(s["Action"])}
    assert {a for a in actions if a.startswith("lambda:")} >= {"lambda:CreateFunction"}
    assert "lambda:InvokeFunction" not in actions


def test_network_changes_need_this_environments_tag() -> None:
    # GIVEN every execution-role statement with an EC2 action
    statements = {
        sid: s
        for sid, s in exec_statements().items()
        if any(a.startswith("ec2:") for a in as_list(s["Action"]))
    }
    # THEN each either only reads, is scoped by the kyperian:environment tag, or touches only
    # security group rules (new resources of a tagged group)
    for sid, statement in statements.items():
        actions = as_list(statement["Action"])
        if all(a.split(":")[1].startswith(READ_VERBS) for a in actions if a.startswith("ec2:")):
            continue
        if statement["Resource"].endswith(":security-group-rule/*"):
            continue
        conditions = {
            key: value
            for operator in statement["Condition"].values()
            for key, value in operator.items()
        }
        assert conditions.get("aws:ResourceTag/kyperian:environment") == "production", sid


def test_dns_changes_only_this_environments_records() -> None:
    # GIVEN the statement that changes records
    statement = exec_statements()["Dns"]
    # THEN it names one hosted zone (the environment's, from its SSM parameter)
    assert statement["Resource"] == (
        "arn:aws:route53:::hostedzone//kyperian/production/config/hosted-zone-id"
    )
    # AND only the record names of the environment's parameter
    names = statement["Condition"]["ForAllValues:StringLike"][
        "route53:ChangeResourceRecordSetsNormalizedRecordNames"
    ]
    assert names == load_template("cicd").parameter_values("production")["DnsRecordNames"]
    assert "*" not in names.split(",")


def record_names(parameter_file: str) -> set[str]:
    """The DNS names an environment's stacks create records for (from its parameter files)."""
    keys = {"OriginDomainName", "RegionalDomainName", "PublicDomainName", "EngineDomainName"}
    files = [parameter_file, f"{parameter_file}-dr"]
    return {
        value.lower()
        for name in files
        if name in parameter_file_names()
        for stack in load_parameter_file(name).values()
        for key, value in stack.items()
        if key in keys or key.endswith("RegionalDomainName")
        if value
    }


def string_like(pattern: str, value: str) -> bool:
    """IAM StringLike: * any characters (dots too), ? one character."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


@pytest.mark.parametrize(("own", "other"), [("staging", "production"), ("production", "staging")])
def test_record_name_patterns_cover_own_records_and_none_of_the_other(own: str, other: str) -> None:
    # GIVEN an environment's record-name patterns and the names both environments create
    patterns = load_template("cicd").parameter_values(own)["DnsRecordNames"].split(",")
    own_names, other_names = record_names(own), record_names(other)
    assert own_names
    assert other_names
    # THEN every own name is allowed and no name of the other environment is
    assert [n for n in own_names if not any(string_like(p, n) for p in patterns)] == []
    assert [n for n in other_names if any(string_like(p, n) for p in patterns)] == []


def test_cloudfront_and_elasticache_are_this_environments_own() -> None:
    statements = exec_statements()
    for sid in ("EdgeCreateTagged", "EdgeChangeOwnDistribution"):
        tags = [
            value
            for operator in statements[sid]["Condition"].values()
            for key, value in operator.items()
            if key.endswith("Tag/kyperian:environment")
        ]
        assert tags == ["production"], sid
    assert all(":kyperian-production-" in resource for resource in statements["Cache"]["Resource"])


def test_pipeline_boundary_denies_the_ways_out() -> None:
    # GIVEN the boundary of the pipeline roles
    body = load_template("cicd").rendered("production")
    statements = {
        s["Sid"]: s
        for s in body["Resources"]["PipelineBoundary"]["Properties"]["PolicyDocument"]["Statement"]
    }
    # THEN it denies a role without the workload boundary, removing one, rewriting a boundary
    # and changing the pipeline roles
    denied = {sid for sid, s in statements.items() if s["Effect"] == "Deny"}
    assert denied == {
        "NoRoleWithoutTheWorkloadBoundary",
        "NoBoundaryRemoval",
        "NoBoundaryRewrite",
        "NoChangeToThePipelineRoles",
    }
    assert statements["NoRoleWithoutTheWorkloadBoundary"]["Condition"] == {
        "StringNotEquals": {"iam:PermissionsBoundary": WORKLOAD_BOUNDARY}
    }
    # AND its only broad allow leaves identity and account actions out
    assert set(statements["EverythingButIdentityAndAccount"]["NotAction"]) >= {
        "iam:*",
        "sts:*",
        "organizations:*",
    }


def test_workload_boundary_grants_no_identity_action() -> None:
    body = load_template("cicd").rendered("production")
    document = body["Resources"]["WorkloadBoundary"]["Properties"]["PolicyDocument"]
    actions = {a for s in document["Statement"] for a in as_list(s["Action"])}
    assert {a.split(":")[0] for a in actions} & {"iam", "sts", "organizations"} == set()


# --- the checks catch what they are for ------------------------------------------------------


def bad_template(**statement: Any) -> dict[str, Any]:
    return {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "PermissionsBoundary": WORKLOAD_BOUNDARY,
                    "Policies": [
                        {
                            "PolicyName": "p",
                            "PolicyDocument": {
                                "Statement": [{"Sid": "Bad", "Effect": "Allow", **statement}]
                            },
                        }
                    ],
                },
            }
        }
    }


@pytest.mark.parametrize(
    ("statement", "finding"),
    [
        ({"Action": "*", "Resource": "arn:aws:s3:::b"}, "Action '*'"),
        ({"Action": ["lambda:*"], "Resource": "arn:aws:lambda:*:1:function:x"}, "lambda:*"),
        ({"Action": "sqs:SendMessage", "Resource": "*"}, "unscoped write 'sqs:SendMessage'"),
        ({"NotAction": "iam:*", "Resource": "*"}, "NotAction"),
    ],
)
def test_a_bad_grant_is_found(statement: dict[str, Any], finding: str) -> None:
    # GIVEN a template whose one statement breaks least privilege
    # WHEN it is checked
    findings = template_findings(bad_template(**statement))
    # THEN the finding names it
    assert len(findings) == 1
    assert finding in findings[0]


def test_a_role_without_boundary_is_found() -> None:
    body = bad_template(Action="sqs:SendMessage", Resource="arn:aws:sqs:*:1:q")
    del body["Resources"]["Role"]["Properties"]["PermissionsBoundary"]
    assert template_findings(body) == ["Role: no PermissionsBoundary"]


def test_reads_and_documented_writes_may_be_unscoped() -> None:
    body = bad_template(Action=["ec2:DescribeVpcs", "ecs:RegisterTaskDefinition"], Resource="*")
    assert template_findings(body) == []


def actions_outside_boundary(
    roles_body: dict[str, Any], boundary_statements: list[dict[str, Any]]
) -> list[str]:
    """``role: action`` for every granted action no Allow of the boundary names (glob match)."""
    allowed = [
        re.compile(re.escape(a).replace(r"\*", ".*") + "$", re.IGNORECASE)
        for s in boundary_statements
        if s["Effect"] == "Allow"
        for a in as_list(s["Action"])
    ]
    return [
        f"{logical_id}: {action}"
        for logical_id, role in roles(roles_body).items()
        for policy in role.get("Properties", {}).get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Allow"
        for action in as_list(statement["Action"])
        if not any(p.match(action) for p in allowed)
    ]


def workload_boundary_statements() -> list[dict[str, Any]]:
    cicd = load_template("cicd").rendered("production")
    statements: list[dict[str, Any]] = cicd["Resources"]["WorkloadBoundary"]["Properties"][
        "PolicyDocument"
    ]["Statement"]
    return statements


@pytest.mark.parametrize("name", ["api", "compute", "network"])
def test_workload_roles_grant_only_what_the_boundary_allows(name: str) -> None:
    # GIVEN a stack's workload roles and the workload boundary cicd.yaml creates
    body = load_template(name).rendered("production")
    # WHEN each granted action is looked up among the boundary's allowed actions
    outside = actions_outside_boundary(body, workload_boundary_statements())
    # THEN none is missing: a grant the boundary lacks is denied at run time
    assert outside == []


def test_an_action_the_boundary_lacks_is_found() -> None:
    # GIVEN a role granting kms:Decrypt and a boundary allowing only sns:Publish
    body = {
        "Resources": {
            "R": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [
                        {
                            "PolicyDocument": {
                                "Statement": [
                                    {"Effect": "Allow", "Action": ["sns:Publish", "kms:Decrypt"]}
                                ]
                            }
                        }
                    ]
                },
            }
        }
    }
    boundary = [{"Effect": "Allow", "Action": "sns:*"}]
    # WHEN the role is checked against the boundary
    outside = actions_outside_boundary(body, boundary)
    # THEN only the missing action is reported
    assert outside == ["R: kms:Decrypt"]
