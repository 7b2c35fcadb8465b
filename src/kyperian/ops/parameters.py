"""The templates and an environment's parameter file, read without calling AWS.

A parameter file (``cloudformation/parameters/<env>[-dr].json``) holds one object per stack. These
functions say what a deploy of it needs before it starts: which template parameters it leaves
out, which values are SSM parameter names an operator must have created, which region it belongs
to, whether its alarms reach anyone, and whether a DR file e-mails the trader's notices to the
same address as its primary. Pure: no AWS call, no I/O beyond reading the files.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

ROOT: Final = Path(__file__).resolve().parents[3]
TEMPLATES: Final = ROOT / "cloudformation"
SSM_TYPE: Final = "AWS::SSM::Parameter::Value<String>"
#: Parameters the deploy fills at deploy time (artifacts), so no parameter file holds them.
DEPLOY_TIME: Final = {"api": {"CodeS3Bucket", "CodeS3Key"}, "compute": {"ImageTag"}}
#: Stacks that live in one fixed region whatever the deploy's region.
FIXED_REGION: Final = {"edge": "us-east-1"}
_EMAIL: Final = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation short forms (``!Ref``, ``!Sub``...) as their long forms."""


def _tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if suffix == "Ref" else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _tag)  # type: ignore[no-untyped-call]


@cache
def template(stack: str, templates: Path = TEMPLATES) -> dict[str, Any]:
    """The parsed template ``<templates>/<stack>.yaml``."""
    body = yaml.load((templates / f"{stack}.yaml").read_text(encoding="utf-8"), _CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(body, dict):
        raise ValueError(f"{stack}.yaml is not a template")
    return body


@dataclass(frozen=True)
class ParameterFile:
    """One parameter file: its name (``production``, ``production-dr``) and stacks."""

    name: str
    stacks: dict[str, dict[str, str]]

    @property
    def environment(self) -> str:
        return self.name.removesuffix("-dr")

    @property
    def is_dr(self) -> bool:
        return self.name.endswith("-dr")

    def value(self, stack: str, key: str) -> str | None:
        return self.stacks.get(stack, {}).get(key)

    def region(self) -> str | None:
        """The region this file deploys to: the DR region for ``-dr`` files, else the primary."""
        key = "DrRegion" if self.is_dr else "PrimaryRegion"
        for stack in ("data", "cicd"):
            found = self.value(stack, key)
            if found:
                return found
        return None


def load_parameter_file(path: Path) -> ParameterFile:
    """Read ``path``; values become strings as CloudFormation wants them.

    Raises
    ------
    ValueError
        When the file is not an object of stacks, each an object of plain values.
    """
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ValueError(f"{path}: expected one object of parameters per stack")
    stacks = {stack: {k: str(v) for k, v in values.items()} for stack, values in raw.items()}
    return ParameterFile(name=path.stem, stacks=stacks)


def missing_and_unknown(file: ParameterFile, templates: Path = TEMPLATES) -> list[str]:
    """Template parameters a stack's object leaves out, and keys no template declares."""
    problems = []
    for stack, values in file.stacks.items():
        if not (templates / f"{stack}.yaml").is_file():
            problems.append(f"{stack}: no template cloudformation/{stack}.yaml")
            continue
        declared = set(template(stack, templates).get("Parameters", {}))
        expected = declared - DEPLOY_TIME.get(stack, set())
        problems += [f"{stack}.{key}: missing" for key in sorted(expected - set(values))]
        problems += [f"{stack}.{key}: not a parameter" for key in sorted(set(values) - declared)]
    return problems


def alarm_subscriber_problem(file: ParameterFile) -> str | None:
    """Why this file's alarms would reach no one (``monitoring.AlertEmail``), else None."""
    if "monitoring" not in file.stacks:
        return "no monitoring stack, so no alarm subscriber"
    email = (file.value("monitoring", "AlertEmail") or "").strip()
    if not email:
        return "monitoring.AlertEmail is empty: the alarms would page no one"
    if not _EMAIL.fullmatch(email):
        return f"monitoring.AlertEmail {email!r} is not an email address"
    return None


def primary_of(path: Path) -> ParameterFile | None:
    """The primary file beside a DR file (``production.json`` for ``production-dr.json``).

    None for a primary file, or when the DR file has no primary beside it.
    """
    if not path.stem.endswith("-dr"):
        return None
    primary = path.with_name(f"{path.stem.removesuffix('-dr')}{path.suffix}")
    return load_parameter_file(primary) if primary.is_file() else None


def notice_subscriber_problem(file: ParameterFile, primary: ParameterFile | None) -> str | None:
    """Why a DR file's e-mail notices would not reach the primary's address, else None.

    Each region's monitoring stack has its own notices topic, subscribed to that region's
    ``monitoring.NoticeEmail``: after a failover the DR engine publishes to the DR topic, so
    an address set only in the primary file would hear nothing from then on.
    """
    if not file.is_dr or primary is None:
        return None
    wanted = (primary.value("monitoring", "NoticeEmail") or "").strip()
    here = (file.value("monitoring", "NoticeEmail") or "").strip()
    if wanted.lower() == here.lower():
        return None
    if not here:
        return (
            f"monitoring.NoticeEmail is empty in {file.name}.json but {wanted!r} in "
            f"{primary.name}.json: after a failover the trader's e-mail notices would reach no "
            "one; set the same address in both"
        )
    return (
        f"monitoring.NoticeEmail is {here!r} in {file.name}.json but {wanted!r} in "
        f"{primary.name}.json: set the same address in both"
    )


@dataclass(frozen=True)
class SsmReference:
    """A template parameter whose value is read from an SSM parameter an operator created."""

    stack: str
    key: str
    name: str
    region: str


def ssm_references(
    file: ParameterFile, region: str, templates: Path = TEMPLATES
) -> list[SsmReference]:
    """Every SSM-backed parameter the file names, with the region CloudFormation reads it in."""
    found = []
    for stack, values in file.stacks.items():
        declared = template(stack, templates).get("Parameters", {})
        for key, spec in declared.items():
            if spec.get("Type") == SSM_TYPE and values.get(key):
                stack_region = FIXED_REGION.get(stack, region)
                found.append(SsmReference(stack, key, values[key], stack_region))
    return found


def reserved_concurrency(file: ParameterFile, templates: Path = TEMPLATES) -> int:
    """Lambda concurrency the file's stacks reserve: the sum over every function."""
    total = 0
    for stack, values in file.stacks.items():
        body = template(stack, templates)
        for resource in body.get("Resources", {}).values():
            if resource.get("Type") != "AWS::Lambda::Function":
                continue
            reserved = resource.get("Properties", {}).get("ReservedConcurrentExecutions")
            if isinstance(reserved, dict) and "Ref" in reserved:
                name = reserved["Ref"]
                default = body.get("Parameters", {}).get(name, {}).get("Default", 0)
                reserved = values.get(name, default)
            total += int(reserved or 0)
    return total
