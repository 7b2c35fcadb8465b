"""`kyperian ops ...`: each task reaches its module; the restore drill asks what the page asks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from kyperian.cli import build_parser, main
from kyperian.ops import drill, exactly_once_drill, kill_switch_drill, lambda_package, restore_drill
from kyperian.ops.runbooks import RUNBOOKS, expand_command, page_commands, split_aws, to_params


@pytest.mark.parametrize(
    ("argv", "run"),
    [
        (["ops", "drill", "--only", "restore-point-in-time"], drill.run),
        (["ops", "package-lambda", "--verify", "--arch", "arm64"], lambda_package.run),
    ],
)
def test_each_task_runs_its_modules_code(argv: list[str], run: object) -> None:
    # WHEN the command line is parsed: THEN the task's own module runs it, with its options
    args = build_parser().parse_args(argv)
    assert args.run is run


def test_the_drill_knows_the_restore_page() -> None:
    # GIVEN the runbook drills: THEN the point-in-time restore is one, on its page
    assert drill.DRILLS["restore-point-in-time"][0] == restore_drill.RUNBOOK
    assert (RUNBOOKS / restore_drill.RUNBOOK).is_file()


def test_the_drills_restore_is_the_runbooks_restore_command() -> None:
    # GIVEN the page's `aws dynamodb restore-table-to-point-in-time` command, variables filled
    (command,) = [
        c
        for c in page_commands(RUNBOOKS / restore_drill.RUNBOOK)
        if c.argv[:3] == ("aws", "dynamodb", "restore-table-to-point-in-time")
    ]
    at = datetime(2026, 11, 28, 9, 41, tzinfo=UTC)
    variables = {"TABLE": "t", "COPY": "t-restore", "RESTORE_AT": "2026-11-28T09:41:00Z"}
    params = to_params(split_aws(expand_command(command, variables)))
    # WHEN the drill builds its request for the same table, copy and time
    request = restore_drill.restore_request("t", "t-restore", at)
    # THEN it sends the same parameters (the time as a datetime rather than ISO text)
    assert params.pop("RestoreDateTime") == "2026-11-28T09:41:00Z"
    assert request.pop("RestoreDateTime") == at
    assert params == request


def test_the_drills_numbered_steps_are_the_pages() -> None:
    # GIVEN the page: THEN its numbered mitigation steps are the ones the drill times
    text = (RUNBOOKS / restore_drill.RUNBOOK).read_text(encoding="utf-8")
    assert "2. **Restore into a new table**" in text
    assert "3. **Compare and copy the good items back.**" in text
    assert restore_drill.STEPS["restore"].startswith("2. restore")
    assert restore_drill.STEPS["copy-back"].startswith("3. compare")
    # AND the page's budgets are the drill's
    for budget in restore_drill.BUDGETS.values():
        assert f"| {budget} |" in text


@pytest.mark.parametrize("step", ["preflight", "preview", "drift"])
def test_a_deploy_step_names_itself_when_its_parameter_file_is_unusable(
    step: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a parameter file that does not exist
    missing = tmp_path / "staging.json"
    # WHEN a read-only deploy step is asked to use it
    code = main(["deploy", step, "-e", "staging", "--parameters", str(missing)])
    # THEN it fails with the step's own name and the reason, before touching AWS
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"kyperian deploy {step}: ")
    assert "No such file or directory" in err


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--only", "scale-ecs,no-such-drill"], "unknown drill(s) ['no-such-drill']"),
        (["--attach", "--api-key", "k"], "--attach needs --redis-port"),
    ],
)
def test_the_drill_refuses_misuse_before_starting_anything(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN `kyperian ops drill` is given a drill it does not know, or --attach without the stack
    code = main(["ops", "drill", *argv])
    # THEN it exits 2 (usage) and says why, without starting a local stack
    assert code == 2
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    ("task", "module", "counts"),
    [
        (
            "exactly-once-drill",
            exactly_once_drill,
            lambda ok: exactly_once_drill.Counts(1, 1 if ok else 2, 0, 0.1, 0.2, {}),
        ),
        (
            "kill-switch-drill",
            kill_switch_drill,
            lambda ok: kill_switch_drill.KillSwitchCounts(40, 0 if ok else 1, 3, 0, 0, 0, 2),
        ),
    ],
)
def test_the_engine_drills_exit_by_their_counts(
    monkeypatch: pytest.MonkeyPatch, task: str, module: Any, counts: Callable[[bool], Any]
) -> None:
    for ok, code in ((True, 0), (False, 1)):
        # GIVEN the drill counted everything right (or one order too many)
        monkeypatch.setattr(module, "run", lambda ok=ok: counts(ok))
        # WHEN `kyperian ops <drill>` runs
        # THEN it exits 0 when every count holds and 1 otherwise
        assert main(["ops", task]) == code


def test_the_exactly_once_verdict_names_what_broke() -> None:
    # GIVEN one signal decided once and ordered once, but a symbol over the exposure cap
    counts = exactly_once_drill.Counts(1, 1, 0, max_exposure=0.25, cap=0.2, outcomes={})
    # THEN the drill fails and its line shows the exposure against the cap
    assert not counts.ok
    assert counts.line().endswith("combined_exposure=0.2500>cap=0.2000")
    # AND within the cap it prints the line `make drill` promises
    within = exactly_once_drill.Counts(1, 1, 0, max_exposure=0.2, cap=0.2, outcomes={})
    assert within.ok
    assert within.line() == (
        "decisions_per_signal=1 orders_per_signal=1 actionable_untraded=0 combined_exposure<=cap"
    )
