"""The deploy workflow reads only the staging secrets the GitHub deploy role may read.

A step that reads a secret the role cannot read fails only on GitHub, at deploy time: this
test catches it here by matching every ``--secret-id`` in the workflow against the staging
deploy role's ``secretsmanager:GetSecretValue`` resources (with their ``-??????`` suffix).
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any

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
