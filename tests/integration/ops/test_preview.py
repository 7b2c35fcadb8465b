"""`kyperian deploy preview` on moto: change sets for existing stacks, Markdown, deleted after."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kyperian.cli import main
from kyperian.ops.parameters import TEMPLATES, load_parameter_file
from kyperian.ops.preview import Preview, StackPreview, markdown

PARAMETERS = TEMPLATES / "parameters"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("cloudformation", region_name="us-east-1")


def clients(service: str, region: str) -> Any:
    session: Any = boto3.Session(region_name=region)
    return session.client(service)


def only_network(tmp_path: Path, retention: str) -> Path:
    data = json.loads((PARAMETERS / "staging.json").read_text(encoding="utf-8"))
    path = tmp_path / "staging.json"
    network = dict(data["network"], FlowLogRetentionDays=retention)
    path.write_text(json.dumps({"network": network}), encoding="utf-8")
    return path


def deploy_network(cfn: Any, retention: str) -> None:
    cfn.create_stack(
        StackName="kyperian-staging-network",
        TemplateBody=(TEMPLATES / "network.yaml").read_text(encoding="utf-8"),
        Parameters=[
            {"ParameterKey": "EnvironmentName", "ParameterValue": "staging"},
            {"ParameterKey": "FlowLogRetentionDays", "ParameterValue": retention},
        ],
        Capabilities=["CAPABILITY_IAM"],
    )


def changed_templates(tmp_path: Path) -> Path:
    """A copy of the templates whose network stack keeps flow logs 90 days and gains a queue."""
    directory = tmp_path / "cloudformation"
    directory.mkdir()
    body = (TEMPLATES / "network.yaml").read_text(encoding="utf-8")
    body = body.replace("RetentionInDays: !Ref FlowLogRetentionDays", "RetentionInDays: 90")
    body = body.replace("\nOutputs:", "\n  ExtraQueue:\n    Type: AWS::SQS::Queue\n\nOutputs:", 1)
    (directory / "network.yaml").write_text(body, encoding="utf-8")
    return directory


def test_a_template_change_shows_as_changes_and_leaves_no_change_set(
    aws: Any, tmp_path: Path
) -> None:
    # GIVEN a deployed network stack, and a branch that changes its template
    deploy_network(aws, "30")
    templates = changed_templates(tmp_path)
    # WHEN the preview runs
    file = load_parameter_file(only_network(tmp_path, "30"))
    previews = Preview(file, "us-east-1", clients, templates=templates).run()
    # THEN the modification and the addition are listed, in Markdown
    (network,) = previews
    assert network.status == "changes"
    assert {(c["Action"], c["LogicalResourceId"]) for c in network.changes} == {
        ("Modify", "FlowLogGroup"),
        ("Add", "ExtraQueue"),
    }
    text = markdown(file, "us-east-1", previews)
    assert "| `kyperian-staging-network` | us-east-1 | 2 changes |" in text
    assert "| Modify | `FlowLogGroup` | AWS::Logs::LogGroup |" in text
    # AND the change set is gone, the stack untouched
    assert aws.list_change_sets(StackName="kyperian-staging-network")["Summaries"] == []
    stack = aws.describe_stacks(StackName="kyperian-staging-network")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"


def test_replacements_are_flagged_with_their_cause() -> None:
    # GIVEN a change set answer (CloudFormation's shape) replacing the signals table
    change = {
        "Action": "Modify",
        "LogicalResourceId": "SignalsTable",
        "ResourceType": "AWS::DynamoDB::GlobalTable",
        "Replacement": "True",
        "Details": [
            {
                "Target": {
                    "Attribute": "Properties",
                    "Name": "KeySchema",
                    "RequiresRecreation": "Always",
                },
                "ChangeSource": "DirectModification",
            }
        ],
    }
    file = load_parameter_file(PARAMETERS / "staging.json")
    preview = StackPreview("kyperian-staging-data", "us-east-1", "changes", [change])
    # WHEN it is rendered
    text = markdown(file, "us-east-1", [preview])
    # THEN the summary and the row both say replacement, and why
    assert "1 changes, **1 replacement(s)**" in text
    assert "| **True** | `KeySchema` (recreation: Always) via DirectModification |" in text


def test_a_stack_not_yet_created_lists_what_it_would_add(aws: Any) -> None:
    file = load_parameter_file(PARAMETERS / "staging.json")
    previews = {p.stack: p for p in Preview(file, "us-east-1", clients).run()}
    # cicd is an administrator's stack: never previewed by the pipeline
    assert "kyperian-staging-cicd" not in previews
    data = previews["kyperian-staging-data"]
    assert data.status == "new"
    assert "SignalsTable" in {c["LogicalResourceId"] for c in data.changes}
    # AND creating nothing: no stack exists afterwards
    assert aws.list_stacks()["StackSummaries"] == []


def test_the_command_prints_markdown_and_writes_the_comment_file(
    aws: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    deploy_network(aws, "30")
    path = only_network(tmp_path, "30")
    output = tmp_path / "preview.md"
    code = main(
        ["deploy", "preview", "-e", "staging", "--parameters", str(path), "--output", str(output)]
    )
    assert code == 0
    assert output.read_text(encoding="utf-8") == capsys.readouterr().out
    assert output.read_text(encoding="utf-8").startswith("## Deploy preview: staging (us-east-1")
