"""Preflight and bootstrap against moto (sts, ssm, route53, acm) with the real parameter files.

Lambda's GetAccountSettings does not exist in moto, so the concurrency answers come from
botocore's Stubber on a real Lambda client; everything else is moto in-process.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import moto.settings
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from kyperian.cli import main
from kyperian.ops.bootstrap import Bootstrap, BootstrapError
from kyperian.ops.parameters import (
    TEMPLATES,
    ParameterFile,
    load_parameter_file,
    reserved_concurrency,
)
from kyperian.ops.preflight import Finding, Preflight

PARAMETERS = TEMPLATES / "parameters"
ACCOUNT = "123456789012"


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # ACM issues a DNS-validated certificate at once instead of after 60 s
    monkeypatch.setattr(moto.settings, "ACM_VALIDATION_WAIT", 0)
    with mock_aws():
        yield


def lambda_answers(limit: int, unreserved: int, ours: dict[str, int]) -> Any:
    """A real Lambda client whose answers are scripted (moto lacks GetAccountSettings)."""
    client = boto3.client("lambda", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_response(
        "get_account_settings",
        {
            "AccountLimit": {
                "ConcurrentExecutions": limit,
                "UnreservedConcurrentExecutions": unreserved,
            }
        },
    )
    stubber.add_response(
        "list_functions",
        {"Functions": [{"FunctionName": name} for name in ours]},
    )
    for name, reserved in ours.items():
        stubber.add_response(
            "get_function_concurrency",
            {"ReservedConcurrentExecutions": reserved},
            {"FunctionName": name},
        )
    stubber.activate()
    return client


def factory(lambda_client: Any | None = None) -> Any:
    def build(service: str, region: str) -> Any:
        if service == "lambda" and lambda_client is not None:
            return lambda_client
        session: Any = boto3.Session(region_name=region)
        return session.client(service)

    return build


def staging() -> ParameterFile:
    return load_parameter_file(PARAMETERS / "staging.json")


def with_alert_email(tmp_path: Path, source: str, email: str) -> ParameterFile:
    data = json.loads((PARAMETERS / source).read_text(encoding="utf-8"))
    data["monitoring"]["AlertEmail"] = email
    path = tmp_path / source
    path.write_text(json.dumps(data), encoding="utf-8")
    return load_parameter_file(path)


def create_zone() -> str:
    zone = boto3.client("route53").create_hosted_zone(Name="kyperian.com", CallerReference="t")
    return str(zone["HostedZone"]["Id"]).rsplit("/", 1)[-1]


def failed(findings: list[Finding]) -> dict[str, str]:
    return {f.check: f.detail for f in findings if not f.ok}


# --- bootstrap ---------------------------------------------------------------------------------


def test_bootstrap_creates_every_prerequisite_the_parameter_file_names(aws: None) -> None:
    # GIVEN an account with the public hosted zone and nothing else
    zone_id = create_zone()
    # WHEN staging is bootstrapped
    Bootstrap([(staging(), "us-east-1")], "kyperian.com", factory()).run()
    # THEN the SSM parameters hold the zone id and the certificates for the right names
    ssm = boto3.client("ssm", region_name="us-east-1")

    def value(name: str) -> str:
        return str(ssm.get_parameter(Name=f"/kyperian/staging/config/{name}")["Parameter"]["Value"])

    assert value("hosted-zone-id") == zone_id
    acm = boto3.client("acm", region_name="us-east-1")

    def names(arn: str) -> set[str]:
        return set(
            acm.describe_certificate(CertificateArn=arn)["Certificate"]["SubjectAlternativeNames"]
        )

    assert names(value("origin-certificate-arn")) == {
        "origin-api.staging.kyperian.com",
        "origin-api-us-east-1.staging.kyperian.com",
    }
    assert names(value("engine-certificate-arn")) == {"engine.staging.kyperian.com"}
    assert names(value("edge-certificate-arn")) == {"api.staging.kyperian.com"}
    # AND the DNS validation records are in the zone
    records = boto3.client("route53").list_resource_record_sets(HostedZoneId=zone_id)
    cnames = [r for r in records["ResourceRecordSets"] if r["Type"] == "CNAME"]
    assert len(cnames) >= 4


def test_bootstrap_twice_requests_no_second_certificate(aws: None) -> None:
    create_zone()
    Bootstrap([(staging(), "us-east-1")], "kyperian.com", factory()).run()
    acm = boto3.client("acm", region_name="us-east-1")
    before = acm.list_certificates()["CertificateSummaryList"]
    # WHEN it runs again
    actions = Bootstrap([(staging(), "us-east-1")], "kyperian.com", factory()).run()
    # THEN the certificates are reused
    assert acm.list_certificates()["CertificateSummaryList"] == before
    assert not any(a.startswith("requested") for a in actions)


def test_bootstrap_without_the_hosted_zone_says_what_to_do(aws: None) -> None:
    with pytest.raises(BootstrapError, match="create it"):
        Bootstrap([(staging(), "us-east-1")], "kyperian.com", factory()).run()


def test_bootstrap_covers_the_dr_region(aws: None) -> None:
    create_zone()
    files = [
        (load_parameter_file(PARAMETERS / "production.json"), "us-east-1"),
        (load_parameter_file(PARAMETERS / "production-dr.json"), "us-west-2"),
    ]
    Bootstrap(files, "kyperian.com", factory()).run()
    west = boto3.client("ssm", region_name="us-west-2")
    arn = west.get_parameter(Name="/kyperian/production/config/engine-certificate-arn")
    assert ":us-west-2:" in arn["Parameter"]["Value"]


# --- preflight ---------------------------------------------------------------------------------


def test_preflight_passes_after_bootstrap(aws: None) -> None:
    # GIVEN a bootstrapped staging and an account with room for 300 reserved executions
    create_zone()
    Bootstrap([(staging(), "us-east-1")], "kyperian.com", factory()).run()
    lambda_client = lambda_answers(limit=1000, unreserved=1000, ours={})
    # WHEN preflight runs
    findings = Preflight(staging(), "us-east-1", factory(lambda_client), ACCOUNT).run()
    # THEN every check passes
    assert failed(findings) == {}
    assert {f.check for f in findings} >= {
        "account",
        "region",
        "parameters",
        "prerequisite",
        "lambda concurrency",
    }


def test_preflight_names_missing_prerequisites(aws: None) -> None:
    lambda_client = lambda_answers(limit=1000, unreserved=1000, ours={})
    findings = Preflight(staging(), "us-east-1", factory(lambda_client)).run()
    problems = [f.detail for f in findings if not f.ok]
    assert any(
        "/kyperian/staging/config/hosted-zone-id" in p and "bootstrap" in p for p in problems
    )
    assert any("edge-certificate-arn (us-east-1)" in p for p in problems)


def test_preflight_refuses_the_wrong_account_and_region(aws: None) -> None:
    lambda_client = lambda_answers(limit=1000, unreserved=1000, ours={})
    findings = Preflight(staging(), "eu-west-1", factory(lambda_client), "999999999999").run()
    assert "999999999999" in failed(findings)["account"]
    assert "deploys to us-east-1" in failed(findings)["region"]


def test_preflight_catches_a_lambda_quota_too_small_for_both_environments(aws: None) -> None:
    # GIVEN an account where production and other work leave just 50 more than staging's
    # stacks would reserve (3 x 100, plus any function with a fixed reservation)
    needed = reserved_concurrency(staging())
    lambda_client = lambda_answers(limit=1000, unreserved=needed + 50, ours={})
    # WHEN preflight runs
    findings = Preflight(staging(), "us-east-1", factory(lambda_client)).run()
    # THEN the quota check fails before any change set, saying what to do
    detail = failed(findings)["lambda concurrency"]
    assert "after the deploy 50" in detail
    assert "L-B99A9384" in detail


def test_preflight_counts_what_the_environment_already_reserves(aws: None) -> None:
    # GIVEN staging's three functions already reserve 300 (a redeploy): unreserved 350 is enough
    ours = {
        f"kyperian-staging-{n}": 100 for n in ("signal-validator", "mtf-handler", "health-check")
    }
    lambda_client = lambda_answers(limit=1000, unreserved=350, ours=ours)
    findings = Preflight(staging(), "us-east-1", factory(lambda_client)).run()
    assert "lambda concurrency" not in failed(findings)


def test_production_without_an_alarm_subscriber_fails_preflight(aws: None, tmp_path: Path) -> None:
    file = with_alert_email(tmp_path, "production.json", "")
    lambda_client = lambda_answers(limit=5000, unreserved=5000, ours={})
    findings = Preflight(file, "us-east-1", factory(lambda_client)).run()
    assert "AlertEmail is empty" in failed(findings)["alarm subscriber"]


def test_the_command_prints_each_check_and_fails_on_any(
    aws: None, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN nothing bootstrapped WHEN `kyperian deploy preflight` runs
    code = main(["deploy", "preflight", "-e", "staging"])
    # THEN it exits 1 and lists what failed
    out = capsys.readouterr().out
    assert code == 1
    assert (
        "FAIL prerequisite: /kyperian/staging/config/hosted-zone-id (us-east-1) is missing" in out
    )
    assert "ok   parameters" in out


def test_preflight_of_the_dr_file_checks_it_emails_notices_like_the_primary(
    aws: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN production.json e-mails notices to the trader, production-dr.json beside it to no one
    for source, email in (("production.json", "trader@example.com"), ("production-dr.json", "")):
        data = json.loads((PARAMETERS / source).read_text(encoding="utf-8"))
        data["monitoring"]["NoticeEmail"] = email
        (tmp_path / source).write_text(json.dumps(data), encoding="utf-8")
    # WHEN the DR file is preflighted from the command line
    code = main(
        ["deploy", "preflight", "-e", "production", "--parameters",
         str(tmp_path / "production-dr.json")]
    )  # fmt: skip
    # THEN the check fails, saying the DR engine's notices would reach no one
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL notice subscriber: monitoring.NoticeEmail is empty in production-dr.json" in out
    # AND with the same address in both it passes
    data = json.loads((tmp_path / "production-dr.json").read_text(encoding="utf-8"))
    data["monitoring"]["NoticeEmail"] = "trader@example.com"
    (tmp_path / "production-dr.json").write_text(json.dumps(data), encoding="utf-8")
    main(
        [
            "deploy",
            "preflight",
            "-e",
            "production",
            "--parameters",
            str(tmp_path / "production-dr.json"),
        ]
    )
    assert "ok   notice subscriber: trader@example.com" in capsys.readouterr().out
