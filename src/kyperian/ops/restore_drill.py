"""Drill ``runbooks/restore-point-in-time.md`` on a scratch table, step by step, timed.

The drill never touches a live table: it copies the key schema of one (``kyperian-<env>-
decisions`` by default) into a scratch table with point-in-time recovery on, writes items, takes
the restore time ``T``, damages the table (overwrites, deletes, adds), then runs the page's
steps - check recovery is on, ``RestoreTableToPointInTime`` into a new table, compare and copy
the good items back (put what the copy holds and the table lost or changed, delete what the
damage added), verify - and checks, counting from the tables themselves, that the copy holds
exactly the items of ``T`` and that the table holds them again afterwards. Each step is timed
and set against the page's budget (RTO 1 h); the RPO is read from what came back.

On an emulator (moto) the restore cannot travel in time: moto 5.1's
``RestoreTableToPointInTime`` copies the source table *as it is when called* and ignores
``RestoreDateTime``, and its ``LatestRestorableDateTime`` never advances. So with ``emulated``
the drill makes the same restore request at ``T`` itself (before the damage: the copy then
holds the state of ``T``, which is what AWS returns later), and makes it again after the
damage, as the page does, to assert and report what the emulator really does. What the
emulator cannot prove - that AWS returns the state of ``T``, how long a restore of our sizes
takes, how far behind ``LatestRestorableDateTime`` runs - is said in the report's notes. On a
real account (not ``emulated``) the drill waits until ``T`` is restorable (minutes) and
restores after the damage, as an operator would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

RUNBOOK: Final = "restore-point-in-time.md"
RTO_MINUTES: Final = 60
RPO_MINUTES: Final = 15
BUDGETS: Final[dict[str, str]] = {
    "check": "5 min",
    "restore": "10-20 min",
    "copy-back": "10-15 min",
    "verify": "5-10 min",
}
"""The page's budget per step (its table); finding the window and stopping the writer (10 min)
is an operator's work and is not drilled."""
STEPS: Final[dict[str, str]] = {
    "setup": "setup: scratch table, PITR on, items",
    "check": "1. recovery on, restore time T picked",
    "damage": "damage: overwrite, delete, add",
    "restore": "2. restore into a new table",
    "copy-back": "3. compare, copy the good items back",
    "verify": "4. verify, delete the copy",
}
"""The page's Mitigation and Verification steps by number; the others are the drill's own."""


class DrillFailed(Exception):
    """A check of the restore drill did not hold; the message says which."""


@dataclass(frozen=True)
class Step:
    """One timed step of the drill."""

    key: str
    seconds: float
    detail: str

    @property
    def title(self) -> str:
        return STEPS[self.key]

    @property
    def budget(self) -> str:
        return BUDGETS.get(self.key, "-")


@dataclass
class Report:
    """What the drill did and saw: steps with their durations, counts, the emulator's notes."""

    table: str
    restore_time: datetime
    emulated: bool
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    items_at_restore_time: int = 0
    put_back: int = 0
    deleted: int = 0

    @property
    def drilled_seconds(self) -> float:
        """Time spent in the runbook's own steps (not the setup or the damage)."""
        return sum(s.seconds for s in self.steps if s.key in BUDGETS)

    def lines(self) -> list[str]:
        """The report as printed: a table of the steps, then the RTO and RPO (notes apart)."""
        mode = "emulator" if self.emulated else "AWS"
        out = [
            f"restore drill on {self.table} ({mode}), restore time T = {self.restore_time:%FT%TZ}",
            f"  {'step':<38} {'budget':>9} {'measured':>9}",
        ]
        out += [f"  {s.title:<38} {s.budget:>9} {s.seconds:>8.2f}s  {s.detail}" for s in self.steps]
        out.append(
            f"  RTO: runbook steps 1-4 took {self.drilled_seconds:.2f} s of their "
            f"{RTO_MINUTES - 10} min budget; with 10 min to find the window and stop the writer, "
            f"the page's total is {RTO_MINUTES} min"
        )
        out.append(
            f"  RPO: all {self.items_at_restore_time} item(s) of T are back as they were; T is "
            "chosen to the second, so only writes between T and the first bad write are at "
            f"stake (here 1 s; target {RPO_MINUTES} min)"
        )
        return out


def restore_request(source: str, target: str, at: datetime) -> dict[str, Any]:
    """The page's ``aws dynamodb restore-table-to-point-in-time`` call, as API parameters."""
    return {
        "SourceTableName": source,
        "TargetTableName": target,
        "RestoreDateTime": at,
        "BillingModeOverride": "PAY_PER_REQUEST",
    }


def _canonical(item: dict[str, Any]) -> str:
    return json.dumps(item, sort_keys=True, default=str)


@dataclass
class RestoreDrill:
    """The drill against one DynamoDB client (boto3, on the configurable endpoint).

    Parameters
    ----------
    dynamodb:
        A DynamoDB client; the drill creates and deletes its own tables only.
    source:
        The table whose key schema the scratch table copies (read with DescribeTable).
    emulated:
        The endpoint is an emulator whose restore copies the table as it is when called.
    items, damaged:
        How many items to write, and how many to overwrite, delete and add (each).
    restorable_timeout:
        On AWS, how long to wait for ``T`` to become restorable (about five minutes).
    """

    dynamodb: Any
    source: str
    emulated: bool
    items: int = 30
    damaged: int = 5
    restorable_timeout: float = 1200.0
    poll_seconds: float = 15.0
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    say: Callable[[str], None] = lambda _line: None
    _keys: list[tuple[str, str]] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if not 0 < 2 * self.damaged <= self.items:
            raise ValueError(
                f"need 0 < 2 * damaged <= items (the damage overwrites {self.damaged} items and "
                f"deletes {self.damaged} others), got items={self.items}, damaged={self.damaged}"
            )

    def run(self) -> Report:
        """Run every step; raise ``DrillFailed`` on the first check that does not hold.

        The scratch table and the copies are deleted whatever happens.
        """
        stamp = self.now().strftime("%Y%m%d%H%M%S")
        table = f"{self.source}-drill-{stamp}"
        copy = f"{table}-restore"
        created: list[str] = []
        try:
            return self._run(table, copy, created)
        except (ClientError, BotoCoreError) as exc:
            raise DrillFailed(f"{type(exc).__name__}: {exc}") from exc
        finally:
            for name in reversed(created):
                self._drop(name)

    # --- the steps ---------------------------------------------------------------------------

    def _run(self, table: str, copy: str, created: list[str]) -> Report:
        keys = self._keys = self._key_names()
        started = self.clock()
        self._create(table, created)
        for index in range(self.items):
            self._put(table, keys, index, "good")
        report = Report(table, self.now(), self.emulated)
        report.steps.append(self._step("setup", started, f"{self.items} items written"))

        self.sleep(1.1)  # T is a whole second after the last good write, the damage after T
        truth = self._pick_restore_time(table, report)
        restoring = 0.0
        if self.emulated:  # the emulator copies the present: the copy of T is taken at T
            restoring = self.clock()
            self._restore(table, copy, report.restore_time, created)
            restoring = self.clock() - restoring
        self.sleep(1.1)

        started = self.clock()
        self._damage(table, keys)
        detail = f"{self.damaged} overwritten, deleted, added each"
        report.steps.append(self._step("damage", started, detail))

        self._restore_step(table, copy, report, truth, created, already=restoring)

        started = self.clock()
        report.put_back, report.deleted = self._copy_back(table, copy, keys)
        detail = f"{report.put_back} put back, {report.deleted} deleted"
        report.steps.append(self._step("copy-back", started, detail))

        started = self.clock()
        after = self._items(table)
        self._require_same(after, truth, f"{table} does not hold the items of T after copy-back")
        self._drop(copy)
        created.remove(copy)
        report.steps.append(self._step("verify", started, f"{len(after)} items, as at T"))
        return report

    def _pick_restore_time(self, table: str, report: Report) -> dict[str, dict[str, Any]]:
        """Step 1: recovery is on; T is now; the items of T, scanned (the drill's truth)."""
        started = self.clock()
        recovery = self._recovery(table)
        if recovery.get("PointInTimeRecoveryStatus") != "ENABLED":
            raise DrillFailed(f"point-in-time recovery is not on for {table}: {recovery}")
        report.restore_time = self.now().replace(microsecond=0)
        truth = self._items(table)
        report.items_at_restore_time = len(truth)
        report.steps.append(self._step("check", started, "PointInTimeRecoveryStatus ENABLED"))
        return truth

    def _restore_step(
        self,
        table: str,
        copy: str,
        report: Report,
        truth: dict[str, dict[str, Any]],
        created: list[str],
        *,
        already: float,
    ) -> None:
        """Step 2: the copy of T exists and holds exactly the items of T.

        On AWS the restore is made now, once T is restorable; on the emulator it was made at T
        (``already`` seconds, counted here) and the page's late request is only probed.
        """
        started = self.clock() - already
        if self.emulated:
            detail = "copy made at T (the emulator cannot restore a past state)"
        else:
            waited = self._wait_restorable(table, report.restore_time)
            self._restore(table, copy, report.restore_time, created)
            detail = f"after the damage, {waited:.0f} s of it waiting for T to be restorable"
        restored = self._items(copy)
        self._require_same(restored, truth, f"the copy {copy} does not hold the items of T")
        report.steps.append(self._step("restore", started, f"{detail}; {len(restored)} items"))
        if self.emulated:
            report.notes += self._probe_emulator(table, copy, report.restore_time, truth, created)

    def _step(self, key: str, started: float, detail: str) -> Step:
        step = Step(key, self.clock() - started, detail)
        self.say(f"    {step.title}: {step.seconds:.2f} s")
        return step

    # --- tables ------------------------------------------------------------------------------

    def _key_names(self) -> list[tuple[str, str]]:
        """(name, type) of the source table's key attributes, hash key first."""
        try:
            described = self.dynamodb.describe_table(TableName=self.source)["Table"]
        except ClientError as exc:
            raise DrillFailed(f"cannot read the key schema of {self.source}: {exc}") from exc
        types = {a["AttributeName"]: a["AttributeType"] for a in described["AttributeDefinitions"]}
        schema = sorted(described["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
        return [(k["AttributeName"], types[k["AttributeName"]]) for k in schema]

    def _create(self, table: str, created: list[str]) -> None:
        keys = self._keys
        self.dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": t} for n, t in keys],
            KeySchema=[
                {"AttributeName": n, "KeyType": "HASH" if i == 0 else "RANGE"}
                for i, (n, _) in enumerate(keys)
            ],
            Tags=[{"Key": "kyperian:drill", "Value": RUNBOOK}],
        )
        created.append(table)
        self.dynamodb.get_waiter("table_exists").wait(TableName=table)
        self.dynamodb.update_continuous_backups(
            TableName=table,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )

    def _recovery(self, table: str) -> dict[str, Any]:
        backups = self.dynamodb.describe_continuous_backups(TableName=table)
        description: dict[str, Any] = backups["ContinuousBackupsDescription"].get(
            "PointInTimeRecoveryDescription", {}
        )
        return description

    def _wait_restorable(self, table: str, at: datetime) -> float:
        """Wait until ``LatestRestorableDateTime`` reaches ``at``; return the seconds waited."""
        started = self.clock()
        while True:
            latest = self._recovery(table).get("LatestRestorableDateTime")
            if isinstance(latest, datetime) and latest >= at:
                return self.clock() - started
            if self.clock() - started >= self.restorable_timeout:
                raise DrillFailed(
                    f"{at:%FT%TZ} is not restorable after {self.restorable_timeout:.0f} s "
                    f"(LatestRestorableDateTime {latest})"
                )
            self.sleep(self.poll_seconds)

    def _restore(self, table: str, copy: str, at: datetime, created: list[str]) -> None:
        self.dynamodb.restore_table_to_point_in_time(**restore_request(table, copy, at))
        created.append(copy)
        self.dynamodb.get_waiter("table_exists").wait(
            TableName=copy, WaiterConfig={"Delay": 5, "MaxAttempts": 720}
        )

    def _drop(self, table: str) -> None:
        try:
            self.dynamodb.delete_table(TableName=table)
        except ClientError as exc:
            self.say(f"    could not delete {table}: {exc}")

    # --- items -------------------------------------------------------------------------------

    def _item(self, keys: list[tuple[str, str]], index: int, value: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            name: {kind: str(index) if kind == "N" else f"DRILL#{index:04d}"} for name, kind in keys
        }
        item["drill_value"] = {"S": value}
        item["drill_index"] = {"N": str(index)}
        return item

    def _put(self, table: str, keys: list[tuple[str, str]], index: int, value: str) -> None:
        self.dynamodb.put_item(TableName=table, Item=self._item(keys, index, value))

    def _key(self, keys: list[tuple[str, str]], item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name, _ in keys}

    def _items(self, table: str) -> dict[str, dict[str, Any]]:
        """Every item of ``table``, by its canonical key (a consistent scan)."""
        keys = self._keys
        found: dict[str, dict[str, Any]] = {}
        request: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
        while True:
            page = self.dynamodb.scan(**request)
            for item in page.get("Items", []):
                found[_canonical(self._key(keys, item))] = item
            if "LastEvaluatedKey" not in page:
                return found
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _damage(self, table: str, keys: list[tuple[str, str]]) -> None:
        """Overwrite the first ``damaged`` items, delete the next ones, add as many new ones."""
        n = self.damaged
        for index in range(n):
            self._put(table, keys, index, "bad")
        for index in range(n, 2 * n):
            self.dynamodb.delete_item(
                TableName=table, Key=self._key(keys, self._item(keys, index, ""))
            )
        for index in range(self.items, self.items + n):
            self._put(table, keys, index, "bad")

    def _copy_back(self, table: str, copy: str, keys: list[tuple[str, str]]) -> tuple[int, int]:
        """The page's step 3: put what the copy holds and the table lost or changed, delete
        what the table holds and the copy does not (the damage's additions)."""
        restored, live = self._items(copy), self._items(table)
        changed = [
            item
            for key, item in restored.items()
            if key not in live or _canonical(live[key]) != _canonical(item)
        ]
        added = [live[key] for key in live.keys() - restored.keys()]
        for item in changed:
            self.dynamodb.put_item(TableName=table, Item=item)
        for item in added:
            self.dynamodb.delete_item(TableName=table, Key=self._key(keys, item))
        return len(changed), len(added)

    def _probe_emulator(
        self,
        table: str,
        copy: str,
        at: datetime,
        truth: dict[str, dict[str, Any]],
        created: list[str],
    ) -> list[str]:
        """The page's restore, after the damage: report what the emulator returns for ``T``."""
        probe = f"{copy}-probe"
        self._restore(table, probe, at, created)
        held, now = self._items(probe), self._items(table)
        self._drop(probe)
        created.remove(probe)
        notes = []
        if self._same(held, truth):
            notes.append("the emulator restored the state of T itself (a real point-in-time copy)")
        elif self._same(held, now):
            notes.append(
                "the emulator's RestoreTableToPointInTime, called after the damage with T, "
                "copied the table as it is now (damage included) and ignored RestoreDateTime: "
                "the copy that held the items of T was taken at T; the drill cannot prove here "
                "that AWS returns the state of T, how long a restore of our sizes takes, or how "
                "far LatestRestorableDateTime trails (about 5 min on AWS: wait before step 2)"
            )
        else:
            raise DrillFailed(f"the emulator's restore {probe} holds neither T nor now")
        return notes

    @staticmethod
    def _same(left: dict[str, dict[str, Any]], right: dict[str, dict[str, Any]]) -> bool:
        return {k: _canonical(v) for k, v in left.items()} == {
            k: _canonical(v) for k, v in right.items()
        }

    def _require_same(
        self, found: dict[str, dict[str, Any]], truth: dict[str, dict[str, Any]], message: str
    ) -> None:
        if not self._same(found, truth):
            missing = len(truth.keys() - found.keys())
            extra = len(found.keys() - truth.keys())
            differ = sum(
                1
                for k in truth.keys() & found.keys()
                if _canonical(truth[k]) != _canonical(found[k])
            )
            raise DrillFailed(f"{message}: {missing} missing, {extra} extra, {differ} different")
