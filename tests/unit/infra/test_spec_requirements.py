"""Every number and name of the specification, read from the templates.

One row per requirement of ``shared/seed/architecture.md`` (as corrected by SEED-NOTES.md) and
of the naming contract the code relies on. Each row renders a template with an environment's
parameter file and compares one value, so a change that drifts from the specification fails
here with the requirement's name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.unit.infra.cfn import Template, _Renderer, load_template, lookup

Body = dict[str, Any]
Getter = Callable[[Body], Any]

FUNCTIONS = {
    "SignalValidatorFunction": "signal-validator",
    "MtfHandlerFunction": "mtf-handler",
    "HealthCheckFunction": "health-check",
}
ALARM_SLUGS = (
    "high-latency",
    "high-error-rate",
    "ecs-tasks-failing",
    "redis-memory",
    "dlq-not-empty",
    "queue-age",
    "signals-rejected",
    "engine-degraded",
    "trading-halted",
    "reconciliation-mismatch",
)
ALARMS = (
    "HighLatencyAlarm",
    "HighErrorRateAlarm",
    "EcsTasksFailingAlarm",
    "RedisMemoryAlarm",
    "DlqNotEmptyAlarm",
    "QueueAgeAlarm",
    "SignalsRejectedAlarm",
    "EngineDegradedAlarm",
    "TradingHaltedAlarm",
    "ReconciliationMismatchAlarm",
)
TRADINGVIEW_IPS = {"52.89.214.238/32", "34.212.75.30/32", "54.218.53.128/32", "52.32.178.7/32"}


@dataclass(frozen=True)
class Requirement:
    """One requirement: where to read it, and the value the specification asks for."""

    name: str
    template: str
    where: str | Getter
    expected: Any
    parameter_file: str = "production"

    def actual(self) -> Any:
        template: Template = load_template(self.template)
        body = template.rendered(self.parameter_file)
        if isinstance(self.where, str):
            return lookup(body, self.where)
        return self.where(body)


def props(logical_id: str) -> str:
    return f"Resources.{logical_id}.Properties"


def ingress(logical_id: str) -> Getter:
    """(from port, to port, source) of every ingress rule of a security group."""

    def get(body: Body) -> set[tuple[int, int, str]]:
        rules = lookup(body, props(logical_id)).get("SecurityGroupIngress", [])
        return {
            (
                rule["FromPort"],
                rule["ToPort"],
                rule.get("CidrIp") or rule["SourceSecurityGroupId"]["Ref"],
            )
            for rule in rules
        }

    return get


def egress(logical_id: str) -> Getter:
    def get(body: Body) -> set[tuple[str, str]]:
        rules = lookup(body, props(logical_id))["SecurityGroupEgress"]
        return {(rule["IpProtocol"], rule["CidrIp"]) for rule in rules}

    return get


def of_type(resource_type: str, field: Callable[[Body], Any]) -> Getter:
    """``field`` of the properties of every resource of a type, by logical id."""

    def get(body: Body) -> dict[str, Any]:
        return {
            logical_id: field(resource.get("Properties", {}))
            for logical_id, resource in body["Resources"].items()
            if resource["Type"] == resource_type
        }

    return get


def env_vars(logical_id: str) -> Getter:
    def get(body: Body) -> dict[str, Any]:
        result: dict[str, Any] = lookup(body, props(logical_id) + ".Environment.Variables")
        return result

    return get


def container(body: Body) -> Body:
    result: Body = lookup(body, props("TaskDefinition") + ".ContainerDefinitions[Name=engine]")
    return result


def route_targets(body: Body) -> dict[str, str]:
    """Route key -> name of the function its integration invokes."""
    routes = {}
    for resource in body["Resources"].values():
        if resource["Type"] != "AWS::ApiGatewayV2::Route":
            continue
        integration_id = resource["Properties"]["Target"].removeprefix("integrations/")
        integration_id = integration_id.removeprefix("${").removesuffix("}")
        uri = body["Resources"][integration_id]["Properties"]["IntegrationUri"]["Fn::GetAtt"]
        function = body["Resources"][uri[0]]["Properties"]["FunctionName"]
        routes[resource["Properties"]["RouteKey"]] = function
    return routes


def scaling_policies(body: Body) -> dict[str, tuple[Any, int, int]]:
    """Policy name -> (target value, scale-out cooldown, scale-in cooldown)."""
    policies = {}
    for resource in body["Resources"].values():
        if resource["Type"] != "AWS::ApplicationAutoScaling::ScalingPolicy":
            continue
        config = resource["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        policies[resource["Properties"]["PolicyName"]] = (
            config["TargetValue"],
            config["ScaleOutCooldown"],
            config["ScaleInCooldown"],
        )
    return policies


def metric_names(body: Body, logical_id: str) -> set[tuple[str, str]]:
    """(namespace, metric) of an alarm, plain or metric math."""
    alarm = lookup(body, props(logical_id))
    if "MetricName" in alarm:
        return {(alarm["Namespace"], alarm["MetricName"])}
    return {
        (query["MetricStat"]["Metric"]["Namespace"], query["MetricStat"]["Metric"]["MetricName"])
        for query in alarm["Metrics"]
        if "MetricStat" in query
    }


def alarm_dimension_values(body: Body, logical_id: str, dimension: str) -> set[str]:
    alarm = lookup(body, props(logical_id))
    dimension_lists = [alarm.get("Dimensions", [])] + [
        query["MetricStat"]["Metric"]["Dimensions"]
        for query in alarm.get("Metrics", [])
        if "MetricStat" in query
    ]
    return {d["Value"] for dims in dimension_lists for d in dims if d["Name"] == dimension}


def waf_rules(logical_id: str) -> Getter:
    """Rule name -> what it does (managed group name, rate limit, or 'allow-list')."""

    def get(body: Body) -> dict[str, Any]:
        rules = {}
        for rule in lookup(body, props(logical_id) + ".Rules"):
            statement = rule["Statement"]
            if "ManagedRuleGroupStatement" in statement:
                rules[rule["Name"]] = statement["ManagedRuleGroupStatement"]["Name"]
            elif "RateBasedStatement" in statement:
                rate = statement["RateBasedStatement"]
                rules[rule["Name"]] = (
                    rate["AggregateKeyType"],
                    rate["Limit"],
                    rate["EvaluationWindowSec"],
                )
            elif "SizeConstraintStatement" in statement:
                size = statement["SizeConstraintStatement"]
                rules[rule["Name"]] = ("body", size["ComparisonOperator"], size["Size"])
            else:
                rules[rule["Name"]] = "allow-list"
        return rules

    return get


def replica_pitr(table: str) -> Getter:
    """Region -> point-in-time recovery of every replica of a global table (not just one)."""

    def get(body: Body) -> dict[str, Any]:
        return {
            replica["Region"]: replica.get("PointInTimeRecoverySpecification")
            for replica in lookup(body, props(table) + ".Replicas")
        }

    return get


def task_role_statement(body: Body, sid: str) -> Body:
    """The engine task role's statement ``sid``."""
    statements: list[Body] = [
        s
        for p in lookup(body, props("TaskRole") + ".Policies")
        for s in p["PolicyDocument"]["Statement"]
        if s["Sid"] == sid
    ]
    (statement,) = statements
    return statement


def policy_statements(logical_id: str) -> Getter:
    """Sid -> sorted actions of a role's inline policies."""

    def get(body: Body) -> dict[str, list[str]]:
        statements = {}
        for policy in lookup(body, props(logical_id) + ".Policies"):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                statements[statement["Sid"]] = sorted(
                    [actions] if isinstance(actions, str) else actions
                )
        return statements

    return get


def statement_resources(logical_id: str, sid: str) -> Getter:
    def get(body: Body) -> Any:
        for policy in lookup(body, props(logical_id) + ".Policies"):
            for statement in policy["PolicyDocument"]["Statement"]:
                if statement["Sid"] == sid:
                    return statement["Resource"]
        raise KeyError(sid)

    return get


def runbook_link(where: str) -> Getter:
    def get(body: Body) -> str:
        description: str = lookup(body, f"{where}.AlarmDescription")
        return description.split("Runbook: ")[-1]

    return get


def replica_regions(table: str) -> Getter:
    def get(body: Body) -> list[str]:
        return [replica["Region"] for replica in lookup(body, props(table) + ".Replicas")]

    return get


def function_rows() -> list[Requirement]:
    rows = []
    for logical_id, name in FUNCTIONS.items():
        where = props(logical_id)
        rows += [
            Requirement(
                f"lambda {name}: name",
                "api",
                f"{where}.FunctionName",
                f"kyperian-production-{name}",
            ),
            Requirement(
                f"lambda {name}: runtime Python 3.13", "api", f"{where}.Runtime", "python3.13"
            ),
            Requirement(f"lambda {name}: memory 1024 MB", "api", f"{where}.MemorySize", 1024),
            Requirement(f"lambda {name}: timeout 10 s", "api", f"{where}.Timeout", 10),
            Requirement(
                f"lambda {name}: reserved concurrency 100",
                "api",
                f"{where}.ReservedConcurrentExecutions",
                100,
            ),
            Requirement(
                f"lambda {name}: handler",
                "api",
                f"{where}.Handler",
                "kyperian.ingest.handler.lambda_handler",
            ),
            Requirement(
                f"lambda {name}: code from the deploy parameters",
                "api",
                f"{where}.Code",
                {"S3Bucket": "kyperian-test-artifacts", "S3Key": "ingest/test.zip"},
            ),
            Requirement(
                f"lambda {name}: in the private subnets with Lambda-SG",
                "api",
                f"{where}.VpcConfig.SecurityGroupIds",
                [{"Fn::ImportValue": "production:LambdaSecurityGroupId"}],
            ),
            Requirement(
                f"lambda {name}: environment the code reads",
                "api",
                env_vars(logical_id),
                {
                    "KYPERIAN_ENVIRONMENT": "production",
                    "KYPERIAN_SIGNALS_TABLE": "kyperian-production-signals",
                    "KYPERIAN_EVENT_BUS_NAME": "kyperian-production-bus",
                    "KYPERIAN_API_KEY_SECRET_ID": "/kyperian/production/api/key",
                    "KYPERIAN_ORIGIN_SECRET_ID": "/kyperian/production/api/origin-secret",
                    "POWERTOOLS_SERVICE_NAME": name,
                    "POWERTOOLS_METRICS_NAMESPACE": "Kyperian",
                    "LOG_LEVEL": "INFO",
                },
            ),
        ]
    return rows


def alarm_rows() -> list[Requirement]:
    rows = []
    for logical_id, slug in zip(ALARMS, ALARM_SLUGS, strict=True):
        where = props(logical_id)
        rows += [
            Requirement(
                f"alarm {slug}: name",
                "monitoring",
                f"{where}.AlarmName",
                f"kyperian-production-{slug}",
            ),
            Requirement(
                f"alarm {slug}: runbook link",
                "monitoring",
                runbook_link(where),
                f"https://github.com/kyperian/kyperian/blob/main/runbooks/{slug}.md",
            ),
            Requirement(
                f"alarm {slug}: notifies the SNS alert topic",
                "monitoring",
                f"{where}.AlarmActions",
                [{"Ref": "AlertTopic"}],
            ),
        ]
    return rows


REQUIREMENTS: list[Requirement] = [
    # --- Network -------------------------------------------------------------------------
    Requirement("VPC 10.0.0.0/16", "network", props("Vpc") + ".CidrBlock", "10.0.0.0/16"),
    Requirement(
        "public subnet AZ-a 10.0.1.0/24",
        "network",
        props("PublicSubnetA") + ".CidrBlock",
        "10.0.1.0/24",
    ),
    Requirement(
        "public subnet AZ-b 10.0.2.0/24",
        "network",
        props("PublicSubnetB") + ".CidrBlock",
        "10.0.2.0/24",
    ),
    Requirement(
        "private subnet AZ-a 10.0.10.0/24",
        "network",
        props("PrivateSubnetA") + ".CidrBlock",
        "10.0.10.0/24",
    ),
    Requirement(
        "private subnet AZ-b 10.0.11.0/24",
        "network",
        props("PrivateSubnetB") + ".CidrBlock",
        "10.0.11.0/24",
    ),
    Requirement(
        "subnets in two AZs (a, b)",
        "network",
        of_type("AWS::EC2::Subnet", lambda p: p["AvailabilityZone"]),
        {
            "PublicSubnetA": "us-east-1a",
            "PublicSubnetB": "us-east-1b",
            "PrivateSubnetA": "us-east-1a",
            "PrivateSubnetB": "us-east-1b",
        },
    ),
    Requirement(
        "single NAT gateway, in public subnet AZ-a",
        "network",
        of_type("AWS::EC2::NatGateway", lambda p: p["SubnetId"]),
        {"NatGatewayA": {"Ref": "PublicSubnetA"}},
    ),
    Requirement(
        "private subnets route to the internet through the NAT",
        "network",
        props("PrivateDefaultRoute"),
        {
            "RouteTableId": {"Ref": "PrivateRouteTable"},
            "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": {"Ref": "NatGatewayA"},
        },
    ),
    Requirement(
        "public subnets route to the internet gateway",
        "network",
        props("PublicDefaultRoute"),
        {
            "RouteTableId": {"Ref": "PublicRouteTable"},
            "DestinationCidrBlock": "0.0.0.0/0",
            "GatewayId": {"Ref": "InternetGateway"},
        },
    ),
    Requirement(
        "each subnet associated with its tier's route table",
        "network",
        lambda body: {
            resource["Properties"]["SubnetId"]["Ref"]: resource["Properties"]["RouteTableId"]["Ref"]
            for resource in body["Resources"].values()
            if resource["Type"] == "AWS::EC2::SubnetRouteTableAssociation"
        },
        {
            "PublicSubnetA": "PublicRouteTable",
            "PublicSubnetB": "PublicRouteTable",
            "PrivateSubnetA": "PrivateRouteTable",
            "PrivateSubnetB": "PrivateRouteTable",
        },
    ),
    Requirement(
        "ALB-SG: 80 and 443 from 0.0.0.0/0",
        "network",
        ingress("AlbSecurityGroup"),
        {(80, 80, "0.0.0.0/0"), (443, 443, "0.0.0.0/0")},
    ),
    Requirement(
        "ECS-SG: 8000 from ALB-SG",
        "network",
        ingress("EcsSecurityGroup"),
        {(8000, 8000, "AlbSecurityGroup")},
    ),
    Requirement(
        "Redis-SG: 6379 from ECS-SG",
        "network",
        ingress("RedisSecurityGroup"),
        {(6379, 6379, "EcsSecurityGroup")},
    ),
    Requirement("Lambda-SG: no inbound", "network", ingress("LambdaSecurityGroup"), set()),
    *(
        Requirement(f"{sg}: all outbound", "network", egress(sg), {("-1", "0.0.0.0/0")})
        for sg in (
            "AlbSecurityGroup",
            "EcsSecurityGroup",
            "RedisSecurityGroup",
            "LambdaSecurityGroup",
        )
    ),
    Requirement(
        "DynamoDB gateway endpoint on the private route table",
        "network",
        lambda body: (
            lookup(body, props("DynamoDbGatewayEndpoint") + ".ServiceName"),
            lookup(body, props("DynamoDbGatewayEndpoint") + ".VpcEndpointType"),
            lookup(body, props("DynamoDbGatewayEndpoint") + ".RouteTableIds"),
        ),
        ("com.amazonaws.us-east-1.dynamodb", "Gateway", [{"Ref": "PrivateRouteTable"}]),
    ),
    # --- DynamoDB ------------------------------------------------------------------------
    Requirement(
        "signals table name",
        "data",
        props("SignalsTable") + ".TableName",
        "kyperian-production-signals",
    ),
    Requirement(
        "signals keys PK (hash) + SK (range)",
        "data",
        props("SignalsTable") + ".KeySchema",
        [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
    ),
    Requirement(
        "signals key and index attributes are strings",
        "data",
        props("SignalsTable") + ".AttributeDefinitions",
        [
            {"AttributeName": "PK", "AttributeType": "S"},
            {"AttributeName": "SK", "AttributeType": "S"},
            {"AttributeName": "symbol", "AttributeType": "S"},
            {"AttributeName": "timestamp", "AttributeType": "S"},
            {"AttributeName": "publish_state", "AttributeType": "S"},
            {"AttributeName": "received_at", "AttributeType": "S"},
        ],
    ),
    Requirement(
        "signals GSI symbol-timestamp-index on symbol + timestamp, projection ALL",
        "data",
        props("SignalsTable") + ".GlobalSecondaryIndexes[IndexName=symbol-timestamp-index]",
        {
            "IndexName": "symbol-timestamp-index",
            "KeySchema": [
                {"AttributeName": "symbol", "KeyType": "HASH"},
                {"AttributeName": "timestamp", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ),
    Requirement(
        "signals sparse GSI unpublished-index (issue 17): the sweeper finds rows left pending",
        "data",
        props("SignalsTable") + ".GlobalSecondaryIndexes[IndexName=unpublished-index]",
        {
            "IndexName": "unpublished-index",
            "KeySchema": [
                {"AttributeName": "publish_state", "KeyType": "HASH"},
                {"AttributeName": "received_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "ALL"},
        },
    ),
    Requirement(
        "decisions table name",
        "data",
        props("DecisionsTable") + ".TableName",
        "kyperian-production-decisions",
    ),
    Requirement(
        "decisions keys PK (hash) + SK (range)",
        "data",
        props("DecisionsTable") + ".KeySchema",
        [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
    ),
    *(
        row
        for table in ("SignalsTable", "DecisionsTable", "LedgerTable")
        for row in (
            Requirement(
                f"{table}: on-demand", "data", props(table) + ".BillingMode", "PAY_PER_REQUEST"
            ),
            Requirement(
                f"{table}: TTL on attribute ttl",
                "data",
                props(table) + ".TimeToLiveSpecification",
                {"AttributeName": "ttl", "Enabled": True},
            ),
            Requirement(
                f"{table}: encrypted with the AWS-managed KMS key",
                "data",
                props(table) + ".SSESpecification",
                {"SSEEnabled": True, "SSEType": "KMS"},
            ),
            Requirement(
                f"{table}: PITR kept 35 days in every replica (primary and DR region)",
                "data",
                replica_pitr(table),
                {
                    region: {"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 35}
                    for region in ("us-east-1", "us-west-2")
                },
            ),
            Requirement(
                f"{table}: staging's single replica keeps PITR 35 days",
                "data",
                replica_pitr(table),
                {"us-east-1": {"PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 35}},
                parameter_file="staging",
            ),
            Requirement(
                f"{table}: production replica in the DR region (RPO 15 min)",
                "data",
                replica_regions(table),
                ["us-east-1", "us-west-2"],
            ),
            Requirement(
                f"{table}: staging has no DR replica",
                "data",
                replica_regions(table),
                ["us-east-1"],
                parameter_file="staging",
            ),
        )
        # The ledger keeps financial records for good: no TTL on it.
        if table != "LedgerTable" or "TTL" not in row.name
    ),
    # --- ElastiCache ---------------------------------------------------------------------
    Requirement(
        "redis replication group id",
        "data",
        props("Redis") + ".ReplicationGroupId",
        "kyperian-production-redis",
    ),
    Requirement("redis: 2 nodes", "data", props("Redis") + ".NumCacheClusters", 2),
    Requirement("redis: Multi-AZ", "data", props("Redis") + ".MultiAZEnabled", True),
    Requirement(
        "redis: automatic failover", "data", props("Redis") + ".AutomaticFailoverEnabled", True
    ),
    Requirement(
        "redis: encrypted at rest", "data", props("Redis") + ".AtRestEncryptionEnabled", True
    ),
    Requirement(
        "redis: encrypted in transit", "data", props("Redis") + ".TransitEncryptionEnabled", True
    ),
    Requirement(
        "redis: AUTH token from the secret",
        "data",
        props("Redis") + ".AuthToken",
        "{{resolve:secretsmanager:/kyperian/production/redis/auth-token:SecretString}}",
    ),
    Requirement(
        "redis: daily snapshots kept 7 days", "data", props("Redis") + ".SnapshotRetentionLimit", 7
    ),
    Requirement(
        "redis: volatile-lru eviction",
        "data",
        props("CacheParameterGroup") + ".Properties",
        {"maxmemory-policy": "volatile-lru"},
    ),
    Requirement("redis: port 6379", "data", props("Redis") + ".Port", 6379),
    Requirement(
        "redis: production node cache.r6g.large",
        "data",
        props("Redis") + ".CacheNodeType",
        "cache.r6g.large",
    ),
    Requirement(
        "redis: staging node cache.t4g.micro",
        "data",
        props("Redis") + ".CacheNodeType",
        "cache.t4g.micro",
        parameter_file="staging",
    ),
    Requirement(
        "redis: default node cache.t4g.micro",
        "data",
        "Parameters.CacheNodeType.Default",
        "cache.t4g.micro",
    ),
    Requirement(
        "redis: engine is a parameter (Valkey default, Redis allowed)",
        "data",
        lambda body: (
            lookup(body, "Parameters.CacheEngine.Default"),
            lookup(body, "Parameters.CacheEngine.AllowedValues"),
        ),
        ("valkey", ["valkey", "redis"]),
    ),
    Requirement(
        "SSM /kyperian/<env>/redis/host",
        "data",
        props("RedisHostParameter") + ".Name",
        "/kyperian/production/redis/host",
    ),
    Requirement(
        "SSM /kyperian/<env>/redis/port",
        "data",
        props("RedisPortParameter") + ".Name",
        "/kyperian/production/redis/port",
    ),
    Requirement(
        "SSM redis host is the primary endpoint",
        "data",
        props("RedisHostParameter") + ".Value",
        {"Fn::GetAtt": ["Redis", "PrimaryEndPoint.Address"]},
    ),
    # --- Secrets -------------------------------------------------------------------------
    Requirement(
        "secrets in Secrets Manager under /kyperian/<env>/",
        "config",
        of_type("AWS::SecretsManager::Secret", lambda p: p["Name"]),
        {
            "ApiKeySecret": "/kyperian/production/api/key",
            "OriginSecret": "/kyperian/production/api/origin-secret",
            "BrokerCredentialsSecret": "/kyperian/production/broker/credentials",
            "RedisAuthTokenSecret": "/kyperian/production/redis/auth-token",
            "EngineTokenSecret": "/kyperian/production/engine/token",
            "EngineTestHeaderSecret": "/kyperian/production/engine/test-header",
            "EngineOidcClientSecret": "/kyperian/production/engine/oidc-client-secret",
            "SchwabTokenSecret": "/kyperian/production/broker/schwab-token",
            "NotifyTelegramSecret": "/kyperian/production/notify/telegram",
            "NotifyDiscordSecret": "/kyperian/production/notify/discord",
            "NotifySlackSecret": "/kyperian/production/notify/slack",
        },
    ),
    Requirement(
        "API key: 40 characters, no punctuation, plain string",
        "config",
        props("ApiKeySecret") + ".GenerateSecretString",
        {"PasswordLength": 40, "ExcludePunctuation": True, "IncludeSpace": False},
    ),
    Requirement(
        "production secrets replicate to the DR region (not the Schwab token: engines write it)",
        "config",
        of_type("AWS::SecretsManager::Secret", lambda p: p.get("ReplicaRegions")),
        {
            **{
                name: [{"Region": "us-west-2"}]
                for name in (
                    "ApiKeySecret",
                    "OriginSecret",
                    "BrokerCredentialsSecret",
                    "RedisAuthTokenSecret",
                    "EngineTokenSecret",
                    "EngineTestHeaderSecret",
                    "EngineOidcClientSecret",
                    "NotifyTelegramSecret",
                    "NotifyDiscordSecret",
                    "NotifySlackSecret",
                )
            },
            "SchwabTokenSecret": None,
        },
    ),
    # --- Messaging -----------------------------------------------------------------------
    Requirement(
        "event bus name", "messaging", props("EventBus") + ".Name", "kyperian-production-bus"
    ),
    Requirement(
        "rule name",
        "messaging",
        props("SignalValidatedRule") + ".Name",
        "kyperian-production-signal-validated",
    ),
    Requirement(
        "rule event pattern",
        "messaging",
        props("SignalValidatedRule") + ".EventPattern",
        {"source": ["kyperian.signal.validator"], "detail-type": ["SignalValidated"]},
    ),
    Requirement(
        "rule on the Kyperian bus (GetAtt Name: moto cannot Ref a bus)",
        "messaging",
        props("SignalValidatedRule") + ".EventBusName",
        {"Fn::GetAtt": ["EventBus", "Name"]},
    ),
    Requirement(
        "rule target: the work queue, with retries and a DLQ",
        "messaging",
        props("SignalValidatedRule") + ".Targets[Id=signals-queue]",
        {
            "Id": "signals-queue",
            "Arn": {"Fn::GetAtt": ["SignalsQueue", "Arn"]},
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}},
        },
    ),
    Requirement(
        "rule target: the audit log group, with retries and a DLQ",
        "messaging",
        props("SignalValidatedRule") + ".Targets[Id=audit-log]",
        {
            "Id": "audit-log",
            "Arn": "arn:aws:logs:us-east-1:123456789012:log-group:${AuditLogGroup}",
            "RetryPolicy": {"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 86400},
            "DeadLetterConfig": {"Arn": {"Fn::GetAtt": ["EventsDeadLetterQueue", "Arn"]}},
        },
    ),
    Requirement(
        "audit log group under /aws/events/",
        "messaging",
        props("AuditLogGroup") + ".LogGroupName",
        "/aws/events/kyperian-production-signals",
    ),
    Requirement(
        "work queue name",
        "messaging",
        props("SignalsQueue") + ".QueueName",
        "kyperian-production-signals",
    ),
    Requirement(
        "work queue visibility timeout 60 s",
        "messaging",
        props("SignalsQueue") + ".VisibilityTimeout",
        60,
    ),
    Requirement(
        "work queue long polling 20 s",
        "messaging",
        props("SignalsQueue") + ".ReceiveMessageWaitTimeSeconds",
        20,
    ),
    Requirement(
        "work queue redrives to its DLQ after 5 receives",
        "messaging",
        props("SignalsQueue") + ".RedrivePolicy",
        {
            "deadLetterTargetArn": {"Fn::GetAtt": ["SignalsDeadLetterQueue", "Arn"]},
            "maxReceiveCount": 5,
        },
    ),
    Requirement(
        "queues encrypted (SQS-managed SSE)",
        "messaging",
        of_type("AWS::SQS::Queue", lambda p: p["SqsManagedSseEnabled"]),
        {"SignalsQueue": True, "SignalsDeadLetterQueue": True, "EventsDeadLetterQueue": True},
    ),
    Requirement(
        "dead-letter queue names",
        "messaging",
        lambda body: (
            lookup(body, props("SignalsDeadLetterQueue") + ".QueueName"),
            lookup(body, props("EventsDeadLetterQueue") + ".QueueName"),
        ),
        ("kyperian-production-signals-dlq", "kyperian-production-events-dlq"),
    ),
    Requirement(
        "queue policy admits only the rule",
        "messaging",
        props("SignalsQueuePolicy")
        + ".PolicyDocument.Statement[Sid=AllowSignalValidatedRule].Condition",
        {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["SignalValidatedRule", "Arn"]}}},
    ),
    Requirement(
        "logs resource policy lets EventBridge write the audit log",
        "messaging",
        lambda body: json.loads(lookup(body, props("AuditLogResourcePolicy") + ".PolicyDocument"))[
            "Statement"
        ][0]["Principal"],
        {"Service": ["events.amazonaws.com", "delivery.logs.amazonaws.com"]},
    ),
    # --- API -----------------------------------------------------------------------------
    Requirement("HTTP API name", "api", props("HttpApi") + ".Name", "kyperian-production-http-api"),
    Requirement("HTTP API (not REST)", "api", props("HttpApi") + ".ProtocolType", "HTTP"),
    Requirement(
        "default execute-api endpoint disabled",
        "api",
        props("HttpApi") + ".DisableExecuteApiEndpoint",
        True,
    ),
    Requirement(
        "routes and the functions behind them",
        "api",
        route_targets,
        {
            "POST /webhook": "kyperian-production-signal-validator",
            "POST /webhook/mtf": "kyperian-production-mtf-handler",
            "GET /health": "kyperian-production-health-check",
        },
    ),
    Requirement(
        "stage named after the environment", "api", props("Stage") + ".StageName", "production"
    ),
    Requirement(
        "throttle 50 req/s sustained",
        "api",
        props("Stage") + ".DefaultRouteSettings.ThrottlingRateLimit",
        50,
    ),
    Requirement(
        "throttle 100 burst",
        "api",
        props("Stage") + ".DefaultRouteSettings.ThrottlingBurstLimit",
        100,
    ),
    Requirement(
        "access logs to /aws/apigateway/kyperian-*",
        "api",
        lambda body: (
            lookup(body, props("AccessLogGroup") + ".LogGroupName"),
            lookup(body, props("Stage") + ".AccessLogSettings.DestinationArn"),
        ),
        ("/aws/apigateway/kyperian-production-http-api", {"Fn::GetAtt": ["AccessLogGroup", "Arn"]}),
    ),
    Requirement(
        "Lambda log groups /aws/lambda/kyperian-*",
        "api",
        of_type("AWS::Logs::LogGroup", lambda p: p["LogGroupName"]),
        {
            "SignalValidatorLogGroup": "/aws/lambda/kyperian-production-signal-validator",
            "MtfHandlerLogGroup": "/aws/lambda/kyperian-production-mtf-handler",
            "HealthCheckLogGroup": "/aws/lambda/kyperian-production-health-check",
            "SignalSweeperLogGroup": "/aws/lambda/kyperian-production-signal-sweeper",
            "AccessLogGroup": "/aws/apigateway/kyperian-production-http-api",
        },
    ),
    Requirement(
        "URL shape https://<domain>/<env>/webhook (mapping key = environment)",
        "api",
        props("OriginApiMapping") + ".ApiMappingKey",
        "production",
    ),
    Requirement(
        "ingest role: least privilege",
        "api",
        policy_statements("IngestFunctionRole"),
        {
            "WriteOwnLogs": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "SignalsTable": [
                "dynamodb:BatchWriteItem",
                "dynamodb:ConditionCheckItem",
                "dynamodb:DeleteItem",
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
            ],
            "PublishToBus": ["events:DescribeEventBus", "events:PutEvents"],
            "ReadIngestSecrets": ["secretsmanager:GetSecretValue"],
            "ReadApiKeyVersions": ["secretsmanager:ListSecretVersionIds"],
        },
    ),
    Requirement(
        "sweeper role: least privilege (issue 17)",
        "api",
        policy_statements("SignalSweeperRole"),
        {
            "WriteOwnLogs": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "ReadPendingSignals": ["dynamodb:Query"],
            "MarkSignalsPublished": ["dynamodb:BatchWriteItem"],
            "PublishToBus": ["events:PutEvents"],
        },
    ),
    Requirement(
        "ingest role reads only the API key and origin secrets",
        "api",
        statement_resources("IngestFunctionRole", "ReadIngestSecrets"),
        [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:/kyperian/production/api/key-??????",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:/kyperian/production/api/origin-secret-??????",
        ],
    ),
    Requirement(
        "ingest role lists the versions of the API key only (rotation grace period)",
        "api",
        statement_resources("IngestFunctionRole", "ReadApiKeyVersions"),
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:/kyperian/production/api/key-??????",
    ),
    *function_rows(),
    # --- Edge ----------------------------------------------------------------------------
    Requirement("WAF web ACL for CloudFront", "edge", props("WebAcl") + ".Scope", "CLOUDFRONT"),
    Requirement(
        "WAF rules: TradingView allow-list, rate-based (50 req/s per window), body size, Common,"
        " Bad Inputs",
        "edge",
        waf_rules("WebAcl"),
        {
            "tradingview-only-webhooks": "allow-list",
            "rate-limit-per-ip": ("IP", 3000, 60),
            "body-over-16kib": ("body", "GT", 16384),
            "aws-common-rule-set": "AWSManagedRulesCommonRuleSet",
            "aws-known-bad-inputs": "AWSManagedRulesKnownBadInputsRuleSet",
        },
    ),
    Requirement(
        "staging has no TradingView allow-list",
        "edge",
        lambda body: sorted(waf_rules("WebAcl")(body)),
        ["aws-common-rule-set", "aws-known-bad-inputs", "body-over-16kib", "rate-limit-per-ip"],
        parameter_file="staging",
    ),
    Requirement(
        "TradingView's four published IPs",
        "edge",
        lambda body: set(lookup(body, props("TradingViewIpSet") + ".Addresses")),
        TRADINGVIEW_IPS,
    ),
    Requirement(
        "edge stack only in us-east-1",
        "edge",
        "Rules.OnlyInUsEast1.Assertions[0].Assert",
        {"Fn::Equals": ["us-east-1", "us-east-1"]},
    ),
    Requirement(
        "CloudFront forwards POST",
        "edge",
        lambda body: "POST"
        in lookup(
            body, props("Distribution") + ".DistributionConfig.DefaultCacheBehavior.AllowedMethods"
        ),
        True,
    ),
    Requirement(
        "CloudFront: CachingDisabled and AllViewerExceptHostHeader",
        "edge",
        lambda body: (
            lookup(
                body,
                props("Distribution") + ".DistributionConfig.DefaultCacheBehavior.CachePolicyId",
            ),
            lookup(
                body,
                props("Distribution")
                + ".DistributionConfig.DefaultCacheBehavior.OriginRequestPolicyId",
            ),
        ),
        ("4135ea2d-6df8-44a3-9df3-4b5a84be39ad", "b689b0a8-53d0-40ab-baf2-68738e2966ac"),
    ),
    Requirement(
        "CloudFront adds the X-Origin-Verify secret",
        "edge",
        props("Distribution")
        + ".DistributionConfig.Origins[Id=http-api]"
        + ".OriginCustomHeaders[HeaderName=X-Origin-Verify].HeaderValue",
        "{{resolve:secretsmanager:/kyperian/production/api/origin-secret:SecretString}}",
    ),
    Requirement(
        "CloudFront protected by the web ACL",
        "edge",
        props("Distribution") + ".DistributionConfig.WebACLId",
        {"Fn::GetAtt": ["WebAcl", "Arn"]},
    ),
    Requirement(
        "public webhook URL https://api.kyperian.com/production/webhook",
        "edge",
        "Outputs.WebhookUrl.Value",
        "https://api.kyperian.com/production/webhook",
    ),
    # --- Compute -------------------------------------------------------------------------
    Requirement(
        "ECS cluster name", "compute", props("Cluster") + ".ClusterName", "kyperian-production"
    ),
    Requirement(
        "Container Insights on (RunningTaskCount)",
        "compute",
        props("Cluster") + ".ClusterSettings",
        [{"Name": "containerInsights", "Value": "enabled"}],
    ),
    Requirement(
        "task family", "compute", props("TaskDefinition") + ".Family", "kyperian-production-engine"
    ),
    Requirement(
        "task CPU 512 units (0.5 vCPU)", "compute", props("TaskDefinition") + ".Cpu", "512"
    ),
    Requirement("task memory 1024 MB", "compute", props("TaskDefinition") + ".Memory", "1024"),
    Requirement(
        "Fargate", "compute", props("TaskDefinition") + ".RequiresCompatibilities", ["FARGATE"]
    ),
    Requirement(
        "container engine on port 8000",
        "compute",
        lambda body: container(body)["PortMappings"],
        [{"ContainerPort": 8000, "Protocol": "tcp"}],
    ),
    Requirement(
        "container image from ECR kyperian-<env>-engine at the ImageTag parameter",
        "compute",
        lambda body: container(body)["Image"],
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/kyperian-production-engine:test-tag",
    ),
    Requirement(
        "ECS logs /ecs/kyperian-*",
        "compute",
        props("EngineLogGroup") + ".LogGroupName",
        "/ecs/kyperian-production-engine",
    ),
    Requirement(
        "container environment",
        "compute",
        lambda body: {e["Name"]: e["Value"] for e in container(body)["Environment"]},
        {
            "KYPERIAN_ENVIRONMENT": "production",
            "KYPERIAN_SIGNALS_TABLE": "kyperian-production-signals",
            "KYPERIAN_DECISIONS_TABLE": "kyperian-production-decisions",
            "KYPERIAN_LEDGER_TABLE": "kyperian-production-ledger",
            "KYPERIAN_AUTO_TRADING": "true",
            "KYPERIAN_APPROVAL_MODE": "true",
            "KYPERIAN_SIGNAL_QUEUE_URL": {"Fn::ImportValue": "production:SignalQueueUrl"},
            "KYPERIAN_REDIS_TLS": "true",
            "KYPERIAN_ENGINE_TOKEN_SECRET_ID": "/kyperian/production/engine/token",
            "KYPERIAN_BROKER_VENUE": "paper",
            "KYPERIAN_NOTIFY_SNS_TOPIC_ARN": (
                "arn:aws:sns:us-east-1:123456789012:kyperian-production-notices"
            ),
        },
    ),
    Requirement(
        "container secrets from SSM and Secrets Manager",
        "compute",
        lambda body: {
            s["Name"]: s["ValueFrom"].split(":", 5)[-1] for s in container(body)["Secrets"]
        },
        {
            "KYPERIAN_REDIS_HOST": "parameter/kyperian/production/redis/host",
            "KYPERIAN_REDIS_PORT": "parameter/kyperian/production/redis/port",
            "KYPERIAN_REDIS_AUTH_TOKEN": "secret:/kyperian/production/redis/auth-token",
            "KYPERIAN_BROKER_CREDENTIALS": "secret:/kyperian/production/broker/credentials",
        },
    ),
    Requirement(
        "service name", "compute", props("Service") + ".ServiceName", "kyperian-production-service"
    ),
    Requirement("min 2 tasks", "compute", props("ScalableTarget") + ".MinCapacity", 2),
    Requirement("max 20 tasks", "compute", props("ScalableTarget") + ".MaxCapacity", 20),
    Requirement(
        "scaling: CPU 70 %, memory 80 %, 1000 req/task, backlog; cooldowns 60 s out, 300 s in",
        "compute",
        scaling_policies,
        {
            "kyperian-production-cpu-70": (70, 60, 300),
            "kyperian-production-memory-80": (80, 60, 300),
            "kyperian-production-requests-1000": (1000, 60, 300),
            "kyperian-production-queue-backlog": (100, 60, 300),
        },
    ),
    Requirement(
        "CPU and memory policies use the ECS service averages",
        "compute",
        of_type(
            "AWS::ApplicationAutoScaling::ScalingPolicy",
            lambda p: p["TargetTrackingScalingPolicyConfiguration"]
            .get("PredefinedMetricSpecification", {})
            .get("PredefinedMetricType"),
        ),
        {
            "CpuScalingPolicy": "ECSServiceAverageCPUUtilization",
            "MemoryScalingPolicy": "ECSServiceAverageMemoryUtilization",
            "RequestScalingPolicy": None,
            "BacklogScalingPolicy": None,
        },
    ),
    Requirement(
        "health check 30 s interval, 5 s timeout, /health",
        "compute",
        of_type(
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            lambda p: (
                p["HealthCheckIntervalSeconds"],
                p["HealthCheckTimeoutSeconds"],
                p["HealthCheckPath"],
                p["Port"],
            ),
        ),
        {"BlueTargetGroup": (30, 5, "/health", 8000), "GreenTargetGroup": (30, 5, "/health", 8000)},
    ),
    Requirement(
        "deregistration delay 30 s",
        "compute",
        of_type(
            "AWS::ElasticLoadBalancingV2::TargetGroup",
            lambda p: lookup(
                p, "TargetGroupAttributes[Key=deregistration_delay.timeout_seconds].Value"
            ),
        ),
        {"BlueTargetGroup": "30", "GreenTargetGroup": "30"},
    ),
    Requirement(
        "native blue/green with bake time, alarm rollback and circuit breaker",
        "compute",
        lambda body: {
            key: value
            for key, value in lookup(body, props("Service") + ".DeploymentConfiguration").items()
            if key in {"Strategy", "BakeTimeInMinutes", "DeploymentCircuitBreaker"}
        }
        | {
            "AlarmRollback": lookup(
                body, props("Service") + ".DeploymentConfiguration.Alarms.Rollback"
            )
        },
        {
            "Strategy": "BLUE_GREEN",
            "BakeTimeInMinutes": 10,
            "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
            "AlarmRollback": True,
        },
    ),
    Requirement(
        "blue/green shifts between the two target groups",
        "compute",
        lambda body: lookup(
            body,
            props("Service") + ".LoadBalancers[0].AdvancedConfiguration.AlternateTargetGroupArn",
        ),
        {"Ref": "GreenTargetGroup"},
    ),
    Requirement(
        "blue/green has a test listener rule, reached by header, evaluated before production",
        "compute",
        lambda body: (
            lookup(body, props("Service") + ".LoadBalancers[0].AdvancedConfiguration")[
                "TestListenerRule"
            ],
            lookup(body, props("TestListenerRule") + ".Conditions[0].HttpHeaderConfig"),
            lookup(body, props("TestListenerRule") + ".Priority")
            < lookup(body, props("ProductionListenerRule") + ".Priority"),
        ),
        (
            {"Ref": "TestListenerRule"},
            {
                "HttpHeaderName": "X-Kyperian-Test",
                "Values": [
                    "{{resolve:secretsmanager:/kyperian/production/engine/test-header:SecretString}}"
                ],
            },
            True,
        ),
    ),
    Requirement(
        "deployment alarms exist in monitoring.yaml",
        "compute",
        props("Service") + ".DeploymentConfiguration.Alarms.AlarmNames",
        ["kyperian-production-ecs-tasks-failing"],
    ),
    Requirement(
        "engine tasks in the private subnets with ECS-SG",
        "compute",
        props("Service") + ".NetworkConfiguration.AwsvpcConfiguration.SecurityGroups",
        [{"Fn::ImportValue": "production:EcsSecurityGroupId"}],
    ),
    Requirement(
        "task role: queue, tables and the shared Schwab token",
        "compute",
        policy_statements("TaskRole"),
        {
            "ConsumeWorkQueue": [
                "sqs:ChangeMessageVisibility",
                "sqs:DeleteMessage",
                "sqs:GetQueueAttributes",
                "sqs:ReceiveMessage",
            ],
            "SignalsAndDecisions": [
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
            ],
            "Ledger": [
                "dynamodb:DescribeTable",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:Query",
                "dynamodb:UpdateItem",
            ],
            "ReadEngineToken": [
                "secretsmanager:GetSecretValue",
                "secretsmanager:ListSecretVersionIds",
            ],
            "SchwabToken": ["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
            "ReadNotifySecrets": ["secretsmanager:GetSecretValue"],
            "ReadAlarms": ["cloudwatch:DescribeAlarms"],
            "PublishNotices": ["sns:Publish"],
            "EncryptNotices": ["kms:Decrypt", "kms:GenerateDataKey"],
        },
    ),
    Requirement(
        "task role describes this environment's alarms only (the alarm watcher)",
        "compute",
        lambda body: task_role_statement(body, "ReadAlarms")["Resource"],
        "arn:aws:cloudwatch:us-east-1:123456789012:alarm:kyperian-production-*",
    ),
    Requirement(
        "task role reads the three notification secrets only",
        "compute",
        lambda body: task_role_statement(body, "ReadNotifySecrets")["Resource"],
        [
            f"arn:aws:secretsmanager:us-east-1:123456789012:secret:/kyperian/production/notify/{c}-??????"
            for c in ("telegram", "discord", "slack")
        ],
    ),
    Requirement(
        "task role publishes to the notices topic only",
        "compute",
        lambda body: task_role_statement(body, "PublishNotices")["Resource"],
        "arn:aws:sns:us-east-1:123456789012:kyperian-production-notices",
    ),
    Requirement(
        "task role uses a key only through SNS, only the aws/sns key",
        "compute",
        lambda body: task_role_statement(body, "EncryptNotices")["Condition"],
        {
            "StringEquals": {"kms:ViaService": "sns.us-east-1.amazonaws.com"},
            "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/aws/sns"},
        },
    ),
    Requirement(
        "task role reads the engine token secret only",
        "compute",
        lambda body: [
            s["Resource"]
            for p in lookup(body, props("TaskRole") + ".Policies")
            for s in p["PolicyDocument"]["Statement"]
            if s["Sid"] == "ReadEngineToken"
        ],
        [
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
            "/kyperian/production/engine/token-??????"
        ],
    ),
    Requirement(
        "engine token: 48 alphanumerics",
        "config",
        props("EngineTokenSecret") + ".GenerateSecretString",
        {"PasswordLength": 48, "ExcludePunctuation": True, "IncludeSpace": False},
    ),
    # --- Monitoring ----------------------------------------------------------------------
    Requirement(
        "SNS notices topic under the aws/sns key",
        "monitoring",
        lambda body: {
            k: lookup(body, props("NoticeTopic"))[k] for k in ("TopicName", "KmsMasterKeyId")
        },
        {"TopicName": "kyperian-production-notices", "KmsMasterKeyId": "alias/aws/sns"},
    ),
    Requirement(
        "notices e-mail subscription to the NoticeEmail address",
        "monitoring",
        props("NoticeEmailSubscription"),
        {"TopicArn": {"Ref": "NoticeTopic"}, "Protocol": "email", "Endpoint": ""},
    ),
    Requirement(
        "SNS alert topic",
        "monitoring",
        props("AlertTopic") + ".TopicName",
        "kyperian-production-alerts",
    ),
    Requirement(
        "high latency: p99", "monitoring", props("HighLatencyAlarm") + ".ExtendedStatistic", "p99"
    ),
    Requirement(
        "high latency: > 100 ms",
        "monitoring",
        lambda body: (
            lookup(body, props("HighLatencyAlarm") + ".Threshold"),
            lookup(body, props("HighLatencyAlarm") + ".ComparisonOperator"),
        ),
        (100, "GreaterThanThreshold"),
    ),
    Requirement(
        "high latency: API Gateway Latency",
        "monitoring",
        lambda body: metric_names(body, "HighLatencyAlarm"),
        {("AWS/ApiGateway", "Latency")},
    ),
    Requirement(
        "high errors: > 10",
        "monitoring",
        lambda body: (
            lookup(body, props("HighErrorRateAlarm") + ".Threshold"),
            lookup(body, props("HighErrorRateAlarm") + ".ComparisonOperator"),
        ),
        (10, "GreaterThanThreshold"),
    ),
    Requirement(
        "high errors: per 5 minutes",
        "monitoring",
        lambda body: {
            q["MetricStat"]["Period"]
            for q in lookup(body, props("HighErrorRateAlarm") + ".Metrics")
            if "MetricStat" in q
        },
        {300},
    ),
    Requirement(
        "high errors: API 5xx and Lambda Errors",
        "monitoring",
        lambda body: metric_names(body, "HighErrorRateAlarm"),
        {("AWS/ApiGateway", "5xx"), ("AWS/Lambda", "Errors")},
    ),
    Requirement(
        "high errors: all three functions",
        "monitoring",
        lambda body: alarm_dimension_values(body, "HighErrorRateAlarm", "FunctionName"),
        {f"kyperian-production-{name}" for name in FUNCTIONS.values()},
    ),
    Requirement(
        "ECS unhealthy: running tasks < 1",
        "monitoring",
        lambda body: (
            lookup(body, props("EcsTasksFailingAlarm") + ".Threshold"),
            lookup(body, props("EcsTasksFailingAlarm") + ".ComparisonOperator"),
            metric_names(body, "EcsTasksFailingAlarm"),
        ),
        (1, "LessThanThreshold", {("ECS/ContainerInsights", "RunningTaskCount")}),
    ),
    Requirement(
        "ECS unhealthy: the engine service",
        "monitoring",
        lambda body: alarm_dimension_values(body, "EcsTasksFailingAlarm", "ServiceName"),
        {"kyperian-production-service"},
    ),
    Requirement(
        "Redis memory: > 90 %",
        "monitoring",
        lambda body: (
            lookup(body, props("RedisMemoryAlarm") + ".Threshold"),
            lookup(body, props("RedisMemoryAlarm") + ".ComparisonOperator"),
            metric_names(body, "RedisMemoryAlarm"),
        ),
        (90, "GreaterThanThreshold", {("AWS/ElastiCache", "DatabaseMemoryUsagePercentage")}),
    ),
    Requirement(
        "Redis memory: both nodes",
        "monitoring",
        lambda body: alarm_dimension_values(body, "RedisMemoryAlarm", "CacheClusterId"),
        {"kyperian-production-redis-001", "kyperian-production-redis-002"},
    ),
    Requirement(
        "DLQ not empty: > 0 on both dead-letter queues",
        "monitoring",
        lambda body: (
            lookup(body, props("DlqNotEmptyAlarm") + ".Threshold"),
            lookup(body, props("DlqNotEmptyAlarm") + ".ComparisonOperator"),
            alarm_dimension_values(body, "DlqNotEmptyAlarm", "QueueName"),
        ),
        (
            0,
            "GreaterThanThreshold",
            {"kyperian-production-signals-dlq", "kyperian-production-events-dlq"},
        ),
    ),
    Requirement(
        "queue age: oldest work-queue message > 300 s for 3 minutes",
        "monitoring",
        lambda body: (
            metric_names(body, "QueueAgeAlarm"),
            alarm_dimension_values(body, "QueueAgeAlarm", "QueueName"),
            lookup(body, props("QueueAgeAlarm") + ".Statistic"),
            lookup(body, props("QueueAgeAlarm") + ".Threshold"),
            lookup(body, props("QueueAgeAlarm") + ".ComparisonOperator"),
            lookup(body, props("QueueAgeAlarm") + ".Period"),
            lookup(body, props("QueueAgeAlarm") + ".DatapointsToAlarm"),
        ),
        (
            {("AWS/SQS", "ApproximateAgeOfOldestMessage")},
            {"kyperian-production-signals"},
            "Maximum",
            300,
            "GreaterThanThreshold",
            60,
            3,
        ),
    ),
    Requirement(
        "rejections spiking: > 10 % of webhook requests, at least 10, two 5-minute periods",
        "monitoring",
        lambda body: (
            metric_names(body, "SignalsRejectedAlarm"),
            alarm_dimension_values(body, "SignalsRejectedAlarm", "service"),
            alarm_dimension_values(body, "SignalsRejectedAlarm", "environment"),
            lookup(body, props("SignalsRejectedAlarm") + ".Threshold"),
            lookup(body, props("SignalsRejectedAlarm") + ".DatapointsToAlarm"),
            lookup(
                body, props("SignalsRejectedAlarm") + ".Metrics[Id=share].Expression"
            ).startswith("IF(rejected >= 10, 100 * rejected / "),
        ),
        (
            {("Kyperian", "SignalsRejected"), ("Kyperian", "SignalsAccepted")},
            {"signal-validator", "mtf-handler"},
            {"production"},
            10,
            2,
            True,
        ),
    ),
    Requirement(
        "engine degraded: decisions without Redis in 3 of 5 minutes",
        "monitoring",
        lambda body: (
            metric_names(body, "EngineDegradedAlarm"),
            alarm_dimension_values(body, "EngineDegradedAlarm", "service"),
            alarm_dimension_values(body, "EngineDegradedAlarm", "environment"),
            lookup(body, props("EngineDegradedAlarm") + ".Threshold"),
            lookup(body, props("EngineDegradedAlarm") + ".DatapointsToAlarm"),
            lookup(body, props("EngineDegradedAlarm") + ".EvaluationPeriods"),
        ),
        ({("Kyperian", "DegradedMode")}, {"engine"}, {"production"}, 0, 3, 5),
    ),
    Requirement(
        "exactly the twelve alarms",
        "monitoring",
        of_type("AWS::CloudWatch::Alarm", lambda p: p["AlarmName"]),
        {
            "HighLatencyAlarm": "kyperian-production-high-latency",
            "HighErrorRateAlarm": "kyperian-production-high-error-rate",
            "EcsTasksFailingAlarm": "kyperian-production-ecs-tasks-failing",
            "RedisMemoryAlarm": "kyperian-production-redis-memory",
            "DlqNotEmptyAlarm": "kyperian-production-dlq-not-empty",
            "QueueAgeAlarm": "kyperian-production-queue-age",
            "SignalsRejectedAlarm": "kyperian-production-signals-rejected",
            "EngineDegradedAlarm": "kyperian-production-engine-degraded",
            "TradingHaltedAlarm": "kyperian-production-trading-halted",
            "ReconciliationMismatchAlarm": "kyperian-production-reconciliation-mismatch",
            "UndoFailedAlarm": "kyperian-production-undo-failed",
            "SchwabLoginExpiringAlarm": "kyperian-production-schwab-login-expiring",
        },
    ),
    Requirement(
        "rollback triggers: four flagged alarms, not dlq-not-empty (it pages; a message left by"
        " an earlier release must not block unrelated deploys)",
        "monitoring",
        lambda body: sorted(
            logical_id
            for logical_id, resource in body["Resources"].items()
            if resource.get("Metadata", {}).get("Kyperian", {}).get("RollbackTrigger") is True
        ),
        sorted(
            [
                "HighLatencyAlarm",
                "HighErrorRateAlarm",
                "EcsTasksFailingAlarm",
                "RedisMemoryAlarm",
            ]
        ),
    ),
    Requirement(
        "no dashboard bodies in templates (dashboards/*.json is the source)",
        "monitoring",
        lambda body: [
            r for r in body["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"
        ],
        [],
    ),
    *alarm_rows(),
    # --- CI/CD ---------------------------------------------------------------------------
    Requirement(
        "ECR: scan on push, immutable tags",
        "cicd",
        lambda body: (
            lookup(body, props("EngineRepository") + ".RepositoryName"),
            lookup(body, props("EngineRepository") + ".ImageScanningConfiguration.ScanOnPush"),
            lookup(body, props("EngineRepository") + ".ImageTagMutability"),
        ),
        ("kyperian-production-engine", True, "IMMUTABLE"),
    ),
    Requirement(
        "production deploy role trusts only the approved production environment",
        "cicd",
        props("DeployRole") + ".AssumeRolePolicyDocument.Statement[0].Condition",
        {
            "StringEquals": {"token.actions.githubusercontent.com:aud": "sts.amazonaws.com"},
            "StringLike": {
                "token.actions.githubusercontent.com:sub": [
                    "repo:kyperian/kyperian:environment:production",
                ]
            },
        },
    ),
    Requirement(
        "staging deploy role also trusts main, whose build job pushes the image",
        "cicd",
        props("DeployRole") + ".AssumeRolePolicyDocument.Statement[0].Condition.StringLike",
        {
            "token.actions.githubusercontent.com:sub": [
                "repo:kyperian/kyperian:environment:staging",
                "repo:kyperian/kyperian:ref:refs/heads/main",
            ]
        },
        parameter_file="staging",
    ),
    Requirement(
        "GitHub OIDC provider created once (staging stack)",
        "cicd",
        props("GitHubOidcProvider") + ".Url",
        "https://token.actions.githubusercontent.com",
        parameter_file="staging",
    ),
    # --- DR ------------------------------------------------------------------------------
    Requirement(
        "Route 53 failover: primary guarded by a health check",
        "dr",
        lambda body: (
            lookup(body, props("OriginPrimaryRecord") + ".Failover"),
            lookup(body, props("OriginPrimaryRecord") + ".HealthCheckId"),
        ),
        ("PRIMARY", {"Ref": "PrimaryHealthCheck"}),
    ),
    Requirement(
        "health check probes /<env>/health over HTTPS",
        "dr",
        lambda body: (
            lookup(body, props("PrimaryHealthCheck") + ".HealthCheckConfig.Type"),
            lookup(body, props("PrimaryHealthCheck") + ".HealthCheckConfig.ResourcePath"),
            lookup(
                body, props("PrimaryHealthCheck") + ".HealthCheckConfig.FullyQualifiedDomainName"
            ),
        ),
        ("HTTPS", "/production/health", "origin-api-us-east-1.kyperian.com"),
    ),
    Requirement(
        "DR region's stacks are parameterised (production-dr.json targets us-west-2 names)",
        "api",
        props("RegionalDomain") + ".DomainName",
        "origin-api-us-west-2.kyperian.com",
        parameter_file="production-dr",
    ),
]


@pytest.mark.parametrize("requirement", REQUIREMENTS, ids=[r.name for r in REQUIREMENTS])
def test_template_meets_requirement(requirement: Requirement) -> None:
    # GIVEN the template rendered with the environment's parameter file
    # WHEN the requirement's value is read
    actual = requirement.actual()
    # THEN it is what the specification asks for
    assert actual == requirement.expected


def test_requirement_names_are_unique() -> None:
    names = [r.name for r in REQUIREMENTS]
    assert len(names) == len(set(names))


def test_dr_secondary_record_waits_for_the_dr_api() -> None:
    # GIVEN the committed production parameters, which leave the DR API target empty
    dr = load_template("dr")
    # WHEN the condition of the secondary record is evaluated
    has_dr_api = dr.condition("HasDrApi", "production")
    # THEN the failover pair has only its primary until the DR region's API exists
    assert has_dr_api is False
    assert dr.resources["OriginSecondaryRecord"]["Condition"] == "HasDrApi"


def test_tables_are_created_only_in_the_primary_region() -> None:
    # GIVEN the data template and the primary and DR regions' parameters
    data = load_template("data")
    # WHEN the region condition is evaluated in each
    in_primary = data.condition("IsPrimaryRegion", "production")
    in_dr = data.condition("IsPrimaryRegion", "production-dr")
    # THEN only the primary creates the global tables; the DR region holds their replicas
    assert (in_primary, in_dr) == (True, False)
    assert {data.resources[t]["Condition"] for t in ("SignalsTable", "DecisionsTable")} == {
        "IsPrimaryRegion"
    }


def test_notices_subscription_only_with_an_address() -> None:
    # GIVEN the monitoring template and the committed parameters, which leave NoticeEmail empty
    monitoring = load_template("monitoring")
    # WHEN the subscription's condition is evaluated
    subscribed = monitoring.condition("HasNoticeEmail", "production")
    # THEN no address is subscribed until the trader gives one
    assert subscribed is False
    assert monitoring.resources["NoticeEmailSubscription"]["Condition"] == "HasNoticeEmail"


@pytest.mark.parametrize(
    ("parameter", "variable", "channel"),
    [
        ("NotifyTelegram", "KYPERIAN_NOTIFY_TELEGRAM_SECRET_ID", "telegram"),
        ("NotifyDiscord", "KYPERIAN_NOTIFY_DISCORD_SECRET_ID", "discord"),
        ("NotifySlack", "KYPERIAN_NOTIFY_SLACK_SECRET_ID", "slack"),
    ],
)
def test_a_channel_variable_is_set_only_when_its_channel_is_on(
    parameter: str, variable: str, channel: str
) -> None:
    # GIVEN the compute template with the channel off (committed) and on
    compute = load_template("compute")
    values = compute.parameter_values("production")
    off = _Renderer(compute, {**values, parameter: "false"}, "us-east-1").render(compute.body)
    on = _Renderer(compute, {**values, parameter: "true"}, "us-east-1").render(compute.body)
    # WHEN the engine container's environment is read
    env_off = {e["Name"]: e["Value"] for e in container(off)["Environment"]}
    env_on = {e["Name"]: e["Value"] for e in container(on)["Environment"]}
    # THEN the secret id appears only when the channel is on, naming config.yaml's secret
    assert variable not in env_off
    assert env_on[variable] == f"/kyperian/production/notify/{channel}"
    assert (
        load_template("config").get(f"Resources.Notify{channel.title()}Secret.Properties.Name")
        == env_on[variable]
    )
