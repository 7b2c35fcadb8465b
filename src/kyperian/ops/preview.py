"""Preview: what a deploy would change, as Markdown, without changing anything.

For every stack of a parameter file that exists, a change set is created with the file's
parameters (deploy-time ones keep their previous value), described, and deleted; a stack that
does not exist yet is listed with the resources it would create. The Markdown names each
addition, modification and removal, and for each replacement the properties that cause it, so
a reviewer sees "the Signals table is replaced" before merging, not after. Change sets are
named ``preview-*`` (the plan-only role may create and delete only those) and are deleted even
when describing them fails.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from kyperian.ops.deploy import describe_stack
from kyperian.ops.parameters import DEPLOY_TIME, FIXED_REGION, TEMPLATES, ParameterFile, template
from kyperian.ops.preflight import ClientFactory

MAX_TEMPLATE_BODY: Final = 51_200
NO_CHANGES: Final = ("didn't contain changes", "No updates are to be performed")
CAPABILITIES: Final = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"]
#: Stacks a pipeline never deploys (an administrator's), so never previewed by default.
SKIPPED: Final = frozenset({"cicd"})


@dataclass
class StackPreview:
    """What one stack would do: ``new``, ``changes``, ``unchanged`` or ``error``."""

    stack: str
    region: str
    status: str
    changes: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""

    @property
    def replacements(self) -> int:
        return sum(1 for c in self.changes if c.get("Replacement") in ("True", "Conditional"))


@dataclass
class Preview:
    """Change sets for every stack of ``file`` in ``region``, described and deleted.

    Parameters
    ----------
    role_arn:
        The CloudFormation execution role the change sets run with (it resolves the SSM
        parameters and dynamic references); None uses the caller's permissions.
    """

    file: ParameterFile
    region: str
    clients: ClientFactory
    role_arn: str | None = None
    templates: Path = TEMPLATES
    change_set_name: str = field(
        default_factory=lambda: "preview-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    )
    poll_seconds: float = 2.0
    timeout_seconds: float = 300.0
    sleep: Callable[[float], None] = time.sleep

    def run(self) -> list[StackPreview]:
        return [
            self.stack(stack)
            for stack in self.file.stacks
            if stack not in SKIPPED and (self.templates / f"{stack}.yaml").is_file()
        ]

    def stack(self, stack: str) -> StackPreview:
        name = f"kyperian-{self.file.environment}-{stack}"
        region = FIXED_REGION.get(stack, self.region)
        cfn = self.clients("cloudformation", region)
        try:
            exists = self._exists(cfn, name)
            if not exists:
                resources = template(stack, self.templates).get("Resources", {})
                changes = [
                    {"Action": "Add", "LogicalResourceId": k, "ResourceType": v.get("Type", "")}
                    for k, v in resources.items()
                ]
                return StackPreview(name, region, "new", changes)
            return self._change_set(cfn, stack, name, region)
        except ClientError as exc:
            return StackPreview(name, region, "error", detail=str(exc))

    def _exists(self, cfn: Any, name: str) -> bool:
        stack = describe_stack(cfn, name)
        return stack is not None and stack["StackStatus"] != "REVIEW_IN_PROGRESS"

    def _change_set(self, cfn: Any, stack: str, name: str, region: str) -> StackPreview:
        request: dict[str, Any] = {
            "StackName": name,
            "ChangeSetName": self.change_set_name,
            "ChangeSetType": "UPDATE",
            "Parameters": self._parameters(stack),
            "Capabilities": CAPABILITIES,
            "TemplateBody": self._body(stack),
            "Description": "kyperian deploy preview (deleted after)",
        }
        if self.role_arn:
            request["RoleARN"] = self.role_arn
        try:
            created = cfn.create_change_set(**request)
        except ClientError as exc:
            if any(marker in str(exc) for marker in NO_CHANGES):
                return StackPreview(name, region, "unchanged")
            raise
        try:
            described = self._wait(cfn, created["Id"])
            if described["Status"] == "FAILED":
                reason = described.get("StatusReason", "")
                if any(marker in reason for marker in NO_CHANGES):
                    return StackPreview(name, region, "unchanged")
                return StackPreview(name, region, "error", detail=reason)
            return StackPreview(name, region, "changes", self._changes(cfn, created["Id"]))
        finally:
            cfn.delete_change_set(ChangeSetName=created["Id"])

    def _parameters(self, stack: str) -> list[dict[str, Any]]:
        declared = template(stack, self.templates).get("Parameters", {})
        given = self.file.stacks.get(stack, {})
        parameters: list[dict[str, Any]] = []
        for key in declared:
            if key in given:
                parameters.append({"ParameterKey": key, "ParameterValue": given[key]})
            elif key in DEPLOY_TIME.get(stack, set()):
                parameters.append({"ParameterKey": key, "UsePreviousValue": True})
        return parameters

    def _body(self, stack: str) -> str:
        body = (self.templates / f"{stack}.yaml").read_text(encoding="utf-8")
        if len(body.encode()) <= MAX_TEMPLATE_BODY:
            return body
        return json.dumps(template(stack, self.templates), separators=(",", ":"))

    def _wait(self, cfn: Any, change_set: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            described: dict[str, Any] = cfn.describe_change_set(ChangeSetName=change_set)
            if described["Status"] in ("CREATE_COMPLETE", "FAILED"):
                return described
            if time.monotonic() > deadline:
                return {"Status": "FAILED", "StatusReason": "timed out waiting for the change set"}
            self.sleep(self.poll_seconds)

    def _changes(self, cfn: Any, change_set: str) -> list[dict[str, Any]]:
        changes: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            page = cfn.describe_change_set(
                ChangeSetName=change_set, **({"NextToken": token} if token else {})
            )
            changes += [
                c["ResourceChange"] for c in page.get("Changes", []) if "ResourceChange" in c
            ]
            token = page.get("NextToken")
            if not token:
                return changes


def _because(change: dict[str, Any]) -> str:
    """Why a resource changes: the properties (and whether each forces a replacement)."""
    reasons = []
    for detail in change.get("Details", []):
        target = detail.get("Target", {})
        name = target.get("Name") or target.get("Attribute", "")
        recreation = target.get("RequiresRecreation", "Never")
        cause = detail.get("CausingEntity") or detail.get("ChangeSource", "")
        text = f"`{name}`" + (f" (recreation: {recreation})" if recreation != "Never" else "")
        reasons.append(text + (f" via {cause}" if cause else ""))
    return ", ".join(dict.fromkeys(reasons)) or "-"


def markdown(file: ParameterFile, region: str, previews: list[StackPreview]) -> str:
    """The preview as a Markdown comment: a summary table, then each stack's changes."""
    lines = [
        f"## Deploy preview: {file.environment} ({region}, `{file.name}.json`)",
        "",
        "| stack | region | result |",
        "|---|---|---|",
    ]
    for p in previews:
        result = {
            "new": f"new stack, {len(p.changes)} resources",
            "unchanged": "no changes",
            "error": f"**could not preview**: {p.detail}",
            "changes": f"{len(p.changes)} changes"
            + (f", **{p.replacements} replacement(s)**" if p.replacements else ""),
        }[p.status]
        lines.append(f"| `{p.stack}` | {p.region} | {result} |")
    for p in previews:
        if p.status != "changes":
            continue
        lines += [
            "",
            f"### `{p.stack}`",
            "",
            "| action | resource | type | replacement | because |",
            "|---|---|---|---|---|",
        ]
        for c in p.changes:
            replacement = c.get("Replacement", "")
            if replacement in ("True", "Conditional"):
                replacement = f"**{replacement}**"
            lines.append(
                f"| {c.get('Action', '')} | `{c.get('LogicalResourceId', '')}` | "
                f"{c.get('ResourceType', '')} | {replacement or '-'} | {_because(c)} |"
            )
    lines += [
        "",
        "Change sets were created with the file's parameters and deleted; nothing was deployed.",
    ]
    return "\n".join(lines) + "\n"
