"""``kyperian deploy ...`` and ``kyperian ops ...``: the ops commands, registered by cli.py.

``deploy`` holds what touches an AWS environment (preflight, bootstrap, preview, drift, apply);
``ops`` the drills (runbook, restore, exactly-once, kill-switch), the runbook check and the
Lambda package. Thin: parse, build the clients on the configurable endpoint (``make_client``),
call the ops code, print, exit 0 when everything passed and 1 otherwise. The exactly-once and
kill-switch drills build whole engines, so their modules are imported only when they run.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from kyperian.adapters.aws.clients import make_client
from kyperian.ops import drill, lambda_package, restore_drill, runbooks
from kyperian.ops.bootstrap import Bootstrap, BootstrapError
from kyperian.ops.deploy import add_arguments as add_deploy_arguments
from kyperian.ops.deploy import run as run_deploy
from kyperian.ops.drift import Drift
from kyperian.ops.drift import markdown as drift_markdown
from kyperian.ops.parameters import TEMPLATES, ParameterFile, load_parameter_file, primary_of
from kyperian.ops.preflight import ClientFactory, Preflight, report
from kyperian.ops.preview import Preview, markdown
from kyperian.settings import get_settings

ENVIRONMENTS = ("staging", "production")
Runner = Callable[[argparse.Namespace], int]


def add_commands(commands: Any) -> None:
    """Add the ``deploy`` and ``ops`` groups to the ``kyperian`` parser."""
    _add_deploy(commands)
    _add_ops(commands)


def _add_deploy(commands: Any) -> None:
    deploy = commands.add_parser("deploy", help="checks and one-time setup of an AWS environment")
    steps = deploy.add_subparsers(dest="deploy_command", required=True, metavar="STEP")

    preflight = steps.add_parser(
        "preflight",
        help="check an account before any change set (read-only)",
        description="Account and region, parameter file complete, alarm subscriber (production), "
        "SSM prerequisites with their hosted zone and certificates, Lambda concurrency quota.",
    )
    _common(preflight)
    preflight.add_argument("--account", help="the account id the deploy must run in")
    preflight.set_defaults(run=_preflight)

    bootstrap = steps.add_parser(
        "bootstrap",
        help="create the prerequisites no template creates (administrators, once)",
        description="Find the hosted zone, request the ACM certificates with DNS validation in "
        "each region that needs one, and put the /kyperian/<env>/config/* SSM parameters, for "
        "the environment's parameter file and its -dr file.",
    )
    _common(bootstrap)
    bootstrap.add_argument("--zone", required=True, help="public hosted zone, e.g. kyperian.com")
    bootstrap.set_defaults(run=_bootstrap)

    _report_step(
        steps,
        "preview",
        help="print what a deploy would change, as Markdown (change sets, deleted after)",
        description="A change set per existing stack (new stacks list their resources), "
        "described as Markdown: additions, modifications, removals, replacements and why. "
        "Nothing is deployed; the change sets are deleted.",
        run=_preview,
    ).add_argument("--role-arn", help="CloudFormation execution role for the change sets")
    _report_step(
        steps,
        "drift",
        help="detect drift on every stack; exit 1 when a resource differs from its template",
        description="CloudFormation drift detection on each deployed stack of the parameter "
        "file; prints the drifted resources and properties as Markdown.",
        run=_drift,
    )

    apply = steps.add_parser(
        "apply",
        help="deploy the stacks through change sets (what scripts/deploy.py runs)",
        description="Deploy Kyperian's CloudFormation stacks with change sets, in dependency "
        "order, with rollback triggers; the same options as scripts/deploy.py.",
    )
    add_deploy_arguments(apply)
    apply.set_defaults(run=run_deploy)


def _add_ops(commands: Any) -> None:
    ops = commands.add_parser("ops", help="drills, the runbook check and the Lambda package")
    tasks = ops.add_subparsers(dest="ops_command", required=True, metavar="TASK")

    drills = tasks.add_parser(
        "drill",
        help="run the runbooks' commands against a local stack and check the outcome",
        description=(drill.__doc__ or "").split("\n\n")[0],
    )
    drill.add_arguments(drills)
    drills.set_defaults(run=drill.run)

    pages = tasks.add_parser("runbooks", help="the runbooks' own commands")
    page_tasks = pages.add_subparsers(dest="runbooks_command", required=True, metavar="TASK")
    check = page_tasks.add_parser(
        "check",
        help="check every aws command of runbooks/*.md against botocore's models",
        description="Service, operation or waiter, options, required options, enum values and "
        "--query syntax of every `aws ...` command of the runbooks; exit 1 on any problem.",
    )
    check.add_argument("pages", nargs="*", type=Path, help="default: every runbooks/*.md page")
    check.set_defaults(run=_check_runbooks)

    restore = tasks.add_parser(
        "restore-drill",
        help="drill the point-in-time restore runbook on a scratch table, step by step, timed",
        description="Copy the key schema of --table into a scratch table with recovery on, "
        "write items, take the restore time T, damage the table, restore into a new table, "
        "copy the good items back and verify the table holds exactly the items of T; print "
        "each step's duration against runbooks/restore-point-in-time.md's budget. With "
        "--endpoint-url or --emulator the endpoint is an emulator (moto), whose restore copies "
        "the table as it is: the copy of T is then taken at T, and what the emulator returns "
        "for T after the damage is reported. Without, it runs on the account (a few minutes: "
        "T must become restorable) and deletes what it created.",
    )
    restore.add_argument("--table", default="kyperian-local-decisions", help="key schema source")
    restore.add_argument("--region", default=os.environ.get("AWS_REGION") or "us-east-1")
    restore.add_argument("--endpoint-url", help="AWS endpoint, e.g. the local stack's moto")
    restore.add_argument("--emulator", action="store_true", help="the endpoint is an emulator")
    restore.add_argument("--items", type=int, default=30, help="items written before T")
    restore.add_argument("--damaged", type=int, default=5, help="items overwritten/deleted/added")
    restore.set_defaults(run=_restore_drill)

    exactly_once = tasks.add_parser(
        "exactly-once-drill",
        help="deliver alerts many times through faults; count one decision and one order each",
        description="On an emulator and a redis-server, deliver each scenario's alert three "
        "times (Redis up, down, flushed; two engine processes at once; a crash before and "
        "after the venue call), then count from the tables and the venue: one decision and "
        "one order per signal, nothing actionable untraded, no exposure over the cap.",
    )
    exactly_once.set_defaults(run=_exactly_once_drill)
    kill_switch = tasks.add_parser(
        "kill-switch-drill",
        help="halt from the CLI while another engine process trades; flatten; resume; count",
        description="On an emulator and a redis-server, engine B (another process) trades "
        "while `kyperian halt --flatten` then `kyperian resume` run against engine A; count "
        "from the ledger and the venue how soon B saw the halt, orders while halted (0), "
        "flattening orders and their fills, and orders after the resume.",
    )
    kill_switch.set_defaults(run=_kill_switch_drill)

    package = tasks.add_parser(
        "package-lambda",
        help="build build/lambda.zip reproducibly from the lock file (what make package runs)",
        description=(lambda_package.__doc__ or "").split("\n\n")[0],
    )
    lambda_package.add_arguments(package)
    package.set_defaults(run=lambda_package.run)


def _exactly_once_drill(args: argparse.Namespace) -> int:
    from kyperian.ops import exactly_once_drill  # noqa: PLC0415 - builds engines: load when run

    return exactly_once_drill.main(args)


def _kill_switch_drill(args: argparse.Namespace) -> int:
    from kyperian.ops import kill_switch_drill  # noqa: PLC0415 - builds engines: load when run

    return kill_switch_drill.main(args)


def _restore_drill(args: argparse.Namespace) -> int:
    dynamodb = client_factory(args.endpoint_url)("dynamodb", args.region)
    try:
        drill = restore_drill.RestoreDrill(
            dynamodb,
            args.table,
            emulated=args.emulator or args.endpoint_url is not None,
            items=args.items,
            damaged=args.damaged,
            say=print,
        )
    except ValueError as exc:
        print(f"kyperian ops restore-drill: {exc}", file=sys.stderr)
        return 2
    try:
        report = drill.run()
    except restore_drill.DrillFailed as exc:
        print(f"restore drill FAILED: {exc}")
        return 1
    print("\n".join([*report.lines(), *(f"  note: {note}" for note in report.notes)]))
    print("restore drill PASSED")
    return 0


def _check_runbooks(args: argparse.Namespace) -> int:
    found = runbooks.check(args.pages or None)
    pages = args.pages or runbooks.runbook_pages()
    print(
        "\n".join(found) if found else f"runbooks: every aws command of {len(pages)} pages is valid"
    )
    return 1 if found else 0


def _common(command: argparse.ArgumentParser) -> None:
    command.add_argument("--environment", "-e", required=True, choices=ENVIRONMENTS)
    command.add_argument("--region", help="default: the parameter file's region, else AWS_REGION")
    command.add_argument(
        "--parameters", type=Path, help="default cloudformation/parameters/<env>.json"
    )
    command.add_argument("--endpoint-url", help="AWS endpoint, e.g. a moto server")


def client_factory(endpoint_url: str | None) -> ClientFactory:
    settings = get_settings()

    def build(service: str, region: str) -> Any:
        update = {"aws_region": region, "aws_endpoint_url": endpoint_url}
        return make_client(service, settings.model_copy(update=update))

    return build


def _file(args: argparse.Namespace) -> tuple[ParameterFile, str]:
    path = args.parameters or TEMPLATES / "parameters" / f"{args.environment}.json"
    file = load_parameter_file(path)
    if file.environment != args.environment:
        raise ValueError(f"{path.name} is not a {args.environment} parameter file")
    region = args.region or file.region() or os.environ.get("AWS_REGION")
    if not region:
        raise ValueError("no region: pass --region or set AWS_REGION")
    return file, region


def _loaded(args: argparse.Namespace) -> tuple[ParameterFile, str] | None:
    """The parameter file and region of ``args``; None (said on stderr) when unusable."""
    try:
        return _file(args)
    except (OSError, ValueError) as exc:
        _unusable(args, exc)
        return None


def _unusable(args: argparse.Namespace, exc: Exception) -> int:
    print(f"kyperian deploy {args.deploy_command}: {exc}", file=sys.stderr)
    return 1


def _preflight(args: argparse.Namespace) -> int:
    try:
        file, region = _file(args)
        primary = primary_of(args.parameters) if args.parameters else None
    except (OSError, ValueError) as exc:
        return _unusable(args, exc)
    check = Preflight(file, region, client_factory(args.endpoint_url), args.account, primary)
    findings = check.run()
    print(report(findings))
    failed = [f for f in findings if not f.ok]
    print(f"preflight: {len(findings) - len(failed)} ok, {len(failed)} failed")
    return 0 if not failed else 1


def _bootstrap(args: argparse.Namespace) -> int:
    try:
        file, region = _file(args)
        files = [(file, region)]
        dr_path = TEMPLATES / "parameters" / f"{args.environment}-dr.json"
        if args.parameters is None and dr_path.is_file():
            dr_file = load_parameter_file(dr_path)
            files.append((dr_file, dr_file.region() or region))
        actions = Bootstrap(files, args.zone, client_factory(args.endpoint_url)).run()
    except (OSError, ValueError, BootstrapError, ClientError, BotoCoreError) as exc:
        print(f"kyperian deploy bootstrap: {exc}", file=sys.stderr)
        return 1
    print("\n".join(actions))
    print("bootstrap: done; certificates are usable once ACM shows them ISSUED (preflight checks)")
    return 0


def _report_step(
    steps: Any, name: str, *, help: str, description: str, run: Runner
) -> argparse.ArgumentParser:
    """A read-only step that prints a Markdown report and may also write it to a file."""
    step: argparse.ArgumentParser = steps.add_parser(name, help=help, description=description)
    _common(step)
    step.add_argument("--output", type=Path, help="also write the Markdown to this file")
    step.set_defaults(run=run)
    return step


def _publish(args: argparse.Namespace, text: str, *, failed: bool) -> int:
    """Print the report (and write it to ``--output``); 1 when ``failed``."""
    print(text, end="")
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    return 1 if failed else 0


def _preview(args: argparse.Namespace) -> int:
    if (loaded := _loaded(args)) is None:
        return 1
    file, region = loaded
    previews = Preview(file, region, client_factory(args.endpoint_url), args.role_arn).run()
    failed = any(p.status == "error" for p in previews)
    return _publish(args, markdown(file, region, previews), failed=failed)


def _drift(args: argparse.Namespace) -> int:
    if (loaded := _loaded(args)) is None:
        return 1
    file, region = loaded
    drifts = Drift(file, region, client_factory(args.endpoint_url)).run()
    failed = any(d.status in ("DRIFTED", "FAILED") for d in drifts)
    return _publish(args, drift_markdown(file, drifts), failed=failed)
