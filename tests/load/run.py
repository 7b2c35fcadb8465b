"""``make loadtest``: start the local stack on free ports (or use ``HOST=``), run locust, judge.

Local (no ``HOST``): ``kyperian up`` is launched as a user runs it, on free ports, its
emulator's timing is cleared after provisioning, locust runs the profile
(``tests/load/profile.py``) with the engine queue sampled, then the run waits for the
queue to drain, saves the emulator's timing and hands everything to ``tests/load/gate.py``.
Deployed (``HOST=https://...``, ``ENGINE_URL=...``): the same profile and gate; set
``QUEUE_URL`` (and AWS credentials) to sample the queue too. The machine's load average
is printed before and after, because figures from a shared machine mean little without it.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kyperian.client import api_key, engine_token
from kyperian.local.emulator import STATS_PATH
from kyperian.local.launcher import RunningStack, launch
from tests.load import gate

REPORTS = Path(os.environ.get("REPORTS", "reports"))
DRAIN_TIMEOUT = float(os.environ.get("DRAIN_TIMEOUT", "180"))


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by process ``root`` and every live descendant (Linux /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        parents[pid] = int(fields[1])
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += used.get(pid, 0.0)
        stack += [child for child, parent in parents.items() if parent == pid]
    return total


def cpu_seconds(log_dir: Path) -> dict[str, float]:
    """Per stack part (the supervisor's pid files), CPU seconds used so far."""
    return {
        pid_file.stem: _tree_cpu_seconds(int(pid_file.read_text()))
        for pid_file in sorted(log_dir.glob("*.pid"))
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _print_cpu(before: dict[str, float], after: dict[str, float], seconds: float) -> None:
    parts = [f"{name} {after[name] - before.get(name, 0.0):.0f}" for name in after]
    print(f"CPU seconds over the {seconds:.0f} s run: " + ", ".join(parts), flush=True)


def _emulator(url: str, method: str) -> dict[str, Any]:
    req = urllib.request.Request(f"{url}{STATS_PATH}", method=method)  # noqa: S310 - local
    with urllib.request.urlopen(req, timeout=30) as answer:  # noqa: S310 - local
        body: dict[str, Any] = json.loads(answer.read())
        return body


def _queue_depth(sqs: Any, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    values = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)["Attributes"]
    return sum(int(values[n]) for n in names)


def drain(queue_url: str, endpoint: str | None) -> float:
    """Seconds until the engine queue is empty (``DRAIN_TIMEOUT`` at most)."""
    import boto3

    sqs: Any = boto3.client("sqs", endpoint_url=endpoint)
    began = time.monotonic()
    while time.monotonic() - began < DRAIN_TIMEOUT:
        if _queue_depth(sqs, queue_url) == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - began


def _locust(host: str, env: dict[str, str]) -> None:
    argv = [
        *(sys.executable, "-m", "locust", "-f", "tests/load/locustfile.py", "--headless"),
        *("--host", host, "--only-summary", "--exit-code-on-error", "0"),
        *("--csv", str(REPORTS / "locust"), "--html", str(REPORTS / "locust.html")),
    ]
    subprocess.run(argv, env=env, check=True)  # noqa: S603 - fixed argv


def missing_credentials(host: str | None, engine: str | None) -> list[str]:
    """What a run against a deployment (``HOST=``) lacks to be answered at all.

    Without the webhook key every alert is refused (401) and the gate would judge a wall
    of errors; without the engine token no decision can be read. Locally the run makes
    both itself. The CLI's own lookup is used (variable, else the local stack's file).
    """
    if not host:
        return []
    missing = [] if api_key(None) else ["KYPERIAN_API_KEY (the webhook key)"]
    if engine and not engine_token():
        missing.append("KYPERIAN_ENGINE_TOKEN (to read decisions from ENGINE_URL)")
    return missing


def main() -> int:
    REPORTS.mkdir(parents=True, exist_ok=True)
    for old in ("requests.csv", "accepted.jsonl", "queue_depth.csv", "emulator.json"):
        (REPORTS / old).unlink(missing_ok=True)
    env = {**os.environ, "KYPERIAN_REPORTS_DIR": str(REPORTS)}
    host = os.environ.get("HOST")
    engine = os.environ.get("ENGINE_URL")
    queue_url = os.environ.get("QUEUE_URL")
    stack: RunningStack | None = None
    missing = missing_credentials(host, engine)
    if missing:
        print(f"HOST={host} needs " + " and ".join(missing), file=sys.stderr, flush=True)
        return 2
    if not host:
        key = os.environ.get("KYPERIAN_API_KEY") or f"loadtest-{secrets.token_hex(16)}"
        stack = launch(key, REPORTS / "stack-logs")
        os.environ["KYPERIAN_ENGINE_TOKEN"] = stack.engine_token  # the gate reads decisions
        host, engine = stack.gateway, engine or stack.engine
        local = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
        env.update(local, AWS_DEFAULT_REGION="us-east-1", KYPERIAN_API_KEY=key)
        env["AWS_ENDPOINT_URL_SQS"] = stack.aws_endpoint
        os.environ.update(local, AWS_DEFAULT_REGION="us-east-1")
        queue_url = queue_url or f"{stack.aws_endpoint}/000000000000/kyperian-local-signals"
        _emulator(stack.aws_endpoint, "POST")
    if queue_url:
        env["QUEUE_URL"] = queue_url
    try:
        print(f"load average before: {load_average()}", flush=True)
        cpu_before = cpu_seconds(stack.log_dir) if stack else {}
        after: dict[str, float] = {}
        began, locust_cpu = time.monotonic(), _children_cpu()
        _locust(host, env)
        after["locust"] = _children_cpu() - locust_cpu
        print(f"load average after:  {load_average()}", flush=True)
        if stack is not None:
            after.update(cpu_seconds(stack.log_dir))
        _print_cpu(cpu_before, after, time.monotonic() - began)
        if queue_url:
            sqs_endpoint = stack.aws_endpoint if stack else None
            print(f"queue drained in {drain(queue_url, sqs_endpoint):.1f} s", flush=True)
        if stack is not None:
            stats = _emulator(stack.aws_endpoint, "GET")
            (REPORTS / "emulator.json").write_text(json.dumps(stats))
        return gate.main(["--reports", str(REPORTS), *(["--engine", engine] if engine else [])])
    finally:
        if stack is not None:
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
