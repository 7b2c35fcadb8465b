"""``kyperian up``: the whole signal path on one machine, on embedded defaults.

Starts, in order: the AWS emulator (moto in server mode, ``kyperian.local.emulator``: one
process for DynamoDB, one for every other service, both reachable on one port) provisioned
with the stack's resources; a real ``redis-server`` on a free port; the engine service on
:8000 with its queue worker; then the webhook gateway on :8080 emulating the HTTP API in
front of the real Lambda handler. Every child gets the same ``KYPERIAN_*`` settings and
botocore's endpoint variables pointing at the emulators. Ctrl-C stops everything and
frees the ports.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from kyperian.local.resources import (
    SERVICES,
    LocalResources,
    engine_token_secret_id,
    provision,
)
from kyperian.local.supervisor import (
    Child,
    StartupFailed,
    Supervisor,
    free_port,
    http_ok,
    port_open,
    python_module,
    redis_ping,
)
from kyperian.settings import Settings

LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class StackInfo:
    """What a user needs to talk to the running stack."""

    api_key: str
    key_generated: bool
    engine_token: str
    token_generated: bool
    gateway_url: str
    aws_endpoint: str
    resources: LocalResources
    extra_lines: tuple[str, ...] = ()


def _check_ports_free(settings: Settings) -> None:
    wanted = {
        "KYPERIAN_LOCAL_AWS_PORT": settings.local_aws_port,
        "KYPERIAN_GATEWAY_PORT": settings.gateway_port,
        "KYPERIAN_ENGINE_PORT": settings.engine_port,
    }
    for variable, port in wanted.items():
        if port_open(port):
            raise StartupFailed(
                f"port {port} is already in use: stop what holds it, or set {variable}"
            )


def _clients(endpoint: str) -> dict[str, Any]:
    session: Any = boto3.session.Session(
        aws_access_key_id="local",
        aws_secret_access_key="local",  # noqa: S106 - the emulator accepts any credentials
        region_name="us-east-1",
    )
    return {name: session.client(name, endpoint_url=endpoint) for name in SERVICES}


def child_environment(
    settings: Settings, resources: LocalResources, endpoint: str, dynamodb_endpoint: str
) -> dict[str, str]:
    """Settings every child process shares: the emulator endpoints and resource names.

    botocore's own variables route the clients: ``AWS_ENDPOINT_URL`` for every service,
    ``AWS_ENDPOINT_URL_DYNAMODB`` for DynamoDB's emulator. ``KYPERIAN_AWS_ENDPOINT_URL``
    is left unset because an explicit endpoint would override the per-service one.
    """
    return {
        **LOCAL_CREDENTIALS,
        "KYPERIAN_ENVIRONMENT": settings.environment,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "KYPERIAN_SIGNALS_TABLE": resources.signals_table,
        "KYPERIAN_DECISIONS_TABLE": resources.decisions_table,
        "KYPERIAN_LEDGER_TABLE": resources.ledger_table,
        "KYPERIAN_EVENT_BUS_NAME": resources.bus,
        "KYPERIAN_SIGNAL_QUEUE_URL": resources.queue_url,
        "KYPERIAN_API_KEY_SECRET_ID": resources.api_key_secret_id,
        "KYPERIAN_SECRET_MAX_AGE_SECONDS": "5",
        "POWERTOOLS_METRICS_NAMESPACE": "Kyperian",
        "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "false"),
    }


def _start_emulators(settings: Settings, supervisor: Supervisor, log_dir: Path) -> tuple[str, str]:
    """Two moto processes: DynamoDB in one, every other service in the other.

    One Python process runs on one core; split this way the webhook's two calls (a put to
    the Signals table, an event to the bus) and the engine's (queue, Decisions table) run
    on both cores. The main emulator relays DynamoDB calls to the other, so a client
    given only its endpoint (the runbook drills, a user's aws CLI) still reaches the tables.
    """
    promised = (settings.local_aws_port, settings.gateway_port, settings.engine_port)
    dynamodb_port = free_port(avoid=promised)
    dynamodb = f"http://127.0.0.1:{dynamodb_port}"
    supervisor.start(
        Child(
            "aws-dynamodb",
            python_module("kyperian.local.emulator", "-H", "127.0.0.1", "-p", str(dynamodb_port)),
            http_ok(f"{dynamodb}/moto-api/data.json"),
            env=LOCAL_CREDENTIALS,
            log=log_dir / "aws-dynamodb.log",
        )
    )
    endpoint = f"http://127.0.0.1:{settings.local_aws_port}"
    argv = ["-H", "127.0.0.1", "-p", str(settings.local_aws_port), "--dynamodb", dynamodb]
    supervisor.start(
        Child(
            "aws-emulator",
            python_module("kyperian.local.emulator", *argv),
            http_ok(f"{endpoint}/moto-api/data.json"),
            env=LOCAL_CREDENTIALS,
            log=log_dir / "aws-emulator.log",
        )
    )
    return endpoint, dynamodb


def start(settings: Settings, supervisor: Supervisor, log_dir: Path) -> StackInfo:
    """Start the emulator and the gateway under ``supervisor``; return how to reach them."""
    _check_ports_free(settings)
    log_dir.mkdir(parents=True, exist_ok=True)
    endpoint, dynamodb = _start_emulators(settings, supervisor, log_dir)
    given = settings.api_key.get_secret_value() if settings.api_key else None
    api_key = given or secrets.token_urlsafe(30)
    given_token = settings.engine_token.get_secret_value() if settings.engine_token else None
    engine_token = given_token or secrets.token_urlsafe(30)
    resources = provision(
        _clients(endpoint),
        settings.environment,
        api_key,
        engine_token,
        data_clients=_clients(dynamodb),
    )
    env = child_environment(settings, resources, endpoint, dynamodb)
    promised = (settings.local_aws_port, settings.gateway_port, settings.engine_port)
    redis_port = _start_redis(supervisor, log_dir, avoid=promised)
    env["KYPERIAN_REDIS_HOST"], env["KYPERIAN_REDIS_PORT"] = "127.0.0.1", str(redis_port)
    engine_url = _start_engine(settings, supervisor, env, log_dir)
    gateway_url = f"http://127.0.0.1:{settings.gateway_port}"
    supervisor.start(
        Child(
            "gateway",
            python_module(
                "uvicorn",
                "--factory",
                "kyperian.local.gateway:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.gateway_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ),
            http_ok(f"{gateway_url}/health"),
            env={
                **env,
                "KYPERIAN_THROTTLE_RATE": str(settings.throttle_rate),
                "KYPERIAN_THROTTLE_BURST": str(settings.throttle_burst),
                "POWERTOOLS_SERVICE_NAME": "signal-validator",
                "AWS_SDK_UA_APP_ID": "gateway",
            },
            log=log_dir / "gateway.log",
            restart=True,
        )
    )
    extra = (
        f"redis-server           127.0.0.1:{redis_port}",
        f"engine                 {engine_url}  (docs: {engine_url}/docs, sign in with the token)",
        f"dashboard              {engine_url}/ui  (sign in with the engine token)",
    )
    return StackInfo(
        api_key, given is None, engine_token, given_token is None, gateway_url, endpoint,
        resources, extra,
    )  # fmt: skip


def _start_redis(supervisor: Supervisor, log_dir: Path, avoid: tuple[int, ...]) -> int:
    """A real redis-server on a free port, with nothing persisted to disk."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise StartupFailed(
            "redis-server is not installed: run `make redis` (Debian/Ubuntu as root), "
            "`sudo apt-get install redis-server`, or `brew install redis`"
        )
    port = free_port(avoid)
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    supervisor.start(
        Child("redis-server", argv, lambda: redis_ping(port), log=log_dir / "redis.log")
    )
    return port


def _start_engine(
    settings: Settings, supervisor: Supervisor, env: dict[str, str], log_dir: Path
) -> str:
    """The engine service and its SQS worker, as the ECS task runs them."""
    url = f"http://127.0.0.1:{settings.engine_port}"
    argv = python_module(
        "uvicorn",
        "kyperian.engine.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(settings.engine_port),
        "--timeout-graceful-shutdown",
        "3",
        "--no-access-log",
    )
    # The engine reads its token from the emulator's Secrets Manager, as on AWS (rotation
    # and its grace included), never from a KYPERIAN_ENGINE_TOKEN of the shell.
    engine_env = {
        **env,
        "POWERTOOLS_SERVICE_NAME": "engine",
        "AWS_SDK_UA_APP_ID": "engine",
        "KYPERIAN_ENGINE_TOKEN_SECRET_ID": engine_token_secret_id(settings.environment),
    }
    supervisor.start(
        Child(
            "engine",
            argv,
            http_ok(f"{url}/health"),
            env=engine_env,
            log=log_dir / "engine.log",
            restart=True,
            unset=frozenset({"KYPERIAN_ENGINE_TOKEN"}),
        )
    )
    return url
