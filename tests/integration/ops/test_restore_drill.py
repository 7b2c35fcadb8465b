"""The point-in-time restore drill on moto: the runbook's steps, what came back, what moto does.

moto 5.1's RestoreTableToPointInTime copies the table as it is when called; these tests pin
that down (the drill reports it) and check that the drill's own checks fail when the restore or
the copy-back is wrong, counting from the tables, never from the drill's return values alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from kyperian.cli import main
from kyperian.ops.restore_drill import DrillFailed, RestoreDrill

SOURCE = "kyperian-local-decisions"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client: Any = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=SOURCE,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": "PK", "AttributeType": "S"},
                {"AttributeName": "SK", "AttributeType": "S"},
            ],
            KeySchema=[
                {"AttributeName": "PK", "KeyType": "HASH"},
                {"AttributeName": "SK", "KeyType": "RANGE"},
            ],
        )
        yield client


def drill(dynamodb: Any, **kwargs: Any) -> RestoreDrill:
    options: dict[str, Any] = {"emulated": True, "items": 12, "damaged": 3, "sleep": lambda _: None}
    return RestoreDrill(dynamodb, SOURCE, **{**options, **kwargs})


def test_the_drill_brings_back_exactly_the_items_of_the_restore_time(dynamodb: Any) -> None:
    # GIVEN the emulator and a table with the decisions table's key schema
    # WHEN the drill writes 12 items, takes T, overwrites/deletes/adds 3 each and restores
    report = drill(dynamodb).run()
    # THEN the 12 items of T came back: the 3 overwritten and 3 deleted put back, 3 added deleted
    assert report.items_at_restore_time == 12
    assert (report.put_back, report.deleted) == (6, 3)
    # AND every runbook step was timed, in the page's order, with its budget
    assert [s.key for s in report.steps] == [
        "setup",
        "check",
        "damage",
        "restore",
        "copy-back",
        "verify",
    ]
    assert [s.budget for s in report.steps if s.key in ("restore", "copy-back")] == [
        "10-20 min",
        "10-15 min",
    ]
    assert 0 < report.drilled_seconds < 60 * 50
    # AND nothing the drill created is left behind
    assert dynamodb.list_tables()["TableNames"] == [SOURCE]


def test_the_drill_reports_that_moto_copies_the_present_not_the_restore_time(
    dynamodb: Any,
) -> None:
    # WHEN the drill runs on moto
    report = drill(dynamodb).run()
    # THEN it says what the emulator did with the page's restore after the damage, and what it
    # cannot prove (if moto ever restores the state of T, this note changes and so must the docs)
    (note,) = report.notes
    assert "copied the table as it is now (damage included) and ignored RestoreDateTime" in note
    assert "cannot prove here that AWS returns the state of T" in note


def test_the_account_order_fails_on_moto_because_its_copy_holds_the_damage(dynamodb: Any) -> None:
    # GIVEN the drill in its real-account order: damage first, then restore to T
    account = drill(dynamodb, emulated=False, restorable_timeout=0.0)
    # WHEN it runs on moto (T falls in the second recovery was enabled, so moto calls it
    # restorable), whose restore copies the table as it is after the damage
    # THEN the check of the copy against the items of T fails: it does not pass on a bad copy
    with pytest.raises(DrillFailed, match="does not hold the items of T: 3 missing, 3 extra"):
        account.run()
    # AND it cleans up what it created
    assert dynamodb.list_tables()["TableNames"] == [SOURCE]


class FakeClock:
    """A monotonic clock that moves only when the drill sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_account_order_waits_for_t_to_be_restorable_and_gives_up_in_time(
    dynamodb: Any,
) -> None:
    # GIVEN a clock ten minutes ahead of the table's LatestRestorableDateTime, and a 30 s limit
    clock = FakeClock()
    ahead = RestoreDrill(
        dynamodb,
        SOURCE,
        emulated=False,
        items=4,
        damaged=1,
        now=lambda: datetime.now(UTC) + timedelta(minutes=10),
        restorable_timeout=30.0,
        poll_seconds=15.0,
        clock=clock,
        sleep=clock.advance,
    )
    # WHEN the drill waits for T to become restorable before its restore
    # THEN it polls until the limit and fails, naming T, rather than restoring a later state
    with pytest.raises(DrillFailed, match="is not restorable after 30 s"):
        ahead.run()
    assert dynamodb.list_tables()["TableNames"] == [SOURCE]


class SkipsDeletes(RestoreDrill):
    """A copy-back that forgets the items the damage added."""

    def _copy_back(self, table: str, copy: str, keys: list[tuple[str, str]]) -> tuple[int, int]:
        restored, live = self._items(copy), self._items(table)
        for key, item in restored.items():
            if live.get(key) != item:
                self.dynamodb.put_item(TableName=table, Item=item)
        return len(restored), 0


def test_a_copy_back_that_leaves_the_damage_is_caught_by_the_verification(dynamodb: Any) -> None:
    # GIVEN a copy-back that puts the good items back but deletes nothing
    broken = SkipsDeletes(
        dynamodb, SOURCE, emulated=True, items=12, damaged=3, sleep=lambda _: None
    )
    # WHEN the drill verifies the table against the items of T (scanned from the table itself)
    # THEN the three items the damage added are found
    with pytest.raises(DrillFailed, match="0 missing, 3 extra, 0 different"):
        broken.run()


def test_the_command_prints_each_step_against_the_runbooks_budget(
    dynamodb: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN `kyperian ops restore-drill --emulator` runs against the emulator
    code = main(["ops", "restore-drill", "--emulator", "--table", SOURCE, "--items", "10"])
    out = capsys.readouterr().out
    # THEN it passes and prints the steps with budgets, the RTO and RPO lines and the note
    assert code == 0, out
    for line in (
        "2. restore into a new table",
        "10-20 min",
        "RTO: runbook steps 1-4 took",
        "RPO: all 10 item(s) of T are back as they were",
        "note: the emulator's RestoreTableToPointInTime",
        "restore drill PASSED",
    ):
        assert line in out
    # AND a drill that cannot damage and still keep items is refused as a usage error
    assert main(["ops", "restore-drill", "--emulator", "--items", "4", "--damaged", "3"]) == 2
