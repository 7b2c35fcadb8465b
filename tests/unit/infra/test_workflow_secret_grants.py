"""The deploy workflow reads only the staging secrets the GitHub deploy role may read,
and hands the latency gate the credentials the deployment wants.

A step that reads a secret the role cannot read fails only on GitHub, at deploy time: this
test catches it here by matching every ``--secret-id`` in the workflow against the staging
deploy role's ``secretsmanager:GetSecretValue`` resources (with their ``-??????`` suffix).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

import yaml

from tests.unit.infra.cfn import REPO_ROOT, load_template

WORKFLOW = REPO_ROOT / ".github" / "workflows" / "deploy.yml"
SECRET_ID = re.compile(r"--secret-id\s+(/kyperian/\S+)")


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _readable_secret_patterns() -> list[str]:
    body = load_template("cicd").rendered("staging")
    policies = body["Resources"]["DeployRole"]["Properties"]["Policies"]
    patterns = []
    for policy in policies:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "secretsmanager:GetSecretValue" in _as_list(statement["Action"]):
                patterns += [str(r) for r in _as_list(statement["Resource"])]
    return patterns


def test_every_secret_the_deploy_workflow_reads_is_granted_to_the_staging_role() -> None:
    # GIVEN the secrets the deploy workflow reads and the staging deploy role's grants
    secret_ids = set(SECRET_ID.findall(WORKFLOW.read_text(encoding="utf-8")))
    patterns = _readable_secret_patterns()
    assert secret_ids, "the deploy workflow reads no secret: update this test"
    # WHEN each secret's ARN (with Secrets Manager's random suffix) is matched
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:{}-AbCdEf"
    refused = {
        secret_id
        for secret_id in secret_ids
        if not any(fnmatch.fnmatchcase(arn.format(secret_id), p) for p in patterns)
    }
    # THEN the role may read every one of them
    assert not refused, f"deploy role cannot read {sorted(refused)}; grants: {patterns}"


def _staging_steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps: list[dict[str, Any]] = workflow["jobs"]["staging"]["steps"]
    return steps


def test_the_latency_gate_sends_the_webhook_key_and_the_engine_token() -> None:
    # GIVEN the staging job's steps, in order
    steps = _staging_steps()
    gate = next(i for i, s in enumerate(steps) if "make loadtest" in s.get("run", ""))
    # WHEN the steps before the latency gate are read
    exported = {
        variable
        for step in steps[:gate]
        if SECRET_ID.search(step.get("run", ""))
        for variable in re.findall(
            r'echo "(KYPERIAN_[A-Z_]+)=\$\w+" >> "\$GITHUB_ENV"', step["run"]
        )
    }
    # THEN both were read from Secrets Manager and exported to the job before it runs
    # (``$GITHUB_ENV`` reaches every later step), or every alert would be refused
    assert {"KYPERIAN_API_KEY", "KYPERIAN_ENGINE_TOKEN"} <= exported
