"""Drift: which stack resources no longer match their templates (someone changed them by hand).

``Drift.run`` starts CloudFormation drift detection on every stack of a parameter file that
exists, waits for each, and collects the resources reported MODIFIED or DELETED with the
properties that differ. The deploy workflow's schedule runs it and fails with the differences,
so a console edit is found within a day instead of at the next deploy (which would undo it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from botocore.exceptions import ClientError

from kyperian.ops.parameters import FIXED_REGION, ParameterFile
from kyperian.ops.preflight import ClientFactory

DRIFTED: Final = ["MODIFIED", "DELETED"]


@dataclass
class StackDrift:
    """One stack: ``IN_SYNC``, ``DRIFTED``, ``MISSING`` (not deployed) or ``FAILED``."""

    stack: str
    region: str
    status: str
    resources: list[dict[str, Any]] = field(default_factory=list)
    detail: str = ""


@dataclass
class Drift:
    file: ParameterFile
    region: str
    clients: ClientFactory
    poll_seconds: float = 5.0
    timeout_seconds: float = 900.0
    sleep: Callable[[float], None] = time.sleep

    def run(self) -> list[StackDrift]:
        return [self.stack(stack) for stack in self.file.stacks]

    def stack(self, stack: str) -> StackDrift:
        name = f"kyperian-{self.file.environment}-{stack}"
        region = FIXED_REGION.get(stack, self.region)
        cfn = self.clients("cloudformation", region)
        try:
            detection = cfn.detect_stack_drift(StackName=name)["StackDriftDetectionId"]
        except ClientError as exc:
            if "does not exist" in str(exc):
                return StackDrift(name, region, "MISSING")
            return StackDrift(name, region, "FAILED", detail=str(exc))
        status = self._wait(cfn, detection)
        if status.get("DetectionStatus") == "DETECTION_FAILED" and not status.get(
            "StackDriftStatus"
        ):
            return StackDrift(
                name, region, "FAILED", detail=status.get("DetectionStatusReason", "")
            )
        if status.get("StackDriftStatus") != "DRIFTED":
            return StackDrift(name, region, "IN_SYNC")
        drifts = cfn.describe_stack_resource_drifts(
            StackName=name, StackResourceDriftStatusFilters=DRIFTED
        )["StackResourceDrifts"]
        return StackDrift(name, region, "DRIFTED", drifts)

    def _wait(self, cfn: Any, detection: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            status: dict[str, Any] = cfn.describe_stack_drift_detection_status(
                StackDriftDetectionId=detection
            )
            if status["DetectionStatus"] != "DETECTION_IN_PROGRESS":
                return status
            if time.monotonic() > deadline:
                return {"DetectionStatus": "DETECTION_FAILED", "DetectionStatusReason": "timed out"}
            self.sleep(self.poll_seconds)


def markdown(file: ParameterFile, drifts: list[StackDrift]) -> str:
    """The drift report: one line per stack, then each drifted resource and property."""
    lines = [f"## Drift: {file.environment} (`{file.name}.json`)", "", "| stack | region | drift |"]
    lines.append("|---|---|---|")
    for d in drifts:
        lines.append(
            f"| `{d.stack}` | {d.region} | {d.status}{': ' + d.detail if d.detail else ''} |"
        )
    for d in drifts:
        if d.status != "DRIFTED":
            continue
        lines += [
            "",
            f"### `{d.stack}`",
            "",
            "| resource | type | drift | property | expected | actual |",
        ]
        lines.append("|---|---|---|---|---|---|")
        for r in d.resources:
            differences = r.get("PropertyDifferences") or [{}]
            for diff in differences:
                lines.append(
                    f"| `{r.get('LogicalResourceId', '')}` | {r.get('ResourceType', '')} | "
                    f"{r.get('StackResourceDriftStatus', '')} | {diff.get('PropertyPath', '-')} | "
                    f"`{diff.get('ExpectedValue', '')}` | `{diff.get('ActualValue', '')}` |"
                )
    lines += ["", "Fix: redeploy to restore the template, or change the template to match."]
    return "\n".join(lines) + "\n"
