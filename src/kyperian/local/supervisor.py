"""Start a set of child processes in order, wait until each is ready, stop them all cleanly.

Each child runs in its own process group, so Ctrl-C reaches only the supervisor, which
then stops the children in reverse order (SIGTERM, then SIGKILL after a grace period)
and leaves no orphan behind and no port held. A stateless child marked ``restart`` (the
engine, the gateway) is started again if it exits, as ECS replaces a stopped task; if a
stateful one (the emulator, Redis) dies, everything stops. Each child's pid is written
to ``<log dir>/<name>.pid`` while it runs.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

MAX_RESTARTS = 5
"""A child that keeps dying is a bug to look at, not to hide."""
GRACE_SECONDS = 35.0
"""Longer than the engine's own 30 s shutdown, so a clean stop is never cut short."""


@dataclass
class Child:
    """A process the stack needs, with how to tell it is ready."""

    name: str
    argv: Sequence[str]
    ready: Callable[[], bool]
    env: dict[str, str] = field(default_factory=dict)
    log: Path | None = None
    restart: bool = False
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    unset: frozenset[str] = frozenset()
    """Variables of this process's environment the child must not inherit."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex((host, port)) == 0


def http_ok(url: str) -> Callable[[], bool]:
    """A readiness check: ``url`` answers 2xx."""

    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - local URL
                return 200 <= int(response.status) < 300
        except OSError:
            return False

    return check


def redis_ping(port: int, host: str = "127.0.0.1") -> bool:
    """True when a Redis server on ``host:port`` answers PING with PONG."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def free_port(avoid: Collection[int] = ()) -> int:
    """A TCP port nobody listens on right now (the OS picks it), other than ``avoid``.

    ``avoid`` holds ports already promised to processes that have not bound them yet.
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port not in avoid:
            return port


class StartupFailed(RuntimeError):
    """A child exited or did not become ready in time."""


class Supervisor:
    """Runs children in order; ``stop()`` tears them down in reverse."""

    def __init__(self, say: Callable[[str], None] = print) -> None:
        self.children: list[Child] = []
        self._say = say
        self._stopping = False

    def start(self, child: Child, timeout: float = 60.0) -> None:
        """Start ``child`` and wait until it is ready (or raise ``StartupFailed``)."""
        self.children.append(child)
        self._launch(child, timeout)

    def _launch(self, child: Child, timeout: float) -> None:
        output = child.log.open("ab") if child.log else subprocess.DEVNULL
        child.process = subprocess.Popen(  # noqa: S603 - argv built by the stack, no shell
            list(child.argv),
            env={**{k: v for k, v in os.environ.items() if k not in child.unset}, **child.env},
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if child.log:
            child.log.with_suffix(".pid").write_text(f"{child.process.pid}\n")
        deadline = time.monotonic() + timeout
        while not child.ready():
            if child.process.poll() is not None:
                raise StartupFailed(f"{child.name} exited with code {child.process.returncode}")
            if time.monotonic() > deadline:
                raise StartupFailed(f"{child.name} was not ready after {timeout:.0f} s")
            time.sleep(0.1)

    def wait(self) -> int:
        """Block until SIGINT/SIGTERM or until a child exits; return the exit code to use."""
        received: list[int] = []

        def note(signum: int, _frame: FrameType | None) -> None:
            received.append(signum)

        previous = {s: signal.signal(s, note) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not received:
                for child in self.children:
                    exited = child.process is not None and child.process.poll() is not None
                    if exited and not self._revive(child):
                        return 1
                time.sleep(0.2)
            return 0
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _revive(self, child: Child) -> bool:
        """Restart a restartable child that exited; False when the stack must stop."""
        code = child.process.returncode if child.process is not None else None
        self._say(f"{child.name} exited (code {code})")
        if not child.restart or child.restarts >= MAX_RESTARTS:
            return False
        child.restarts += 1
        try:
            self._launch(child, timeout=60.0)
        except StartupFailed as exc:
            self._say(f"{child.name} could not be restarted: {exc}")
            return False
        self._say(f"restarted {child.name} (restart {child.restarts} of {MAX_RESTARTS})")
        return True

    def stop(self) -> None:
        """SIGTERM each child's process group, newest first; SIGKILL what outlives the grace."""
        if self._stopping:
            return
        self._stopping = True
        # A second Ctrl-C (or uv forwarding the first) must not cut the teardown short.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)
        for child in reversed(self.children):
            process = child.process
            if process is None or process.poll() is not None:
                continue
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=5)
            self._say(f"stopped {child.name}")


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:
        return


def python_module(module: str, *args: str) -> list[str]:
    """argv running ``module`` with this interpreter (the project's venv)."""
    return [sys.executable, "-m", module, *args]
