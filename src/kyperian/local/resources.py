"""Create the AWS resources of the signal path in an emulator (moto), as the stacks do.

Names follow the templates' ``kyperian-<environment>-...`` convention: the Signals and
Decisions tables (keys, GSI, TTL), the event bus, the ``SignalValidated`` rule with the
engine's SQS queue (and its DLQ) and the audit log group as targets, and the API key
secret. Used by the local stack and by tests that need the same shapes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

EVENT_PATTERN = {"source": ["kyperian.signal.validator"], "detail-type": ["SignalValidated"]}
MAX_RECEIVES = 5


@dataclass(frozen=True)
class LocalResources:
    """What ``provision`` created."""

    signals_table: str
    decisions_table: str
    bus: str
    queue_url: str
    dlq_url: str
    api_key_secret_id: str


def _create_table(dynamodb: Any, name: str, with_gsi: bool) -> None:
    attributes = [("PK", "S"), ("SK", "S")] + ([("symbol", "S"), ("timestamp", "S")] * with_gsi)
    spec: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in attributes],
        "KeySchema": [
            {"AttributeName": "PK", "KeyType": "HASH"},
            {"AttributeName": "SK", "KeyType": "RANGE"},
        ],
    }
    if with_gsi:
        spec["GlobalSecondaryIndexes"] = [
            {
                "IndexName": "symbol-timestamp-index",
                "KeySchema": [
                    {"AttributeName": "symbol", "KeyType": "HASH"},
                    {"AttributeName": "timestamp", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ]
    dynamodb.create_table(**spec)
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def provision(clients: dict[str, Any], environment: str, api_key: str) -> LocalResources:
    """Create everything the signal path needs; ``clients`` maps service name -> client."""
    prefix = f"kyperian-{environment}"
    _create_table(clients["dynamodb"], f"{prefix}-signals", with_gsi=True)
    _create_table(clients["dynamodb"], f"{prefix}-decisions", with_gsi=False)
    dlq_url, dlq_arn = _queue(clients["sqs"], f"{prefix}-signals-dlq", {})
    redrive = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVES})
    queue_url, queue_arn = _queue(
        clients["sqs"],
        f"{prefix}-signals",
        {
            "VisibilityTimeout": "60",
            "ReceiveMessageWaitTimeSeconds": "20",
            "RedrivePolicy": redrive,
        },
    )
    bus = f"{prefix}-bus"
    events = clients["events"]
    events.create_event_bus(Name=bus)
    rule = f"{prefix}-signal-validated"
    events.put_rule(Name=rule, EventBusName=bus, EventPattern=json.dumps(EVENT_PATTERN))
    audit_group = f"/aws/events/{prefix}-signals"
    clients["logs"].create_log_group(logGroupName=audit_group)
    groups = clients["logs"].describe_log_groups(logGroupNamePrefix=audit_group)["logGroups"]
    audit_arn = groups[0]["arn"].removesuffix(":*")
    events.put_targets(
        Rule=rule,
        EventBusName=bus,
        Targets=[{"Id": "engine-queue", "Arn": queue_arn}, {"Id": "audit-log", "Arn": audit_arn}],
    )
    secret_id = f"/kyperian/{environment}/api/key"
    clients["secretsmanager"].create_secret(Name=secret_id, SecretString=api_key)
    return LocalResources(
        f"{prefix}-signals", f"{prefix}-decisions", bus, queue_url, dlq_url, secret_id
    )
