"""Smoke deployment of the stacks moto's CloudFormation can create: network, data, messaging.

The templates are deployed in order into in-process moto (us-east-1) with the staging parameter
file, and the test checks that the resources exist and are wired to each other: subnet CIDRs,
security-group sources, NAT and endpoints; table keys and the GSI; bus -> rule -> queue and
audit log with their DLQs, an event really delivered, and the work queue's redrive.

moto is an emulator, so this proves wiring, never a property AWS enforces. Two translations
make data.yaml deployable there, both visible below: moto's CloudFormation has no
``AWS::DynamoDB::GlobalTable`` (each global table is deployed as the ``AWS::DynamoDB::Table``
of its primary-region replica: same name, keys, GSI, billing, encryption, stream, PITR) and
no ElastiCache (its resources, and what reads their attributes, are left out).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto import mock_aws

from kyperian.local.templates import for_moto
from tests.unit.infra.cfn import load_parameter_file, load_template

if TYPE_CHECKING:
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_sqs import SQSClient

pytestmark = [
    pytest.mark.integration,
    # moto's CloudFormation skips queue policies (their wiring is checked in tests/unit/infra).
    pytest.mark.filterwarnings(r"ignore:Tried to parse AWS.{2}SQS.{2}QueuePolicy"),
]

REGION = "us-east-1"
ENVIRONMENT = "staging"


@dataclass(frozen=True)
class Deployed:
    """Clients of the moto account and the physical ids of each stack's resources."""

    cloudformation: CloudFormationClient
    dynamodb: DynamoDBClient
    events: EventBridgeClient
    sqs: SQSClient
    logs: CloudWatchLogsClient
    ec2: Any
    physical_ids: dict[str, dict[str, str]]

    def physical_id(self, stack: str, logical_id: str) -> str:
        return self.physical_ids[stack][logical_id]

    def queue_arn(self, queue_url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]


def deploy(cloudformation: CloudFormationClient, stack: str, body: dict[str, Any]) -> None:
    given = load_parameter_file(ENVIRONMENT)[stack]
    cloudformation.create_stack(
        StackName=f"kyperian-{ENVIRONMENT}-{stack}",
        TemplateBody=json.dumps(body),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            patch.setenv(name, value)
        with mock_aws():
            session = boto3.session.Session(region_name=REGION)
            cloudformation = session.client("cloudformation")
            # GIVEN the stacks moto supports, deployed in the documented order
            deploy(cloudformation, "network", load_template("network").body)
            deploy(cloudformation, "data", for_moto(load_template("data").body))
            deploy(cloudformation, "messaging", load_template("messaging").body)
            # (moto lists the resources it ignored, e.g. queue policies, without an id.)
            physical_ids = {
                stack: {
                    r["LogicalResourceId"]: r.get("PhysicalResourceId", "")
                    for r in cloudformation.describe_stack_resources(
                        StackName=f"kyperian-{ENVIRONMENT}-{stack}"
                    )["StackResources"]
                    if "LogicalResourceId" in r
                }
                for stack in ("network", "data", "messaging")
            }
            ec2: Any = session.client("ec2")
            yield Deployed(
                cloudformation=cloudformation,
                dynamodb=session.client("dynamodb"),
                events=session.client("events"),
                sqs=session.client("sqs"),
                logs=session.client("logs"),
                ec2=ec2,
                physical_ids=physical_ids,
            )


def test_moto_translation_keeps_every_table_property() -> None:
    # GIVEN data.yaml as deployed to moto
    original = load_template("data").body["Resources"]
    translated = for_moto(load_template("data").body)["Resources"]
    # THEN only ElastiCache and its readers are gone, and the tables keep their definitions
    assert set(original) - set(translated) == {
        "CacheSubnetGroup",
        "CacheParameterGroup",
        "Redis",
        "RedisHostParameter",
        "RedisPortParameter",
    }
    for table in ("SignalsTable", "DecisionsTable"):
        kept = {k: v for k, v in original[table]["Properties"].items() if k != "Replicas"}
        assert kept.items() <= translated[table]["Properties"].items()


def test_all_stacks_complete(deployed: Deployed) -> None:
    stacks = deployed.cloudformation.describe_stacks()["Stacks"]
    assert {s["StackName"]: s["StackStatus"] for s in stacks} == {
        "kyperian-staging-network": "CREATE_COMPLETE",
        "kyperian-staging-data": "CREATE_COMPLETE",
        "kyperian-staging-messaging": "CREATE_COMPLETE",
    }


def test_exports_are_available_to_later_stacks(deployed: Deployed) -> None:
    exports = {e["Name"] for e in deployed.cloudformation.list_exports()["Exports"]}
    assert {
        "staging:VpcId",
        "staging:PrivateSubnets",
        "staging:PublicSubnets",
        "staging:EcsSecurityGroupId",
        "staging:SignalsTableArn",
        "staging:DecisionsTableArn",
        "staging:EventBusArn",
        "staging:SignalQueueUrl",
        "staging:SignalQueueArn",
    } <= exports


def test_vpc_and_subnets_have_the_specified_cidrs(deployed: Deployed) -> None:
    vpc_id = deployed.physical_id("network", "Vpc")
    vpc = deployed.ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    subnets = deployed.ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])
    by_cidr = {s["CidrBlock"]: s["AvailabilityZone"] for s in subnets["Subnets"]}
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert by_cidr == {
        "10.0.1.0/24": "us-east-1a",
        "10.0.2.0/24": "us-east-1b",
        "10.0.10.0/24": "us-east-1a",
        "10.0.11.0/24": "us-east-1b",
    }


def test_security_groups_chain_alb_to_ecs_to_redis(deployed: Deployed) -> None:
    ids = deployed.physical_ids["network"]
    groups = deployed.ec2.describe_security_groups(
        GroupIds=[ids[g] for g in ("AlbSecurityGroup", "EcsSecurityGroup", "RedisSecurityGroup")]
    )["SecurityGroups"]
    ingress = {
        g["GroupId"]: {
            (
                p["FromPort"],
                tuple(r["CidrIp"] for r in p["IpRanges"])
                + tuple(u["GroupId"] for u in p["UserIdGroupPairs"]),
            )
            for p in g["IpPermissions"]
        }
        for g in groups
    }
    assert ingress == {
        ids["AlbSecurityGroup"]: {(80, ("0.0.0.0/0",)), (443, ("0.0.0.0/0",))},
        ids["EcsSecurityGroup"]: {(8000, (ids["AlbSecurityGroup"],))},
        ids["RedisSecurityGroup"]: {(6379, (ids["EcsSecurityGroup"],))},
    }


def test_private_route_table_leaves_through_the_nat_in_az_a(deployed: Deployed) -> None:
    # (moto's CloudFormation does not apply subnet associations; tests/unit/infra checks them.)
    ids = deployed.physical_ids["network"]
    nat = deployed.ec2.describe_nat_gateways()["NatGateways"]
    table = deployed.ec2.describe_route_tables(RouteTableIds=[ids["PrivateRouteTable"]])
    default_routes = [
        route.get("NatGatewayId")
        for route in table["RouteTables"][0]["Routes"]
        if route.get("DestinationCidrBlock") == "0.0.0.0/0"
    ]
    assert [n["SubnetId"] for n in nat] == [ids["PublicSubnetA"]]
    assert default_routes == [nat[0]["NatGatewayId"]]


def test_dynamodb_gateway_endpoint_serves_the_private_subnets(deployed: Deployed) -> None:
    ids = deployed.physical_ids["network"]
    endpoints = deployed.ec2.describe_vpc_endpoints(
        VpcEndpointIds=[ids["DynamoDbGatewayEndpoint"]]
    )["VpcEndpoints"]
    assert [(e["ServiceName"], e["VpcEndpointType"], e["RouteTableIds"]) for e in endpoints] == [
        ("com.amazonaws.us-east-1.dynamodb", "Gateway", [ids["PrivateRouteTable"]])
    ]


def test_signals_table_has_keys_and_gsi(deployed: Deployed) -> None:
    table = deployed.dynamodb.describe_table(TableName="kyperian-staging-signals")["Table"]
    indexes = {
        i["IndexName"]: (i["KeySchema"], i["Projection"]) for i in table["GlobalSecondaryIndexes"]
    }
    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert indexes == {
        "symbol-timestamp-index": (
            [
                {"AttributeName": "symbol", "KeyType": "HASH"},
                {"AttributeName": "timestamp", "KeyType": "RANGE"},
            ],
            {"ProjectionType": "ALL"},
        ),
        # Sparse: the rows still waiting to be published, which the sweeper repairs.
        "unpublished-index": (
            [
                {"AttributeName": "publish_state", "KeyType": "HASH"},
                {"AttributeName": "received_at", "KeyType": "RANGE"},
            ],
            {"ProjectionType": "ALL"},
        ),
    }


def test_decisions_table_has_keys(deployed: Deployed) -> None:
    table = deployed.dynamodb.describe_table(TableName="kyperian-staging-decisions")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    # One row per triggering signal; time order comes from the GSI (latest, history).
    assert [
        (i["IndexName"], i["KeySchema"], i["Projection"]) for i in table["GlobalSecondaryIndexes"]
    ] == [
        (
            "symbol-time-index",
            [
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "time_key", "KeyType": "RANGE"},
            ],
            {"ProjectionType": "ALL"},
        )
    ]


def test_ledger_table_has_keys_and_the_open_orders_index(deployed: Deployed) -> None:
    table = deployed.dynamodb.describe_table(TableName="kyperian-staging-ledger")["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": "PK", "KeyType": "HASH"},
        {"AttributeName": "SK", "KeyType": "RANGE"},
    ]
    [index] = table["GlobalSecondaryIndexes"]
    assert index["IndexName"] == "open-orders-index"
    assert [k["AttributeName"] for k in index["KeySchema"]] == ["open_account", "SK"]


def test_table_arn_export_points_at_the_table(deployed: Deployed) -> None:
    exports = {e["Name"]: e["Value"] for e in deployed.cloudformation.list_exports()["Exports"]}
    table = deployed.dynamodb.describe_table(TableName="kyperian-staging-signals")["Table"]
    assert exports["staging:SignalsTableArn"] == table["TableArn"]


def test_rule_targets_the_queue_and_audit_log_with_dlq(deployed: Deployed) -> None:
    queue_arn = deployed.queue_arn(deployed.physical_id("messaging", "SignalsQueue"))
    events_dlq_arn = deployed.queue_arn(deployed.physical_id("messaging", "EventsDeadLetterQueue"))
    rule = deployed.events.describe_rule(
        Name="kyperian-staging-signal-validated", EventBusName="kyperian-staging-bus"
    )
    targets = deployed.events.list_targets_by_rule(
        Rule="kyperian-staging-signal-validated", EventBusName="kyperian-staging-bus"
    )["Targets"]
    by_id = {t["Id"]: t for t in targets}
    assert json.loads(rule["EventPattern"]) == {
        "source": ["kyperian.signal.validator"],
        "detail-type": ["SignalValidated"],
    }
    assert by_id["signals-queue"]["Arn"] == queue_arn
    assert by_id["audit-log"]["Arn"].endswith(":log-group:/aws/events/kyperian-staging-signals")
    assert {t["DeadLetterConfig"]["Arn"] for t in targets} == {events_dlq_arn}


def test_work_queue_redrives_to_its_dlq_after_five_receives(deployed: Deployed) -> None:
    queue_url = deployed.physical_id("messaging", "SignalsQueue")
    dlq_url = deployed.physical_id("messaging", "SignalsDeadLetterQueue")
    attributes = deployed.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert (attributes["VisibilityTimeout"], attributes["ReceiveMessageWaitTimeSeconds"]) == (
        "60",
        "20",
    )
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": deployed.queue_arn(dlq_url),
        "maxReceiveCount": 5,
    }
    # WHEN a message is received 5 times without being deleted
    deployed.sqs.send_message(QueueUrl=queue_url, MessageBody='{"poison": true}')
    for _ in range(5):
        received = deployed.sqs.receive_message(
            QueueUrl=queue_url, VisibilityTimeout=0, WaitTimeSeconds=0
        )
        assert len(received.get("Messages", [])) == 1
    # THEN the next receive finds it moved to the dead-letter queue
    assert (
        deployed.sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages") is None
    )
    dead = deployed.sqs.receive_message(QueueUrl=dlq_url, WaitTimeSeconds=0)["Messages"]
    assert [m["Body"] for m in dead] == ['{"poison": true}']


def test_validated_signal_reaches_the_queue_and_the_audit_log(deployed: Deployed) -> None:
    queue_url = deployed.physical_id("messaging", "SignalsQueue")
    detail = {"symbol": "AAPL", "action": "BUY", "timeframe": "1h", "source": "luxalgo"}
    # WHEN the validator publishes a SignalValidated event, and something else publishes noise
    deployed.events.put_events(
        Entries=[
            {
                "EventBusName": "kyperian-staging-bus",
                "Source": "kyperian.signal.validator",
                "DetailType": "SignalValidated",
                "Detail": json.dumps(detail),
            },
            {
                "EventBusName": "kyperian-staging-bus",
                "Source": "kyperian.other",
                "DetailType": "SignalValidated",
                "Detail": "{}",
            },
        ]
    )
    # THEN exactly the validated signal is queued for the engine
    messages = deployed.sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    )["Messages"]
    assert [json.loads(m["Body"])["detail"] for m in messages] == [detail]
    # AND an audit copy lands in the log group (in-process moto delivers synchronously)
    logged = deployed.logs.filter_log_events(logGroupName="/aws/events/kyperian-staging-signals")
    assert [json.loads(e["message"])["detail"] for e in logged["events"]] == [detail]
