"""Run the runbooks' commands against the local stack and check they do what the pages say.

``kyperian ops drill`` (``make drill``) starts the whole local system (``kyperian up`` in a
subprocess on free ports: moto with the stack's resources, redis-server, the engine, the
webhook gateway), then for each drill reads the marked blocks (``<!-- drill: name -->``) of a
runbook page, executes their commands with ``ENV=local`` - ``aws ...`` commands become boto3
calls against the emulator, through the same parser and option conversion the runbook check
uses (``kyperian/ops/runbooks.py``) - and checks the outcome on the running system:

=====================  ==========================================================================
drill                  checks
=====================  ==========================================================================
scale-ecs              desired count and scalable-target floor are 5 after the page's commands
dlq-redrive            a signal put in the DLQ is back on the work queue and decided by the engine
rotate-api-key         after the cache age the old key gets 401 and the new one 202; rollback too
invalidate-cache       the admin command removes the engine's keys, refills signals, and the
                       decision is still served (from the table)
restore-point-in-time  the restore of a table to a point in time, copy-back and verification
                       (``kyperian/ops/restore_drill.py``), on a scratch copy of a stack table
=====================  ==========================================================================

What the emulator cannot do is done the closest way and said so in the output: moto has no
ECS tasks, so ``ecs run-task`` runs its container command override locally with the engine's
settings; moto has no ``StartMessageMoveTask``, so the move is done with receive/send/delete,
as the move task does. ``--attach`` drills an already running stack instead. Exit code 0 when
every drill passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import boto3
import jmespath  # type: ignore[import-untyped]  # no stubs; only search() is used
import redis
from botocore import xform_name
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.validate import ParamValidator

from kyperian.client import Answer, Unreachable, engine_token, request
from kyperian.domain.models import Signal
from kyperian.local.launcher import running_stack
from kyperian.ops.engine_rig import envelope
from kyperian.ops.restore_drill import DrillFailed as RestoreFailed
from kyperian.ops.restore_drill import RestoreDrill
from kyperian.ops.runbooks import (
    RUNBOOKS,
    AwsCommand,
    Command,
    code_blocks,
    commands_of,
    expand_command,
    logical_lines,
    split_aws,
    to_params,
)

ENVIRONMENT: Final = "local"
REGION: Final = "us-east-1"
SECRET_MAX_AGE: Final = 5.0
"""The local stack's KYPERIAN_SECRET_MAX_AGE_SECONDS."""
SECRET_NAMES: Final = ("KEY", "SECRET", "PREVIOUS", "TOKEN", "PASSWORD")


class DrillFailed(Exception):
    """A check of a drill did not hold."""


@dataclass(frozen=True)
class Stack:
    """How to reach a running local stack."""

    aws_endpoint: str
    gateway: str
    engine: str
    redis_port: int
    api_key: str
    engine_token: str | None = None

    def child_env(self) -> dict[str, str]:
        """The settings an engine process of this stack gets (for one-off admin commands)."""
        return {
            **os.environ,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": REGION,
            "KYPERIAN_ENVIRONMENT": ENVIRONMENT,
            "KYPERIAN_AWS_ENDPOINT_URL": self.aws_endpoint,
            "KYPERIAN_REDIS_HOST": "127.0.0.1",
            "KYPERIAN_REDIS_PORT": str(self.redis_port),
            "KYPERIAN_WORKER_ENABLED": "false",
            "POWERTOOLS_SERVICE_NAME": "engine",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }


# --- running runbook text ---------------------------------------------------------------------


@dataclass
class Shell:
    """Executes runbook commands: shell variables, ``aws`` as boto3 calls, a few builtins."""

    stack: Stack
    say: Callable[[str], None]
    variables: dict[str, str] = field(default_factory=dict)
    outputs: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="kyperian-drill-")))

    def __post_init__(self) -> None:
        self.variables.update({"ENV": ENVIRONMENT, "AWS_REGION": REGION})
        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the emulator takes any credentials
            region_name=REGION,
        )
        self._session = session
        # one attempt: an emulator error should show at once, not after retries
        self._config = Config(retries={"mode": "standard", "max_attempts": 1})

    def client(self, service: str) -> Any:
        # the stubs type client() per literal service name; this one is chosen at run time
        return self._session.client(  # type: ignore[call-overload]
            service, endpoint_url=self.stack.aws_endpoint, config=self._config
        )

    def _local_path(self, word: str) -> str:
        """The runbook's /tmp files live in the drill's own directory."""
        # The runbook names /tmp paths; they are matched here and moved out of /tmp.
        for prefix in ("file:///tmp/", "/tmp/"):  # noqa: S108  # nosec B108
            if word.startswith(prefix):
                scheme = "file://" if prefix.startswith("file") else ""
                return f"{scheme}{self.workdir}/{word[len(prefix) :]}"
        return word

    def run_block(self, page: str, drill: str) -> list[Any]:
        """Run the block of ``runbooks/<page>`` marked ``drill``; return each command's output."""
        blocks = [b for b in code_blocks(RUNBOOKS / page) if b.drill == drill]
        if len(blocks) != 1:
            raise DrillFailed(
                f"{page}: expected one block marked drill: {drill}, found {len(blocks)}"
            )
        self.outputs = []
        for line in logical_lines(blocks[0]):
            for command in commands_of(line):
                self._run(command)
        return self.outputs

    def _masked(self, text: str) -> str:
        for name, value in self.variables.items():
            if any(word in name for word in SECRET_NAMES) and value:
                text = text.replace(value, "****")
        return text

    def _run(self, raw: Command) -> None:
        try:
            command = expand_command(raw, self.variables)
        except KeyError as exc:
            raise DrillFailed(f"{raw.where}: variable {exc} is not set") from None
        command = Command(
            command.page,
            command.line,
            tuple(self._local_path(word) for word in command.argv),
            command.assign,
            command.value,
            self._local_path(command.redirect_out) if command.redirect_out else None,
        )
        if not command.argv:
            if command.assign:
                self.variables[command.assign] = command.value or ""
            return
        self.say(f"    $ {self._masked(' '.join(command.argv))}    ({command.where})")
        if command.is_aws:
            output = self._aws(split_aws(command))
        elif command.argv[0] == "unset":
            for name in command.argv[1:]:
                self.variables.pop(name, None)
            return
        elif command.argv[0] == "sleep":
            time.sleep(float(command.argv[1]))
            return
        else:
            raise DrillFailed(f"{command.where}: {command.argv[0]} is not drillable")
        if command.assign:
            self.variables[command.assign] = (
                output if isinstance(output, str) else json.dumps(output)
            )
        if command.redirect_out:
            text = output if isinstance(output, str) else json.dumps(output, default=str, indent=2)
            Path(command.redirect_out).write_text(text + "\n", encoding="utf-8")
        self.outputs.append(output)

    def _aws(self, aws: AwsCommand) -> Any:
        if (aws.service, aws.operation) == ("ecs", "run-task"):
            return self._run_task_locally(aws)
        params = to_params(aws)
        client = self.client(aws.service)
        try:
            if aws.waiter:
                client.get_waiter(aws.waiter.replace("-", "_")).wait(**params)
                return None
            call = getattr(client, xform_name(aws.api_operation or aws.operation))
            response = self._call(aws, call, params)
        except (ClientError, BotoCoreError) as exc:
            raise DrillFailed(f"{aws.where}: {exc}") from exc
        response = {k: v for k, v in response.items() if k != "ResponseMetadata"}
        result = (
            jmespath.search(aws.globals["--query"], response)
            if "--query" in aws.globals
            else response
        )
        return _format(result, aws.globals.get("--output") or "json")

    def _call(self, aws: AwsCommand, call: Callable[..., Any], params: dict[str, Any]) -> Any:
        try:
            return call(**params)
        except ClientError as exc:
            # moto has no StartMessageMoveTask: in server mode it answers a bare HTTP 500
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            emulator_gap = "not been implemented" in str(exc) or status == 500
            if (aws.service, aws.operation) == ("sqs", "start-message-move-task") and emulator_gap:
                return self._move_messages(params)
            raise

    def _move_messages(self, params: dict[str, Any]) -> dict[str, Any]:
        """What StartMessageMoveTask does, for an emulator without it: receive, send, delete."""
        sqs = self.client("sqs")
        source = sqs.get_queue_url(QueueName=params["SourceArn"].rsplit(":", 1)[-1])["QueueUrl"]
        target = sqs.get_queue_url(QueueName=params["DestinationArn"].rsplit(":", 1)[-1])[
            "QueueUrl"
        ]
        moved = 0
        while True:
            batch = sqs.receive_message(
                QueueUrl=source, MaxNumberOfMessages=10, MessageAttributeNames=["All"]
            ).get("Messages", [])
            if not batch:
                break
            for message in batch:
                extra = (
                    {"MessageAttributes": message["MessageAttributes"]}
                    if message.get("MessageAttributes")
                    else {}
                )
                sqs.send_message(QueueUrl=target, MessageBody=message["Body"], **extra)
                sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        self.notes.append(
            f"the emulator has no StartMessageMoveTask: moved {moved} message(s) with "
            "ReceiveMessage/SendMessage/DeleteMessage, as the move task does"
        )
        return {"TaskHandle": f"local-move-{uuid.uuid4()}", "Moved": moved}

    def _run_task_locally(self, aws: AwsCommand) -> str:
        """A one-off ECS task, locally: its container command override with the engine's env."""
        params = to_params(aws)
        _validate(aws, params)
        overrides = params["overrides"]["containerOverrides"]
        (engine,) = [o for o in overrides if o["name"] == "engine"]
        argv = [sys.executable if part == "python" else part for part in engine["command"]]
        self.notes.append(
            "the emulator runs no ECS task: ran the task's command override locally "
            f"with the engine's settings: {' '.join(engine['command'])}"
        )
        done = subprocess.run(  # noqa: S603 - argv from the runbook's override, our own module
            argv,
            env=self.stack.child_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise DrillFailed(
                f"{aws.where}: task command exited {done.returncode}: {done.stdout}{done.stderr}"
            )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        self.outputs.append(json.loads(lines[-1]))
        task = f"task/kyperian-{ENVIRONMENT}/drill-{uuid.uuid4().hex}"
        return f"arn:aws:ecs:{REGION}:000000000000:{task}"


def _validate(aws: AwsCommand, params: dict[str, Any]) -> None:
    """botocore's own parameter validation (what the CLI would send)."""
    model = aws.operation_model()
    if model is None or model.input_shape is None:
        raise DrillFailed(f"{aws.where}: no such operation")
    report = ParamValidator().validate(params, model.input_shape)
    if report.has_errors():
        raise DrillFailed(f"{aws.where}: {report.generate_report()}")


def _format(result: Any, output: str) -> Any:
    """``--output text`` gives a string as the CLI prints it; json keeps the value."""
    if output != "text":
        return result
    if result is None:
        return "None"
    if isinstance(result, list):
        return "\t".join(str(item) for item in result)
    if isinstance(result, dict):
        return "\t".join(str(value) for value in result.values())
    return str(result)


# --- the drills -------------------------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise DrillFailed(message)


def _signal(symbol: str, timeframe: str = "4h", action: str = "BUY") -> Signal:
    now = datetime.now(UTC)
    return Signal(
        signal_id=str(uuid.uuid4()),
        symbol=symbol,
        action=action,
        timeframe=timeframe,
        source="luxalgo",
        price=100.0,
        confidence=80.0,
        timestamp=now,
        key_time=now,
        received_at=now,
        ttl=int((now + timedelta(days=7)).timestamp()),
    )


def _decision(stack: Stack, symbol: str, trigger: str, timeout: float = 45.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: Answer | None = None
    while time.monotonic() < deadline:
        try:
            last = request("GET", f"{stack.engine}/decisions/{symbol}", bearer=stack.engine_token)
        except Unreachable:
            time.sleep(0.3)
            continue
        if last.ok and last.body.get("trigger_signal_id") == trigger:
            return last.body
        time.sleep(0.3)
    raise DrillFailed(f"no decision for {symbol} triggered by {trigger}; last answer {last}")


def _post(
    stack: Stack, key: str, symbol: str, timeframe: str = "240", action: str = "buy"
) -> Answer:
    alert = {
        "passphrase": key,
        "symbol": symbol,
        "action": action,
        "source": "luxalgo",
        "timeframe": timeframe,
        "price": 100.0,
        "confidence": 80,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    return request("POST", f"{stack.gateway}/webhook", alert)


def ensure_ecs(shell: Shell) -> tuple[str, str]:
    """The local stack has no ECS: create what compute.yaml would (cluster, family, service).

    The service gets an awsvpc network (a VPC, a private subnet, a security group in the
    emulator), as on AWS, because the cache runbook copies it for its one-off task.
    """
    ecs = shell.client("ecs")
    cluster, service = f"kyperian-{ENVIRONMENT}", f"kyperian-{ENVIRONMENT}-service"
    if not ecs.describe_clusters(clusters=[cluster])["clusters"]:
        ecs.create_cluster(clusterName=cluster)
    found = ecs.describe_services(cluster=cluster, services=[service])["services"]
    if [s for s in found if s.get("status") == "ACTIVE"]:
        return cluster, service
    ec2 = shell.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.10.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(
        GroupName=f"kyperian-{ENVIRONMENT}-ecs", Description="drill", VpcId=vpc
    )["GroupId"]
    ecs.register_task_definition(
        family=f"kyperian-{ENVIRONMENT}-engine",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="512",
        memory="1024",
        containerDefinitions=[
            {"name": "engine", "image": "kyperian-engine:local", "essential": True}
        ],
    )
    ecs.create_service(
        cluster=cluster,
        serviceName=service,
        taskDefinition=f"kyperian-{ENVIRONMENT}-engine",
        desiredCount=2,
        launchType="FARGATE",
        networkConfiguration={
            "awsvpcConfiguration": {
                "subnets": [subnet],
                "securityGroups": [group],
                "assignPublicIp": "DISABLED",
            }
        },
    )
    return cluster, service


def drill_scale(shell: Shell, stack: Stack) -> str:
    ecs = shell.client("ecs")
    cluster, service = ensure_ecs(shell)
    before = ecs.describe_services(cluster=cluster, services=[service])["services"][0][
        "desiredCount"
    ]
    shell.run_block("scale-ecs.md", "scale")
    state, target = shell.run_block("scale-ecs.md", "scale-verify")
    _check(state["desired"] == 5, f"desired count is {state['desired']}, expected 5")
    _check(
        target["min"] == 5 and target["max"] == 20, f"scalable target is {target}, expected 5-20"
    )
    return (
        f"desired {before} -> {state['desired']}, scalable target {target['min']}-{target['max']}"
    )


def drill_dlq(shell: Shell, stack: Stack) -> str:
    sqs = shell.client("sqs")
    dlq = sqs.get_queue_url(QueueName=f"kyperian-{ENVIRONMENT}-signals-dlq")["QueueUrl"]
    signal = _signal("DRILLDLQ")
    sqs.send_message(QueueUrl=dlq, MessageBody=envelope(signal))
    (*_, counted) = shell.run_block("dlq-redrive.md", "dlq-find")
    _check(int(counted["Attributes"]["ApproximateNumberOfMessages"]) >= 1, f"DLQ count {counted}")
    shell.run_block("dlq-redrive.md", "dlq-redrive")
    decision = _decision(stack, "DRILLDLQ", signal.signal_id)
    dlq_after, _queue_after = shell.run_block("dlq-redrive.md", "dlq-verify")
    _check(
        dlq_after["Attributes"]["ApproximateNumberOfMessages"] == "0",
        f"DLQ still holds {dlq_after}",
    )
    return (
        f"1 message redriven from the DLQ to the work queue and decided: {decision['action']}"
        f" (decision {decision['decision_id'][:8]})"
    )


def drill_key(shell: Shell, stack: Stack) -> str:
    old = stack.api_key
    _check(
        _post(stack, old, "DRILLKEYA").status == 202,
        "the current key is not accepted before rotation",
    )
    shell.run_block("rotate-api-key.md", "key-inspect")
    shell.run_block("rotate-api-key.md", "key-rotate")
    new = shell.variables["NEW_KEY"]
    _check(len(new) == 40 and new.isalnum(), "the new key is not 40 letters and digits")
    time.sleep(SECRET_MAX_AGE + 1.5)
    kept, accepted = _post(stack, old, "DRILLKEYB").status, _post(stack, new, "DRILLKEYC").status
    _check(
        (kept, accepted) == (202, 202),
        f"after rotation, in the grace period: old key {kept}, new key {accepted}",
    )
    shell.run_block("rotate-api-key.md", "key-rollback")
    shell.run_block("rotate-api-key.md", "key-revoke")
    time.sleep(SECRET_MAX_AGE + 1.5)
    restored, dropped = _post(stack, old, "DRILLKEYD").status, _post(stack, new, "DRILLKEYE").status
    _check(
        (restored, dropped) == (202, 401),
        f"after rollback and revoke: old key {restored}, new key {dropped}",
    )
    return (
        "rotated: old and new key 202 in the grace period; rolled back and revoked: "
        "old 202, new 401"
    )


def drill_flush(shell: Shell, stack: Stack) -> str:
    symbol = "DRILLCACHE"
    first = _post(stack, stack.api_key, symbol, timeframe="D")
    _check(first.status == 202, f"alert not accepted: {first}")
    _decision(stack, symbol, first.body["signal_id"])
    last = _post(stack, stack.api_key, symbol, timeframe="240")
    _check(last.status == 202, f"alert not accepted: {last}")
    before = _decision(stack, symbol, last.body["signal_id"])
    cache = redis.Redis(port=stack.redis_port)
    signal_keys = f"kyperian:signal:{symbol}:*"
    _check(bool(cache.exists(f"kyperian:decision:{symbol}")), "the decision was not cached")
    _check(len(list(cache.scan_iter(signal_keys))) >= 2, "the signals were not cached")
    _check(bool(list(cache.scan_iter("kyperian:processed:*"))), "no processed markers cached")
    cache.set("other-app:drill", "kept")
    ensure_ecs(shell)
    (network,) = shell.run_block("invalidate-cache.md", "flush-network")
    _check(bool(network["awsvpcConfiguration"]["subnets"]), f"no network copied: {network}")
    shell.run_block("invalidate-cache.md", "flush-cache")
    (result, _arn) = shell.outputs
    _check(result["deleted"] == result["matched"] > 0, f"not every matched key deleted: {result}")
    _check(result["refilled_signals"] >= 2, f"signals not refilled: {result}")
    _check(not cache.exists(f"kyperian:decision:{symbol}"), "the cached decision survived")
    _check(not list(cache.scan_iter("kyperian:processed:*")), "processed markers survived")
    _check(len(list(cache.scan_iter(signal_keys))) >= 2, "the symbol's signals were not refilled")
    _check(cache.get("other-app:drill") == b"kept", "a key outside kyperian:* was deleted")
    cache.delete("other-app:drill")
    served = request("GET", f"{stack.engine}/decisions/{symbol}", bearer=stack.engine_token)
    _check(
        served.ok and served.body.get("decision_id") == before["decision_id"],
        f"decision not served: {served}",
    )
    return (
        f"deleted {result['deleted']} kyperian:* keys, refilled {result['refilled_signals']} "
        f"signals of {result['symbols']} symbol(s); decision still served from the table"
    )


def drill_restore(shell: Shell, stack: Stack) -> str:
    """The page's steps in Python (its jq/comm/split shell is not drillable), on a scratch copy."""
    source = f"kyperian-{ENVIRONMENT}-decisions"
    drill = RestoreDrill(shell.client("dynamodb"), source, emulated=True, say=shell.say)
    try:
        report = drill.run()
    except RestoreFailed as exc:
        raise DrillFailed(str(exc)) from exc
    for line in report.lines():
        shell.say(line)
    shell.notes += report.notes
    return (
        f"{report.items_at_restore_time} items at T back after {report.put_back} put back and "
        f"{report.deleted} deleted; steps 1-4 {report.drilled_seconds:.2f} s (budget 50 min)"
    )


DRILLS: Final[dict[str, tuple[str, Callable[[Shell, Stack], str]]]] = {
    "scale-ecs": ("scale-ecs.md", drill_scale),
    "dlq-redrive": ("dlq-redrive.md", drill_dlq),
    "rotate-api-key": ("rotate-api-key.md", drill_key),
    "invalidate-cache": ("invalidate-cache.md", drill_flush),
    "restore-point-in-time": ("restore-point-in-time.md", drill_restore),
}


# --- the stack ----------------------------------------------------------------------------------


@contextmanager
def local_stack(say: Callable[[str], None]) -> Iterator[Stack]:
    """``kyperian up`` in a subprocess on free ports; stopped with Ctrl-C (SIGINT) at the end."""
    log_dir = Path(tempfile.mkdtemp(prefix="kyperian-drill-"))
    say(f"starting the local stack (logs in {log_dir})")
    with running_stack(secrets.token_urlsafe(30), log_dir) as running:
        yield Stack(
            aws_endpoint=running.aws_endpoint,
            gateway=running.gateway,
            engine=running.engine,
            redis_port=running.redis_port,
            api_key=running.api_key,
            engine_token=running.engine_token,
        )
    say("local stack stopped")


# --- command line -------------------------------------------------------------------------------


def run_drills(stack: Stack, names: list[str], say: Callable[[str], None]) -> bool:
    results: list[tuple[str, bool, str]] = []
    for name in names:
        page, drill = DRILLS[name]
        shell = Shell(stack, say)
        say(f"drill {name} (runbooks/{page})")
        try:
            detail = drill(shell, stack)
            passed = True
        except DrillFailed as exc:
            detail, passed = str(exc), False
        except Exception as exc:  # any failure is this drill's: report it, go on to the next
            detail, passed = f"{type(exc).__name__}: {exc}", False
        finally:
            shutil.rmtree(shell.workdir, ignore_errors=True)
        for note in shell.notes:
            say(f"    note: {note}")
        results.append((name, passed, detail))
        say(f"  {'PASS' if passed else 'FAIL'}  {detail}")
    say("")
    for name, passed, detail in results:
        say(f"drill {name:<22} {'PASS' if passed else 'FAIL'}  {detail}")
    failed = sum(not passed for _, passed, _ in results)
    say(f"drills: {len(results) - failed} passed, {failed} failed")
    return failed == 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The drill's options, for ``kyperian ops drill``."""
    parser.add_argument("--only", help=f"comma-separated drills (default all: {', '.join(DRILLS)})")
    parser.add_argument("--attach", action="store_true", help="use a running stack (kyperian up)")
    parser.add_argument("--aws-endpoint", default="http://127.0.0.1:4566")
    parser.add_argument("--gateway", default="http://127.0.0.1:8080")
    parser.add_argument("--engine", default="http://127.0.0.1:8000")
    parser.add_argument("--redis-port", type=int, help="the stack's redis-server port (its banner)")
    parser.add_argument("--api-key", help="the stack's webhook key (default: KYPERIAN_API_KEY)")


def run(args: argparse.Namespace) -> int:
    """Run the drills ``args`` name; 0 when every one passed, 1 when one failed, 2 on misuse."""
    names = args.only.split(",") if args.only else list(DRILLS)
    unknown = [n for n in names if n not in DRILLS]
    if unknown:
        print(f"drill: unknown drill(s) {unknown}; known: {list(DRILLS)}", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, flush=True)

    if args.attach:
        key = args.api_key or os.environ.get("KYPERIAN_API_KEY")
        if not key or args.redis_port is None:
            print(
                "drill: --attach needs --redis-port and --api-key (or KYPERIAN_API_KEY)",
                file=sys.stderr,
            )
            return 2
        stack = Stack(
            args.aws_endpoint, args.gateway, args.engine, args.redis_port, key, engine_token()
        )
        return 0 if run_drills(stack, names, say) else 1
    with local_stack(say) as stack:
        ok = run_drills(stack, names, say)
    return 0 if ok else 1
