"""``kyperian positions|orders|account|approve|reject|halt|resume`` against a real engine.

The engine app (``create_app``) is served by uvicorn on a free port over the ledger in
moto; the CLI runs as an operator runs it (``cli.main``), sending the token from
``KYPERIAN_ENGINE_TOKEN``. What it prints and its exit code are asserted.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from kyperian import cli
from kyperian.domain.decisions import Decision
from kyperian.domain.models import Action
from kyperian.engine.main import create_app
from kyperian.engine.services import EngineServices
from kyperian.execution import OrderExecutor
from kyperian.settings import Settings
from tests.engine_auth import ENGINE_TOKEN
from tests.integration.execution.conftest import LedgerAws
from tests.signal_factory import NOW
from tests.unit.engine.conftest import build_engine

pytestmark = pytest.mark.integration


def _decision(decision_id: str) -> Decision:
    return Decision(
        decision_id=decision_id, symbol="AAPL", action=Action.BUY, score=0.5, confidence=0.8,
        position_size=0.05, price=100.0, decided_at=NOW,
    )  # fmt: skip


@pytest.fixture
def executor(ledger_aws: LedgerAws) -> OrderExecutor:
    return ledger_aws.executor(ledger_aws.new_account(), approval=True, approval_seconds=600)


@pytest.fixture
def engine_url(
    executor: OrderExecutor, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[str]:
    """The engine API on a free port; the CLI holds the token (and no token file)."""
    engine = build_engine()
    services = EngineServices(
        settings=Settings(environment="test", engine_token=ENGINE_TOKEN, approval_mode=True),
        rules=engine.processor.rules, cache=engine.cache, decisions=engine.decisions,
        history=engine.history, circuit=engine.circuit, broker=engine.broker,
        processor=engine.processor, worker=None, ledger=executor.ledger, execution=executor,
    )  # fmt: skip
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    monkeypatch.setenv("KYPERIAN_ENGINE_TOKEN", ENGINE_TOKEN)
    monkeypatch.setenv("KYPERIAN_LOCAL_STATE_DIR", str(tmp_path))
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and what the command printed (the served engine's own log lines, one
    compact JSON object each on the same stdout, left out)."""
    capsys.readouterr()
    code = cli.main(list(argv))
    out = capsys.readouterr().out.splitlines(keepends=True)
    return code, "".join(line for line in out if not line.startswith('{"'))


def test_orders_approve_and_positions_with_a_conflict_on_a_second_approval(
    engine_url: str, executor: OrderExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an order waiting for approval
    executor.execute(_decision("a" * 32))

    # WHEN the operator lists pending orders, approves it, and approves it again
    listed = _run(capsys, "orders", "--status", "PENDING_APPROVAL", "--engine", engine_url)
    approved = _run(capsys, "approve", "a" * 32, "--engine", engine_url)
    again = _run(capsys, "approve", "a" * 32, "--engine", engine_url)
    positions = _run(capsys, "positions", "--engine", engine_url)
    account = _run(capsys, "account", "--engine", engine_url)

    # THEN the listing names the order and its decision, the approval fills it (exit 0),
    # the second approval is a conflict naming the state (exit 1), and the position shows
    assert listed[0] == 0
    assert listed[1].startswith(f"{'a' * 32}  PENDING_APPROVAL")
    assert f"decision={'a' * 32}" in listed[1]
    assert approved[0] == 0
    assert approved[1].split()[:2] == ["a" * 32, "FILLED"]
    assert again[0] == 1
    assert "is FILLED, not waiting for approval" in again[1]
    assert positions == (
        0,
        "AAPL     50.000000 @ 100.0000000000  realized=0  last=100.0000000000\n",
    )
    assert account[0] == 0
    assert "cash=95000" in account[1]
    assert " trading " in account[1]
    assert "approval=True" in account[1]


def test_reject_refuses_a_pending_order_and_an_unknown_id_fails(
    engine_url: str, executor: OrderExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a pending order  WHEN rejected, then an unknown id rejected
    executor.execute(_decision("b" * 32))
    rejected = _run(capsys, "reject", "b" * 32, "--engine", engine_url)
    unknown = _run(capsys, "reject", "nope", "--engine", engine_url)
    orders = _run(capsys, "orders", "--json", "--engine", engine_url)

    # THEN the first is REJECTED (exit 0), the unknown one a 404 naming it (exit 1)
    assert rejected[0] == 0
    assert rejected[1].split()[:2] == ["b" * 32, "REJECTED"]
    assert unknown[0] == 1
    assert "no order nope" in unknown[1]
    assert '"state": "REJECTED"' in orders[1]
    assert executor.venue.find_order("b" * 32) is None


def test_halt_with_flatten_then_resume(
    engine_url: str, executor: OrderExecutor, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a filled AAPL position
    executor.execute(_decision("c" * 32))
    executor.approve("c" * 32)

    # WHEN the operator halts with flatten, reads the account, then resumes
    halted = _run(capsys, "halt", "--flatten", "--reason", "cli test", "--engine", engine_url)
    account = _run(capsys, "account", "--engine", engine_url)
    positions = _run(capsys, "positions", "--engine", engine_url)
    resumed = _run(capsys, "resume", "--engine", engine_url)

    # THEN halt prints the halted account and its closing order, positions are flat,
    # and resume prints the account trading again; every command exits 0
    assert halted[0] == 0
    first, flatten = halted[1].splitlines()
    assert "HALTED (cli test)" in first
    assert flatten.startswith("  flatten: flat-")
    assert " FILLED " in flatten
    assert "SELL 50.000000 AAPL" in flatten
    assert "HALTED (cli test)" in account[1]
    assert positions[0] == 0
    assert positions[1] == ""  # nothing open
    assert resumed[0] == 0
    assert " trading " in resumed[1]
    assert executor.book().account.halted is False


def test_without_a_token_every_ledger_command_is_refused_and_changes_nothing(
    engine_url: str,
    executor: OrderExecutor,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN a pending order and a CLI with no token (no variable, no token file)
    executor.execute(_decision("d" * 32))
    monkeypatch.delenv("KYPERIAN_ENGINE_TOKEN")

    # WHEN each command is run
    answers = {
        name: _run(capsys, *argv, "--engine", engine_url)
        for name, argv in {
            "positions": ["positions"],
            "orders": ["orders"],
            "account": ["account"],
            "approve": ["approve", "d" * 32],
            "reject": ["reject", "d" * 32],
            "halt": ["halt", "--flatten"],
            "resume": ["resume"],
        }.items()
    }

    # THEN each exits 1 with the refusal, and the order still waits, the account trades
    for name, (code, out) in answers.items():
        assert code == 1, name
        assert (
            "authentication" in out.lower() or "401" in out or "not authenticated" in out.lower()
        ), (
            name,
            out,
        )
    waiting = executor.ledger.order(executor.account, "d" * 32)
    assert waiting is not None
    assert waiting.state.value == "PENDING_APPROVAL"
    assert executor.book().account.halted is False


def test_an_engine_that_does_not_answer_is_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN no engine on a port  WHEN asked for positions  THEN exit 3 and a sentence
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = cli.main(["positions", "--engine", f"http://127.0.0.1:{port}"])
    printed = capsys.readouterr()
    assert code == 3
    assert "is the stack running" in printed.out + printed.err
