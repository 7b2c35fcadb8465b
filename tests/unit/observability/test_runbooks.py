"""Runbooks: one page per alarm and per operation, and every command in them really exists.

Pages and alarms match one to one (page ``<slug>.md`` for alarm ``kyperian-<env>-<slug>``,
whose ``AlarmDescription`` links it). Every ``aws ...`` command is checked against botocore's
service models (the ones the AWS CLI is generated from): the service, the operation (or the
waiter of ``aws <service> wait``), each option (a member of the operation's input shape, a
global CLI option, or a pagination option), the required options, enum values; ``logs tail``
is the one allow-listed CLI customization. Resource names in the commands are those the
templates create, for every environment. Dashboard widgets the pages name exist, and the
``deploy.py`` and admin commands they give parse with those programs' own parsers.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Final

import jmespath  # type: ignore[import-untyped]  # no stubs; compile() only
import pytest

from kyperian.cli import main
from kyperian.engine import admin
from kyperian.ops import deploy
from kyperian.ops.runbooks import (
    CUSTOMIZATIONS,
    AwsCommand,
    Command,
    check,
    expand_command,
    page_commands,
    problems,
    runbook_pages,
    split_aws,
)
from tests.unit.infra.cfn import load_parameter_file
from tests.unit.observability.support import (
    DASHBOARDS,
    ENVIRONMENTS,
    Catalog,
    alarms,
    catalog,
    runbook_dir,
    widget_titles,
)

OPERATIONS: Final = {
    "scale-ecs",
    "invalidate-cache",
    "check-logs",
    "region-failover",
    "dlq-redrive",
    "rotate-api-key",
    "rollback-deployment",
    "restore-point-in-time",
}
"""The specification's operations and the ones on-call asked for; every other page is an alarm's."""
SECTIONS: Final = ("Meaning", "Impact", "Diagnosis", "Mitigation", "Verification", "Escalation")
ALARM_SECTIONS: Final = (*SECTIONS[:5], "Recent changes", "Escalation")
REGIONS: Final = {"us-east-1", "us-west-2"}


def slug(alarm_name: str, environment: str) -> str:
    return alarm_name.removeprefix(f"kyperian-{environment}-")


def page_text(name: str) -> str:
    return (runbook_dir() / f"{name}.md").read_text(encoding="utf-8")


def alarm_slugs(environment: str = "production") -> set[str]:
    return {slug(name, environment) for name in alarms(environment)}


def sections(text: str) -> list[str]:
    return re.findall(r"^## (.+)$", text, flags=re.MULTILINE)


# --- pages and alarms --------------------------------------------------------------------------


def test_one_page_per_alarm_and_per_operation() -> None:
    # GIVEN the alarms of monitoring.yaml and the runbook pages
    pages = {path.stem for path in runbook_pages()}
    # THEN every alarm has its page, every operation too, and there is nothing else
    assert alarm_slugs().isdisjoint(OPERATIONS)
    assert pages == alarm_slugs() | OPERATIONS
    # AND both environments name their alarms alike
    assert alarm_slugs("staging") == alarm_slugs("production")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_each_alarm_description_links_its_page(environment: str) -> None:
    # GIVEN the runbook base URL the environment's parameter file gives
    base = load_parameter_file(environment)["monitoring"]["RunbookBaseUrl"]
    for name, props in alarms(environment).items():
        # THEN the description ends with the link to <slug>.md, and that page exists
        description = props["AlarmDescription"]
        expected = f"Runbook: {base}/{slug(name, environment)}.md"
        assert description.rstrip().endswith(expected), name
        assert (runbook_dir() / f"{slug(name, environment)}.md").is_file(), name
        assert base.endswith("/runbooks")


@pytest.mark.parametrize("name", sorted(alarm_slugs()))
def test_alarm_pages_are_named_as_the_alarm_with_every_section(name: str) -> None:
    text = page_text(name)
    # THEN the title is the alarm's name, and the sections on-call reads are all there, in order
    assert text.splitlines()[0] == f"# kyperian-<env>-{name}"
    found = sections(text)
    assert [s for s in found if s in ALARM_SECTIONS] == [s for s in ALARM_SECTIONS if s in found]
    assert set(ALARM_SECTIONS) <= set(found), set(ALARM_SECTIONS) - set(found)
    # AND the header says when it fires, why that threshold, and how serious it is
    for row in ("| Fires when |", "| Why this threshold |", "| Severity |", "| Rollback trigger |"):
        assert row in text, row


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_operation_pages_have_every_section(name: str) -> None:
    found = sections(page_text(name))
    assert set(SECTIONS) <= set(found), set(SECTIONS) - set(found)


def test_the_index_lists_every_page() -> None:
    index = (runbook_dir() / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([a-z0-9-]+)\.md\)", index))
    assert linked == {path.stem for path in runbook_pages()}


# --- commands ----------------------------------------------------------------------------------


def all_commands() -> list[Command]:
    found: list[Command] = []
    for path in runbook_pages():
        found += page_commands(path)
    return found


def aws_commands(environment: str) -> list[tuple[AwsCommand, set[str]]]:
    """Each aws command with ENV and AWS_REGION filled, and which variables it used."""
    result = []
    for command in all_commands():
        if not command.is_aws:
            continue
        text = " ".join(command.argv)
        used = {v for v in ("ENV", "AWS_REGION") if f"${{{v}}}" in text or f"${v}" in text}
        filled = expand_command(
            command, {"ENV": environment, "AWS_REGION": "us-east-1"}, strict=False
        )
        result.append((split_aws(filled), used))
    return result


def test_the_runbooks_hold_the_specifications_operations() -> None:
    # GIVEN every aws command of the runbooks
    calls = {(a.service, a.operation, a.waiter) for a, _ in aws_commands("production")}
    # THEN the specification's operations are there, with commands that really exist
    assert ("ecs", "update-service", None) in calls  # scale
    assert ("ecs", "run-task", None) in calls  # invalidate the cache (admin command)
    assert ("logs", "tail", None) in calls  # check logs
    assert ("logs", "start-query", None) in calls
    assert ("sqs", "start-message-move-task", None) in calls  # DLQ redrive
    assert ("secretsmanager", "put-secret-value", None) in calls  # key rotation
    assert ("ecs", "stop-service-deployment", None) in calls  # rollback
    # AND never the one that does not exist
    assert ("elasticache", "create-replication-group-message", None) not in calls


def test_every_aws_command_exists_with_its_options() -> None:
    # GIVEN every aws command of every runbook
    commands = aws_commands("production")
    assert len(commands) > 50
    # THEN botocore knows each service, operation or waiter, option and enum value
    found = [p for aws, _ in commands for p in problems(aws)]
    assert found == []
    # AND `kyperian ops runbooks check` finds the same (nothing), and says so with exit 0
    assert check() == []
    assert main(["ops", "runbooks", "check"]) == 0


def test_the_runbook_check_reports_a_bad_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a page with a made-up option and a --query that does not parse
    page = tmp_path / "bad.md"
    page.write_text(
        "```bash\n"
        "aws ecs update-service --cluster x --service y --desired-counts 5\n"
        "aws ecs describe-services --cluster x --services y --query 'services[0].{a: b'\n"
        "```\n",
        encoding="utf-8",
    )
    # WHEN the command checks it
    code = main(["ops", "runbooks", "check", str(page)])
    # THEN it fails, naming the page, line and what is wrong with each command
    out = capsys.readouterr().out
    assert code == 1
    assert "bad.md:2: aws ecs update-service: unknown option --desired-counts" in out
    assert "bad.md:3: aws ecs describe-services: --query" in out
    # AND a block the shell parser cannot read is reported, not a crash
    page.write_text("```bash\necho 'unclosed\n```\n", encoding="utf-8")
    assert main(["ops", "runbooks", "check", str(page)]) == 1
    assert "bad.md: a shell block does not parse: No closing quotation" in capsys.readouterr().out


def test_every_query_is_valid_jmespath() -> None:
    # GIVEN every --query of the runbooks: THEN the CLI can compile it (a typo fails, not filters)
    queries = [
        a.globals["--query"] for a, _ in aws_commands("production") if "--query" in a.globals
    ]
    assert queries
    for query in queries:
        jmespath.compile(query)
    with pytest.raises(jmespath.exceptions.ParseError):
        jmespath.compile("services[0].{desired: desiredCount")


def test_customizations_are_allow_listed_with_a_reason() -> None:
    for key, custom in CUSTOMIZATIONS.items():
        assert len(custom.reason.split()) >= 5, key


def _parse(text: str) -> AwsCommand:
    tmp = Command("t.md", 1, tuple(text.split()))
    return split_aws(tmp)


@pytest.mark.parametrize(
    "text",
    [
        "aws elasticache create-replication-group-message --replication-group-id x",
        "aws ecs update-service --cluster x --service y --desired-counts 5",
        "aws ecs update-service --cluster x --desired-count 5",
        "aws sqs get-queue-attributes --queue-url u --attribute-names QueueArns",
        "aws logs tail /g --follw",
        "aws ecs wait task-stopped --cluster x --tasks t",
        "aws ecss describe-clusters",
    ],
)
def test_a_wrong_command_is_reported(text: str) -> None:
    # GIVEN a command with a made-up operation, option, value or service: THEN it is reported
    assert problems(_parse(text))


# --- resource names ----------------------------------------------------------------------------

NameCheck = Callable[[Catalog, str], bool]

RESOURCE_OPTIONS: Final[dict[str, NameCheck]] = {
    "--cluster": lambda c, v: v in c.clusters,
    "--service": lambda c, v: v in c.services,
    "--services": lambda c, v: v in c.services,
    "--service-name": lambda c, v: v in c.services,
    "--task-definition": lambda c, v: v.split(":")[0] in c.task_families,
    "--log-group-name": lambda c, v: v in c.log_groups,
    "--log-group-names": lambda c, v: v in c.log_groups,
    "--queue-name": lambda c, v: v in c.queues,
    "--function-name": lambda c, v: v in c.functions,
    "--table-name": lambda c, v: v in c.tables,
    "--replication-group-id": lambda c, v: v in c.caches,
    "--cache-cluster-id": lambda c, v: v in c.cache_nodes,
    "--secret-id": lambda c, v: v in c.secrets,
    "--alarm-names": lambda c, v: v in c.alarms,
    "--alarm-name": lambda c, v: v in c.alarms,
    "--alarm-name-prefix": lambda c, v: any(a.startswith(v) for a in c.alarms),
    "--repository-name": lambda c, v: v in c.repositories,
    "--stack-name": lambda c, v: v in c.stacks,
    "--resource-id": lambda c, v: v in c.scalable_targets,
    "--resource-ids": lambda c, v: v in c.scalable_targets,
    "--topic-arn": lambda c, v: v.rsplit(":", 1)[-1] in c.topics,
    "--dashboard-name": lambda c, v: v in c.dashboards,
    "--region": lambda c, v: v in REGIONS,
}
"""Options that name a resource, and how to tell it is one the templates create."""
PARAMETER_NAMES: Final[dict[tuple[str, str], NameCheck]] = {
    ("ssm", "get-parameter"): lambda c, v: v in c.ssm_parameters,
}


def name_problems(aws: AwsCommand, used: set[str], environment: str) -> list[str]:
    """Resource names of a command that no template creates for ``environment``."""
    # A name written with ${ENV} must exist in this environment; a literal one in some environment.
    catalogs = [catalog(environment)] if "ENV" in used else [catalog(e) for e in ENVIRONMENTS]
    checks: list[tuple[str, str, NameCheck]] = []
    for option, values in aws.options.items():
        check = RESOURCE_OPTIONS.get(option) or (
            PARAMETER_NAMES.get((aws.service, aws.operation)) if option == "--name" else None
        )
        if check is not None:
            checks += [(option, value, check) for value in values]
    region = aws.globals.get("--region")
    if region:
        checks.append(("--region", region, RESOURCE_OPTIONS["--region"]))
    if (aws.service, aws.operation) == ("logs", "tail"):
        checks += [("log group", v, RESOURCE_OPTIONS["--log-group-name"]) for v in aws.positional]
    found = []
    for option, value, check in checks:
        if "$" in value and not (option == "--topic-arn" and "$" not in value.rsplit(":", 1)[-1]):
            continue  # filled at run time ($TASK_ARN ...)
        if not any(check(c, value) for c in catalogs):
            found.append(f"{aws.where}: {option} {value!r} is not created by the templates")
    return found


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_resource_names_are_those_the_templates_create(environment: str) -> None:
    # GIVEN every aws command, with ENV set to the environment
    found = [
        p for aws, used in aws_commands(environment) for p in name_problems(aws, used, environment)
    ]
    # THEN every cluster, service, queue, log group, secret... it names exists there
    assert found == []


def test_a_wrong_resource_name_is_reported() -> None:
    wrong = _parse("aws ecs update-service --cluster kyperian-production --service kyperian-svc")
    assert name_problems(wrong, {"ENV"}, "production")
    staging_only = _parse("aws sqs get-queue-url --queue-name kyperian-staging-signals")
    assert name_problems(staging_only, {"ENV"}, "production")
    assert not name_problems(staging_only, set(), "production")


# --- other programs the runbooks run -----------------------------------------------------------


def _programs(program: str) -> list[Command]:
    return [c for c in all_commands() if c.argv[:4] == ("uv", "run", "python", program)]


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_deploy_script_invocations_parse(environment: str) -> None:
    # GIVEN every scripts/deploy.py command of the runbooks
    commands = _programs("scripts/deploy.py")
    assert commands
    for command in commands:
        filled = expand_command(
            command, {"ENV": environment, "AWS_REGION": "us-east-1"}, strict=False
        )
        # THEN deploy.py's own parser accepts it (an unknown option exits)
        args = deploy._parse(list(filled.argv[4:]))
        assert args.environment in ENVIRONMENTS


def _admin_invocations() -> list[list[str]]:
    """Admin commands, from run-task overrides and from the command lines."""
    invocations = []
    for command in all_commands():
        if command.is_aws:
            aws = split_aws(command)
            for value in aws.options.get("--overrides", []):
                for override in json.loads(value)["containerOverrides"]:
                    invocations.append(list(override["command"]))
        elif "kyperian.engine.admin" in command.argv:
            invocations.append(list(command.argv))
    return invocations


def test_admin_commands_parse_and_run_in_the_engine_container() -> None:
    # GIVEN every admin command the runbooks start
    invocations = _admin_invocations()
    assert {inv[3] for inv in invocations} >= {"flush-cache", "cache-report", "check"}
    for argv in invocations:
        # THEN it is `python -m kyperian.engine.admin <command>`, which the module's parser takes
        assert argv[:3] == ["python", "-m", "kyperian.engine.admin"], argv
        admin._parser().parse_args(argv[3:])


# --- dashboards --------------------------------------------------------------------------------

_WIDGET_CHAIN: Final = re.compile(
    r"(?i:dashboard)\s+`kyperian-<env>-(?P<dashboard>\w+)`\s+→\s+"
    r"(?P<chain>`[^`]+`(?:\s*(?:,|and|, and)\s+`[^`]+`)*)"
)


def widget_references(text: str) -> list[tuple[str, str]]:
    refs = []
    for match in _WIDGET_CHAIN.finditer(" ".join(text.split())):
        for title in re.findall(r"`([^`]+)`", match.group("chain")):
            refs.append((match.group("dashboard"), title))
    return refs


@pytest.mark.parametrize("path", runbook_pages(), ids=lambda p: p.stem)
def test_dashboard_widgets_a_page_names_exist(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    titles = {name: widget_titles(name) for name in DASHBOARDS}
    refs = widget_references(text)
    # THEN every widget named with "dashboard `kyperian-<env>-X` → `Title`" is on that dashboard
    assert [(d, t) for d, t in refs if t not in titles.get(d, set())] == []
    # AND no other quoted text is a near miss of a widget title (a renamed widget)
    every = set().union(*titles.values())
    quoted = set(re.findall(r"`([^`]{8,})`", " ".join(text.split()))) - every
    near = {q: difflib.get_close_matches(q, every, n=1, cutoff=0.85) for q in quoted}
    assert {q: m for q, m in near.items() if m} == {}


@pytest.mark.parametrize("name", sorted(alarm_slugs()))
def test_alarm_pages_point_at_a_dashboard_widget(name: str) -> None:
    assert widget_references(page_text(name)), name


def test_a_missing_widget_is_reported() -> None:
    text = "dashboard `kyperian-<env>-main` → `Signals per minute` and `No such widget`"
    refs = widget_references(text)
    assert ("main", "No such widget") in refs
    assert "No such widget" not in widget_titles("main")
