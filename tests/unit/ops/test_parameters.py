"""What a parameter file needs before a deploy, read without AWS (kyperian.ops.parameters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kyperian.ops.parameters import (
    TEMPLATES,
    alarm_subscriber_problem,
    load_parameter_file,
    missing_and_unknown,
    notice_subscriber_problem,
    primary_of,
    reserved_concurrency,
    ssm_references,
)

PARAMETERS = TEMPLATES / "parameters"


@pytest.mark.parametrize("name", ["staging", "production", "production-dr"])
def test_the_committed_files_are_complete(name: str) -> None:
    assert missing_and_unknown(load_parameter_file(PARAMETERS / f"{name}.json")) == []


def test_a_gap_and_a_stray_key_are_named(tmp_path: Path) -> None:
    # GIVEN staging's file with one parameter dropped and one invented
    data = json.loads((PARAMETERS / "staging.json").read_text(encoding="utf-8"))
    del data["compute"]["AlbLogRetentionDays"]
    data["network"]["Colour"] = "blue"
    path = tmp_path / "staging.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    # WHEN it is checked THEN both are reported by stack and key
    assert missing_and_unknown(load_parameter_file(path)) == [
        "network.Colour: not a parameter",
        "compute.AlbLogRetentionDays: missing",
    ]


def test_each_file_knows_its_region() -> None:
    regions = {
        name: load_parameter_file(PARAMETERS / f"{name}.json").region()
        for name in ("staging", "production", "production-dr")
    }
    assert regions == {
        "staging": "us-east-1",
        "production": "us-east-1",
        "production-dr": "us-west-2",
    }


def test_reserved_concurrency_follows_the_parameter(tmp_path: Path) -> None:
    # GIVEN staging's file, and the same with api.ReservedConcurrency halved
    data = json.loads((PARAMETERS / "staging.json").read_text(encoding="utf-8"))
    full = reserved_concurrency(load_parameter_file(PARAMETERS / "staging.json"))
    data["api"]["ReservedConcurrency"] = "50"
    path = tmp_path / "staging.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    # THEN the three webhook functions reserve 50 less each (a fixed reservation stays)
    assert full - reserved_concurrency(load_parameter_file(path)) == 3 * 50
    assert full >= 300


def test_the_edge_certificate_is_read_in_us_east_1_whatever_the_region() -> None:
    file = load_parameter_file(PARAMETERS / "production-dr.json")
    references = {(r.stack, r.key): r.region for r in ssm_references(file, "us-west-2")}
    assert references[("compute", "CertificateArn")] == "us-west-2"
    production = load_parameter_file(PARAMETERS / "production.json")
    edge = {(r.stack, r.key): r.region for r in ssm_references(production, "eu-west-1")}
    assert edge[("edge", "CertificateArn")] == "us-east-1"


@pytest.mark.parametrize(
    ("email", "problem"),
    [("", "is empty"), ("oncall", "not an email"), ("oncall@example.com", None)],
)
def test_alarm_subscriber(tmp_path: Path, email: str, problem: str | None) -> None:
    data = json.loads((PARAMETERS / "production.json").read_text(encoding="utf-8"))
    data["monitoring"]["AlertEmail"] = email
    path = tmp_path / "production.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    found = alarm_subscriber_problem(load_parameter_file(path))
    assert found is None if problem is None else problem in str(found)


def _pair(tmp_path: Path, primary_email: str, dr_email: str) -> Path:
    """production.json and production-dr.json in tmp_path with these NoticeEmail values."""
    for source, email in (("production.json", primary_email), ("production-dr.json", dr_email)):
        data = json.loads((PARAMETERS / source).read_text(encoding="utf-8"))
        data["monitoring"]["NoticeEmail"] = email
        (tmp_path / source).write_text(json.dumps(data), encoding="utf-8")
    return tmp_path / "production-dr.json"


@pytest.mark.parametrize(
    ("primary", "dr", "problem"),
    [
        ("trader@example.com", "", "would reach no one"),
        ("trader@example.com", "other@example.com", "set the same address in both"),
        ("", "trader@example.com", "set the same address in both"),
        ("trader@example.com", " Trader@example.com ", None),
        ("", "", None),
    ],
)
def test_the_dr_file_emails_notices_to_the_primary_address(
    tmp_path: Path, primary: str, dr: str, problem: str | None
) -> None:
    # GIVEN a primary and a DR file side by side  WHEN the DR file is checked against its primary
    path = _pair(tmp_path, primary, dr)
    found = notice_subscriber_problem(load_parameter_file(path), primary_of(path))
    # THEN only the same address (case and spaces aside) passes, naming both files otherwise
    assert found is None if problem is None else problem in str(found)
    if found is not None:
        assert "production-dr.json" in found
        assert "production.json" in found


def test_a_primary_file_has_no_primary_and_the_committed_pair_agrees() -> None:
    assert primary_of(PARAMETERS / "production.json") is None
    dr = PARAMETERS / "production-dr.json"
    primary = primary_of(dr)
    assert primary is not None
    assert primary.name == "production"
    assert notice_subscriber_problem(load_parameter_file(dr), primary) is None
