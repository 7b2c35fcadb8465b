"""Drift detection as the scheduled workflow runs it (CloudFormation answers through Stubber:
moto has no drift detection)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from botocore.stub import Stubber

from kyperian.ops.drift import Drift, markdown
from kyperian.ops.parameters import TEMPLATES, load_parameter_file

PARAMETERS = TEMPLATES / "parameters"


def two_stacks(tmp_path: Path) -> Path:
    data = json.loads((PARAMETERS / "staging.json").read_text(encoding="utf-8"))
    path = tmp_path / "staging.json"
    path.write_text(json.dumps({k: data[k] for k in ("network", "data")}), encoding="utf-8")
    return path


def test_a_hand_edit_is_reported_with_its_property(tmp_path: Path) -> None:
    # GIVEN network in sync, and data whose table lost its deletion protection by hand
    client = boto3.client("cloudformation", region_name="us-east-1")
    stub = Stubber(client)
    stub.add_response(
        "detect_stack_drift",
        {"StackDriftDetectionId": "n1"},
        {"StackName": "kyperian-staging-network"},
    )
    stub.add_response(
        "describe_stack_drift_detection_status",
        {
            "StackId": "n",
            "StackDriftDetectionId": "n1",
            "DetectionStatus": "DETECTION_IN_PROGRESS",
            "Timestamp": "2026-11-28T00:00:00Z",
        },
    )
    stub.add_response(
        "describe_stack_drift_detection_status",
        {
            "StackId": "n",
            "StackDriftDetectionId": "n1",
            "DetectionStatus": "DETECTION_COMPLETE",
            "StackDriftStatus": "IN_SYNC",
            "Timestamp": "2026-11-28T00:00:00Z",
        },
    )
    stub.add_response(
        "detect_stack_drift",
        {"StackDriftDetectionId": "d1"},
        {"StackName": "kyperian-staging-data"},
    )
    stub.add_response(
        "describe_stack_drift_detection_status",
        {
            "StackId": "d",
            "StackDriftDetectionId": "d1",
            "DetectionStatus": "DETECTION_COMPLETE",
            "StackDriftStatus": "DRIFTED",
            "Timestamp": "2026-11-28T00:00:00Z",
        },
    )
    stub.add_response(
        "describe_stack_resource_drifts",
        {
            "StackResourceDrifts": [
                {
                    "StackId": "d",
                    "LogicalResourceId": "SignalsTable",
                    "ResourceType": "AWS::DynamoDB::GlobalTable",
                    "StackResourceDriftStatus": "MODIFIED",
                    "Timestamp": "2026-11-28T00:00:00Z",
                    "PropertyDifferences": [
                        {
                            "PropertyPath": "/Replicas/0/DeletionProtectionEnabled",
                            "ExpectedValue": "true",
                            "ActualValue": "false",
                            "DifferenceType": "NOT_EQUAL",
                        }
                    ],
                }
            ]
        },
        {
            "StackName": "kyperian-staging-data",
            "StackResourceDriftStatusFilters": ["MODIFIED", "DELETED"],
        },
    )
    file = load_parameter_file(two_stacks(tmp_path))

    def clients(service: str, region: str) -> Any:
        return client

    # WHEN drift is detected
    with stub:
        drifts = Drift(file, "us-east-1", clients, sleep=lambda _: None).run()
    # THEN the hand edit is named, down to the property
    assert [(d.stack, d.status) for d in drifts] == [
        ("kyperian-staging-network", "IN_SYNC"),
        ("kyperian-staging-data", "DRIFTED"),
    ]
    text = markdown(file, drifts)
    assert (
        "| `SignalsTable` | AWS::DynamoDB::GlobalTable | MODIFIED"
        " | /Replicas/0/DeletionProtectionEnabled | `true` | `false` |" in text
    )


def test_a_stack_not_deployed_is_missing_not_an_error(tmp_path: Path) -> None:
    client = boto3.client("cloudformation", region_name="us-east-1")
    stub = Stubber(client)
    for _ in range(2):
        stub.add_client_error(
            "detect_stack_drift",
            service_error_code="ValidationError",
            service_message="Stack with id x does not exist",
        )
    file = load_parameter_file(two_stacks(tmp_path))
    with stub:
        drifts = Drift(file, "us-east-1", lambda s, r: client).run()
    assert {d.status for d in drifts} == {"MISSING"}
