"""Kyperian's own invariants as checkov custom policies (CKV_KYP_*), run by scripts/cfn-check.sh.

checkov's built-in checks cover AWS best practice; these cover what this project promised and a
review once found broken: point-in-time recovery on every replica of a table (the built-in
CKV_AWS_165 reads only the first), a TTL on every table, a dead-letter queue behind every work
queue, a retention on every log group, the permissions boundary on every created role, no
public bucket, and a runbook link in every alarm description. Each has a bad template in
tests/integration/test_policy_as_code.py that must fail it.

checkov imports this file from ``--external-checks-dir tools/checkov``; it runs in the scanner
environment (.venv-scan), never in the project's.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.common.models.enums import CheckCategories, CheckResult

_RUNBOOK = re.compile(r"Runbook: (\$\{RunbookBaseUrl\}|https://\S+)/[A-Za-z0-9._/-]+\.md")


def _properties(conf: dict[str, Any]) -> dict[str, Any]:
    properties = conf.get("Properties")
    return properties if isinstance(properties, dict) else {}


def _branches(value: Any) -> Iterator[Any]:
    """The value, or each branch of an ``Fn::If`` (recursively); ``AWS::NoValue`` drops out."""
    if isinstance(value, dict) and "Fn::If" in value:
        arguments = value["Fn::If"]
        if isinstance(arguments, list) and len(arguments) == 3:
            yield from _branches(arguments[1])
            yield from _branches(arguments[2])
        return
    if isinstance(value, dict) and value.get("Ref") == "AWS::NoValue":
        return
    yield value


def _is_true(value: Any) -> bool:
    branches = list(_branches(value))
    return bool(branches) and all(b is True or str(b).lower() == "true" for b in branches)


def _text(value: Any) -> str:
    """The literal text of a string, ``Fn::Sub`` or ``Fn::Join``; empty when unknown."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        argument = value["Fn::Sub"]
        return _text(argument[0] if isinstance(argument, list) else argument)
    if isinstance(value, dict) and "Fn::Join" in value:
        delimiter, items = value["Fn::Join"]
        return str(delimiter).join(_text(item) for item in items)
    return ""


class _Check(BaseResourceCheck):
    def __init__(self, name: str, check_id: str, category: CheckCategories, types: list[str]):
        super().__init__(name=name, id=check_id, categories=[category], supported_resources=types)


class TablePointInTimeRecovery(_Check):
    def __init__(self) -> None:
        super().__init__(
            "Every replica of a DynamoDB table keeps point-in-time recovery",
            "CKV_KYP_1",
            CheckCategories.BACKUP_AND_RECOVERY,
            ["AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = _properties(conf)
        if conf.get("Type") == "AWS::DynamoDB::GlobalTable":
            replicas = [
                replica
                for item in properties.get("Replicas", [])
                for replica in _branches(item)
                if isinstance(replica, dict)
            ]
            specs = [r.get("PointInTimeRecoverySpecification") or {} for r in replicas]
        else:
            specs = [properties.get("PointInTimeRecoverySpecification") or {}]
        ok = bool(specs) and all(_is_true(s.get("PointInTimeRecoveryEnabled")) for s in specs)
        return CheckResult.PASSED if ok else CheckResult.FAILED


class TableTimeToLive(_Check):
    def __init__(self) -> None:
        super().__init__(
            "Every DynamoDB table expires its items with a TTL attribute",
            "CKV_KYP_2",
            CheckCategories.GENERAL_SECURITY,
            ["AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        ttl = _properties(conf).get("TimeToLiveSpecification") or {}
        ok = _is_true(ttl.get("Enabled")) and bool(ttl.get("AttributeName"))
        return CheckResult.PASSED if ok else CheckResult.FAILED


class QueueDeadLetterQueue(_Check):
    """A queue sends what it cannot deliver to a DLQ, unless it is a DLQ itself."""

    def __init__(self) -> None:
        super().__init__(
            "Every SQS queue has a dead-letter queue (or is one)",
            "CKV_KYP_3",
            CheckCategories.GENERAL_SECURITY,
            ["AWS::SQS::Queue"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = _properties(conf)
        redrive = properties.get("RedrivePolicy")
        has_dlq = isinstance(redrive, dict) and bool(redrive.get("deadLetterTargetArn"))
        is_dlq = "RedriveAllowPolicy" in properties or _text(properties.get("QueueName")).endswith(
            "-dlq"
        )
        return CheckResult.PASSED if has_dlq or is_dlq else CheckResult.FAILED


class LogGroupRetention(_Check):
    def __init__(self) -> None:
        super().__init__(
            "Every log group has a retention",
            "CKV_KYP_4",
            CheckCategories.LOGGING,
            ["AWS::Logs::LogGroup"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        retention = _properties(conf).get("RetentionInDays")
        return CheckResult.PASSED if retention not in (None, "") else CheckResult.FAILED


class RolePermissionsBoundary(_Check):
    def __init__(self) -> None:
        super().__init__(
            "Every IAM role a stack creates carries a permissions boundary",
            "CKV_KYP_5",
            CheckCategories.IAM,
            ["AWS::IAM::Role"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        boundary = _properties(conf).get("PermissionsBoundary")
        return CheckResult.PASSED if boundary else CheckResult.FAILED


class BucketNotPublic(_Check):
    def __init__(self) -> None:
        super().__init__(
            "Every S3 bucket blocks public access and grants no public ACL",
            "CKV_KYP_6",
            CheckCategories.GENERAL_SECURITY,
            ["AWS::S3::Bucket"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        properties = _properties(conf)
        block = properties.get("PublicAccessBlockConfiguration") or {}
        flags = (
            "BlockPublicAcls",
            "BlockPublicPolicy",
            "IgnorePublicAcls",
            "RestrictPublicBuckets",
        )
        blocked = all(_is_true(block.get(flag)) for flag in flags)
        public_acl = str(properties.get("AccessControl", "")).startswith(
            ("Public", "AuthenticatedRead")
        )
        website = "WebsiteConfiguration" in properties
        ok = blocked and not public_acl and not website
        return CheckResult.PASSED if ok else CheckResult.FAILED


class AlarmRunbookLink(_Check):
    def __init__(self) -> None:
        super().__init__(
            "Every CloudWatch alarm description links its runbook page",
            "CKV_KYP_7",
            CheckCategories.CONVENTION,
            ["AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"],
        )

    def scan_resource_conf(self, conf: dict[str, Any]) -> CheckResult:
        description = _text(_properties(conf).get("AlarmDescription"))
        return CheckResult.PASSED if _RUNBOOK.search(description) else CheckResult.FAILED


checks = [
    TablePointInTimeRecovery(),
    TableTimeToLive(),
    QueueDeadLetterQueue(),
    LogGroupRetention(),
    RolePermissionsBoundary(),
    BucketNotPublic(),
    AlarmRunbookLink(),
]
