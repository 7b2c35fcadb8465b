"""Kyperian's checkov policies (tools/checkov, CKV_KYP_*) fail the templates they are for.

One checkov run (the scanner environment .venv-scan, synced from its lock like
scripts/cfn-check.sh does) over small templates in tmp_path: each bad template breaks exactly
one invariant and must fail exactly that policy; the good one must pass them all. The real
templates pass them in scripts/cfn-check.sh (`make lint`).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
POLICIES = [f"CKV_KYP_{n}" for n in range(1, 8)]

HEADER = 'AWSTemplateFormatVersion: "2010-09-09"\nDescription: policy test\nResources:\n'

BAD: dict[str, tuple[str, str]] = {
    "CKV_KYP_1": (
        "PITR missing on the DR replica only",
        """  Table:
    Type: AWS::DynamoDB::GlobalTable
    Properties:
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
      Replicas:
        - Region: us-east-1
          PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
        - !If
          - HasDr
          - Region: us-west-2
            PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: false}
          - !Ref AWS::NoValue
""",
    ),
    "CKV_KYP_2": (
        "table without TTL",
        """  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
""",
    ),
    "CKV_KYP_3": (
        "work queue without dead-letter queue",
        """  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub kyperian-${EnvironmentName}-work
""",
    ),
    "CKV_KYP_4": (
        "log group kept forever",
        """  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      LogGroupName: /kyperian/test
""",
    ),
    "CKV_KYP_5": (
        "role without permissions boundary",
        """  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Statement:
          - {Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}
""",
    ),
    "CKV_KYP_6": (
        "bucket whose public policies are not blocked",
        """  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      PublicAccessBlockConfiguration:
        BlockPublicAcls: true
        BlockPublicPolicy: false
        IgnorePublicAcls: true
        RestrictPublicBuckets: true
""",
    ),
    "CKV_KYP_7": (
        "alarm without runbook link",
        """  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: Something is wrong.
      MetricName: Errors
      Namespace: AWS/Lambda
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanThreshold
""",
    ),
}

GOOD = """  Table:
    Type: AWS::DynamoDB::GlobalTable
    Properties:
      TimeToLiveSpecification: {AttributeName: ttl, Enabled: true}
      Replicas:
        - Region: us-east-1
          PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
        - !If
          - HasDr
          - Region: us-west-2
            PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}
          - !Ref AWS::NoValue
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub kyperian-${EnvironmentName}-work
      RedrivePolicy: {deadLetterTargetArn: !GetAtt Dlq.Arn, maxReceiveCount: 5}
  Dlq:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub kyperian-${EnvironmentName}-work-dlq
  Logs:
    Type: AWS::Logs::LogGroup
    Properties:
      RetentionInDays: 30
  Role:
    Type: AWS::IAM::Role
    Properties:
      PermissionsBoundary: !Sub arn:${AWS::Partition}:iam::${AWS::AccountId}:policy/b
      AssumeRolePolicyDocument:
        Statement:
          - {Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}
  Bucket:
    Type: AWS::S3::Bucket
    Properties:
      PublicAccessBlockConfiguration:
        BlockPublicAcls: true
        BlockPublicPolicy: true
        IgnorePublicAcls: true
        RestrictPublicBuckets: true
  Alarm:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmDescription: !Sub "Errors. Runbook: ${RunbookBaseUrl}/high-error-rate.md"
      MetricName: Errors
      Namespace: AWS/Lambda
      Statistic: Sum
      Period: 60
      EvaluationPeriods: 1
      Threshold: 1
      ComparisonOperator: GreaterThanThreshold
"""


def checkov() -> Path:
    """The scanner environment's checkov, synced from its lock as scripts/cfn-check.sh does."""
    subprocess.run(
        [  # noqa: S607 - bash from PATH, as make runs it
            "bash",
            "-c",
            "source scripts/lint-env.sh && ensure_tool_venv .venv-scan tools/scan-requirements.txt",
        ],
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    return REPO / ".venv-scan" / "bin" / "checkov"


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """File name -> the CKV_KYP policies it failed, from one checkov run over all templates."""
    directory = tmp_path_factory.mktemp("templates")
    for check_id, (_, resources) in BAD.items():
        (directory / f"{check_id}.yaml").write_text(HEADER + resources, encoding="utf-8")
    (directory / "good.yaml").write_text(HEADER + GOOD, encoding="utf-8")
    result = subprocess.run(  # noqa: S603 - the scanner venv's checkov, fixed arguments
        [
            str(checkov()),
            "-d",
            str(directory),
            "--framework",
            "cloudformation",
            "--skip-download",
            "--external-checks-dir",
            str(REPO / "tools" / "checkov"),
            "--check",
            ",".join(POLICIES),
            "--output",
            "json",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    report: Any = json.loads(result.stdout)
    found: dict[str, set[str]] = {path.name: set() for path in directory.glob("*.yaml")}
    passed = {c["check_id"] for c in report["results"]["passed_checks"]}
    assert passed >= set(POLICIES), "every policy ran on the good template"
    for failed in report["results"]["failed_checks"]:
        found[Path(failed["file_path"]).name].add(failed["check_id"])
    return found


@pytest.mark.parametrize("check_id", sorted(BAD), ids=[BAD[c][0] for c in sorted(BAD)])
def test_a_template_breaking_an_invariant_fails_its_policy(
    check_id: str, failures: dict[str, set[str]]
) -> None:
    # GIVEN a template that breaks exactly one invariant
    # WHEN checkov runs Kyperian's policies on it
    # THEN exactly that policy fails
    assert failures[f"{check_id}.yaml"] == {check_id}


def test_a_template_keeping_every_invariant_passes(failures: dict[str, set[str]]) -> None:
    assert failures["good.yaml"] == set()
