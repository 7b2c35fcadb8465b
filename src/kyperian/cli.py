"""The ``kyperian`` command: run the local stack and talk to it.

``kyperian up`` starts the whole system locally (what ``make run`` calls). Exit codes
scripts can rely on: 0 success, 1 a runtime failure (a child died, a request failed),
2 a usage error.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from kyperian.local import stack
from kyperian.local.stack import StackInfo
from kyperian.local.supervisor import StartupFailed, Supervisor
from kyperian.settings import get_settings


def _up(args: argparse.Namespace) -> int:
    settings = get_settings()
    supervisor = Supervisor(say=lambda line: print(f"kyperian: {line}", flush=True))
    try:
        info = stack.start(settings, supervisor, Path(args.log_dir))
    except (StartupFailed, OSError) as exc:
        print(f"kyperian: could not start the stack: {exc}", file=sys.stderr)
        supervisor.stop()
        return 1
    except KeyboardInterrupt:
        supervisor.stop()
        return 130
    _print_banner(info, args.log_dir)
    try:
        code = supervisor.wait()
    finally:
        print("kyperian: stopping...", flush=True)
        supervisor.stop()
    return code


def _print_banner(info: StackInfo, log_dir: str) -> None:
    key_line = (
        f"API key (generated; set KYPERIAN_API_KEY to choose one): {info.api_key}"
        if info.key_generated
        else "API key: the value of KYPERIAN_API_KEY"
    )
    body = (
        '{"passphrase":"KEY","symbol":"NASDAQ:AAPL","action":"buy",'
        '"source":"luxalgo","timeframe":"240","price":189.42,"confidence":85}'
    )
    if info.key_generated:
        body = body.replace("KEY", info.api_key)
    lines = [
        f"AWS emulator (moto)    {info.aws_endpoint}",
        f"webhook gateway        {info.gateway_url}",
        "                       POST /webhook, POST /webhook/mtf, GET /health",
        key_line,
        f"logs                   {log_dir}/",
        "try:",
        f"  curl -s -X POST {info.gateway_url}/webhook -H 'Content-Type: application/json' \\",
        f"       -d {shlex.quote(body)}",
        "ready; Ctrl-C stops everything",
    ]
    for line in lines:
        print(f"kyperian: {line}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kyperian",
        description="Kyperian: TradingView alerts to multi-timeframe trading decisions.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start the whole system locally (AWS emulator, gateway) in the foreground",
        description="Start the local stack on embedded defaults; settings come from "
        "KYPERIAN_* environment variables. Ctrl-C stops everything.",
    )
    up.add_argument("--log-dir", default=".kyperian/logs", help="where child logs go")
    up.set_defaults(run=_up)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
