"""A production deploy refuses to run when its alarms would reach no one (issue 17).

The subscriber is ``monitoring.AlertEmail`` of the parameter file. These tests write parameter
files to tmp_path and run the command line: a refused deploy stops before any AWS call.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from kyperian.cli import main as kyperian
from kyperian.ops.deploy import (
    DeployError,
    alarm_subscriber_problem,
    check_alarm_subscriber,
    load_parameter_file,
    main,
)

REPO = Path(__file__).resolve().parents[3]
PARAMETERS = REPO / "cloudformation" / "parameters"


class NoAwsSession(boto3.Session):
    """A session that fails the test if the deploy reaches AWS at all."""

    def client(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"AWS was called: {args}")


def parameter_file(tmp_path: Path, source: str, alert_email: str | None) -> Path:
    data = json.loads((PARAMETERS / source).read_text(encoding="utf-8"))
    if alert_email is None:
        del data["monitoring"]
    else:
        data["monitoring"]["AlertEmail"] = alert_email
    path = tmp_path / source
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize("alert_email", ["", "   ", "not-an-address", None])
def test_production_deploy_without_a_subscriber_is_refused(
    tmp_path: Path, alert_email: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a production parameter file whose alarms reach no one
    path = parameter_file(tmp_path, "production.json", alert_email)
    # WHEN a (non dry-run) production deploy starts
    code = main(
        ["-e", "production", "--region", "us-east-1", "--parameters", str(path)],
        session=NoAwsSession(region_name="us-east-1"),
    )
    # THEN it stops before touching AWS and says what to fill
    assert code == 1
    err = capsys.readouterr().err
    assert "refusing a production deploy" in err
    assert "AlertEmail" in err or "monitoring" in err


def test_the_dr_region_is_refused_too(tmp_path: Path) -> None:
    path = parameter_file(tmp_path, "production-dr.json", "")
    with pytest.raises(DeployError, match="AlertEmail is empty"):
        check_alarm_subscriber("production", load_parameter_file(path))


def test_production_with_a_subscriber_passes(tmp_path: Path) -> None:
    # GIVEN the on-call address filled in
    path = parameter_file(tmp_path, "production.json", "oncall@example.com")
    # WHEN the check runs THEN nothing is wrong
    parameters = load_parameter_file(path)
    assert alarm_subscriber_problem("production", parameters) is None
    check_alarm_subscriber("production", parameters)


def test_staging_without_a_subscriber_only_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = parameter_file(tmp_path, "staging.json", "")
    check_alarm_subscriber("staging", load_parameter_file(path))
    assert "warning: monitoring.AlertEmail is empty" in capsys.readouterr().err


def test_dry_run_shows_the_plan_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an empty subscriber WHEN only the plan is asked for
    path = parameter_file(tmp_path, "production.json", "")
    code = main(
        ["-e", "production", "--region", "us-east-1", "--parameters", str(path), "--dry-run"]
    )
    # THEN the plan prints and the problem is shown as a warning
    assert code == 0
    assert "AlertEmail is empty" in capsys.readouterr().err


def test_kyperian_deploy_apply_is_the_same_deploy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the package's command with the script's options
    path = parameter_file(tmp_path, "production.json", "")
    # WHEN it is asked for the plan
    code = kyperian(
        [
            "deploy",
            "apply",
            "-e",
            "production",
            "--region",
            "us-east-1",
            "--parameters",
            str(path),
            "--dry-run",
        ]
    )
    # THEN it prints the same plan and warning as scripts/deploy.py
    captured = capsys.readouterr()
    assert code == 0
    assert captured.out.startswith("Deploy plan: environment production, region us-east-1")
    assert "AlertEmail is empty" in captured.err


def test_a_production_dr_deploy_that_would_email_notices_elsewhere_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the trader's address in production.json but not in production-dr.json beside it
    for source, email in (("production.json", "trader@example.com"), ("production-dr.json", "")):
        data = json.loads((PARAMETERS / source).read_text(encoding="utf-8"))
        data["monitoring"]["AlertEmail"] = "oncall@example.com"
        data["monitoring"]["NoticeEmail"] = email
        (tmp_path / source).write_text(json.dumps(data), encoding="utf-8")
    # WHEN the DR region is deployed
    code = main(
        ["-e", "production", "--region", "us-west-2", "--parameters",
         str(tmp_path / "production-dr.json")],
        session=NoAwsSession(region_name="us-west-2"),
    )  # fmt: skip
    # THEN it stops before touching AWS and says which address to set where
    assert code == 1
    err = capsys.readouterr().err
    assert "refusing a production deploy" in err
    assert "NoticeEmail is empty in production-dr.json but 'trader@example.com'" in err
