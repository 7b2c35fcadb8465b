"""Run ``kyperian up`` as a child process on free ports, as a user would, and stop it cleanly.

Used by the end-to-end tests and the runbook drills: both need the whole local stack
started the way ``make run`` starts it, on ports that do not clash with anything else,
and stopped with Ctrl-C (SIGINT) so the stop path is exercised too.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from kyperian.local.supervisor import free_port

READY_LINE = "ready; Ctrl-C stops everything"
"""The last line of ``kyperian up``'s banner: the stack is serving."""


class StackDidNotStart(RuntimeError):
    """``kyperian up`` exited or did not print its ready line in time."""


@dataclass
class RunningStack:
    """A ``kyperian up`` child process and how to reach what it started."""

    process: subprocess.Popen[str]
    aws_port: int
    gateway_port: int
    engine_port: int
    api_key: str
    log_dir: Path
    engine_token: str = ""
    state_dir: Path | None = None
    """Where this stack's ``kyperian up`` kept its key and token files (not the user's)."""
    output: list[str] = field(default_factory=list)

    @property
    def aws_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"

    @property
    def gateway(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def engine(self) -> str:
        return f"http://127.0.0.1:{self.engine_port}"

    @property
    def redis_port(self) -> int:
        """The redis-server port the stack chose (from its banner)."""
        for line in self.output:
            match = re.search(r"redis-server\s+127\.0\.0\.1:(\d+)", line)
            if match:
                return int(match.group(1))
        raise StackDidNotStart("the banner named no redis-server port")

    def pids(self) -> dict[str, int]:
        """The children's pids, from the ``<name>.pid`` files the supervisor writes."""
        return {p.stem: int(p.read_text()) for p in self.log_dir.glob("*.pid")}

    def stop(self, timeout: float = 60.0) -> int:
        """Ctrl-C, then wait; returns the exit code (killed if it outlives ``timeout``)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                return self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def launch(api_key: str, log_dir: Path, start_timeout: float = 90.0) -> RunningStack:
    """Start ``kyperian up`` on three fresh ports and wait for its ready line.

    It gets a fresh engine token and its own state directory, so the user's
    ``.kyperian/api-key`` and ``engine-token`` are left alone.
    """
    ports: list[int] = []
    for _ in range(3):
        ports.append(free_port(avoid=ports))
    engine_token = secrets.token_urlsafe(30)
    state_dir = log_dir / "state"
    env = {
        **os.environ,
        "KYPERIAN_API_KEY": api_key,
        "KYPERIAN_ENGINE_TOKEN": engine_token,
        "KYPERIAN_LOCAL_STATE_DIR": str(state_dir),
        "KYPERIAN_LOCAL_AWS_PORT": str(ports[0]),
        "KYPERIAN_GATEWAY_PORT": str(ports[1]),
        "KYPERIAN_ENGINE_PORT": str(ports[2]),
        "POWERTOOLS_METRICS_DISABLED": "true",
    }
    process = subprocess.Popen(  # noqa: S603 - our own CLI, fixed argv
        [sys.executable, "-m", "kyperian.cli", "up", "--log-dir", str(log_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    stack = RunningStack(
        process, ports[0], ports[1], ports[2], api_key, log_dir, engine_token, state_dir
    )
    try:
        _wait_for_ready(stack, start_timeout)
    except StackDidNotStart:
        stack.stop()
        raise
    return stack


def _wait_for_ready(stack: RunningStack, timeout: float) -> None:
    if stack.process.stdout is None:
        raise StackDidNotStart("the stack's output is not captured")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = stack.process.stdout.readline()
        if not line and stack.process.poll() is not None:
            break
        stack.output.append(line)
        if READY_LINE in line:
            return
    raise StackDidNotStart("kyperian up did not start:\n" + "".join(stack.output))


@contextmanager
def running_stack(api_key: str, log_dir: Path) -> Iterator[RunningStack]:
    """``launch`` for the length of a ``with`` block; always stopped at the end."""
    stack = launch(api_key, log_dir)
    try:
        yield stack
    finally:
        stack.stop()
