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
