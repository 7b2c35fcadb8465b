"""Create the signal path's AWS resources in an emulator by deploying the real templates.

``cloudformation/data.yaml`` (the Signals, Decisions and Ledger tables) and ``messaging.yaml``
(the bus, the ``SignalValidated`` rule, the engine's queue with its DLQ, the audit log
group) are deployed into moto under ``kyperian-<environment>-...`` names, so the local
stack and the tests use exactly what AWS runs. moto's CloudFormation ignores Secrets
Manager, so the API key secret (and the engine token, when given) is created directly under
the name config.yaml gives it; the engine then reads its token from there, as on AWS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kyperian.local.templates import deploy

SERVICES = ("cloudformation", "dynamodb", "events", "sqs", "secretsmanager", "logs")
"""The emulator clients ``provision`` needs."""


@dataclass(frozen=True)
class LocalResources:
    """What ``provision`` created."""

    signals_table: str
    decisions_table: str
    ledger_table: str
    bus: str
    queue_url: str
    dlq_url: str
    api_key_secret_id: str
    engine_token_secret_id: str | None = None


def api_key_secret_id(environment: str) -> str:
    """config.yaml's name for the webhook key: ``/kyperian/<env>/api/key``."""
    return f"/kyperian/{environment}/api/key"


def engine_token_secret_id(environment: str) -> str:
    """The engine token's secret: ``/kyperian/<env>/engine/token`` (the settings' default)."""
    return f"/kyperian/{environment}/engine/token"


def provision(
    clients: dict[str, Any],
    environment: str,
    api_key: str,
    engine_token: str | None = None,
    data_clients: dict[str, Any] | None = None,
) -> LocalResources:
    """Deploy the data and messaging stacks, then store the API key (and engine token) secrets.

    ``data_clients`` reach the emulator that serves DynamoDB when it is not the same one
    (the local stack runs DynamoDB in an emulator process of its own).
    """
    data = deploy((data_clients or clients)["cloudformation"], "data", environment)
    messaging = deploy(clients["cloudformation"], "messaging", environment)
    secret_id = api_key_secret_id(environment)
    clients["secretsmanager"].create_secret(Name=secret_id, SecretString=api_key)
    token_id = engine_token_secret_id(environment) if engine_token else None
    if engine_token:
        clients["secretsmanager"].create_secret(Name=token_id, SecretString=engine_token)
    dlq_name = messaging["SignalDeadLetterQueueName"]
    return LocalResources(
        signals_table=data["SignalsTableName"],
        decisions_table=data["DecisionsTableName"],
        ledger_table=data["LedgerTableName"],
        bus=messaging["EventBusName"],
        queue_url=messaging["SignalQueueUrl"],
        dlq_url=clients["sqs"].get_queue_url(QueueName=dlq_name)["QueueUrl"],
        api_key_secret_id=secret_id,
        engine_token_secret_id=token_id,
    )
