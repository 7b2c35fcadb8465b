"""The ``kyperian`` command: run the local stack and talk to it.

``up`` starts the whole system locally (what ``make run`` calls); ``send`` and ``replay``
post alerts to the webhook; ``signals`` and ``decisions`` read the engine's view.
Exit codes scripts can rely on: 0 success; 1 the request was refused or failed (a 4xx/5xx
answer, a rejected alert in a replay); 2 a usage error (argparse); 3 nothing answered at
the URL.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from kyperian import broker_commands
from kyperian.client import (
    Answer,
    Unreachable,
    api_key,
    engine_request,
    remember_key,
    remember_token,
    request,
    symbol_path,
)
from kyperian.local import stack
from kyperian.local.launcher import READY_LINE
from kyperian.local.stack import StackInfo
from kyperian.local.supervisor import StartupFailed, Supervisor
from kyperian.settings import get_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
DEFAULT_GATEWAY = "http://127.0.0.1:8080"
DEFAULT_ENGINE = "http://127.0.0.1:8000"
_ENGINE_CREDENTIAL_HELP = (
    "The engine token comes from KYPERIAN_ENGINE_TOKEN, or the file the local stack writes "
    "(.kyperian/engine-token; KYPERIAN_LOCAL_STATE_DIR moves it)."
)


# --- up -----------------------------------------------------------------------------------


def _up(args: argparse.Namespace) -> int:
    settings = get_settings()
    supervisor = Supervisor(say=lambda line: print(f"kyperian: {line}", flush=True))
    try:
        info = stack.start(settings, supervisor, Path(args.log_dir))
    except (StartupFailed, OSError) as exc:
        print(f"kyperian: could not start the stack: {exc}", file=sys.stderr)
        supervisor.stop()
        return EXIT_FAILED
    except KeyboardInterrupt:
        supervisor.stop()
        return 130
    # Kept for the CLI in any other shell, given or generated (owner-only files).
    key_file = remember_key(info.api_key)
    token_file = remember_token(info.engine_token)
    _print_banner(info, args.log_dir, key_file, token_file)
    try:
        code = supervisor.wait()
    finally:
        print("kyperian: stopping...", flush=True)
        supervisor.stop()
    return code


def _print_banner(info: StackInfo, log_dir: str, key_file: Path, token_file: Path) -> None:
    key_line = (
        f"API key (generated; set KYPERIAN_API_KEY to choose one): {info.api_key}"
        if info.key_generated
        else "API key: the value of KYPERIAN_API_KEY"
    )
    token_line = (
        f"engine token (generated; set KYPERIAN_ENGINE_TOKEN to choose one): {info.engine_token}"
        if info.token_generated
        else "engine token: the value of KYPERIAN_ENGINE_TOKEN"
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
        *info.extra_lines,
        key_line,
        token_line,
        f"kept for the CLI in    {key_file} and {token_file} (owner-only)",
        f"logs                   {log_dir}/",
        "try:",
        f"  curl -s -X POST {info.gateway_url}/webhook -H 'Content-Type: application/json' \\",
        f"       -d {shlex.quote(body)}",
        "  kyperian send AAPL buy 4h",
        READY_LINE,
    ]
    for line in lines:
        print(f"kyperian: {line}", flush=True)


# --- send / replay ------------------------------------------------------------------------


def _with_key(alert: dict[str, Any], key: str | None) -> dict[str, Any]:
    if key and "passphrase" not in alert:
        return {**alert, "passphrase": key}
    return alert


def _post_alert(base_url: str, alert: dict[str, Any]) -> Answer:
    route = "/webhook/mtf" if "signals" in alert else "/webhook"
    return request("POST", base_url.rstrip("/") + route, alert)


def _send(args: argparse.Namespace) -> int:
    alert: dict[str, Any] = {
        "symbol": args.symbol,
        "action": args.action,
        "timeframe": args.timeframe,
        "source": args.source,
    }
    for name in ("price", "confidence"):
        if getattr(args, name) is not None:
            alert[name] = getattr(args, name)
    answer = _post_alert(args.url, _with_key(alert, api_key(args.key)))
    print(json.dumps(answer.body, indent=2))
    return EXIT_OK if answer.ok else EXIT_FAILED


def _read_alerts(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, alert) per non-blank line; a string in place of an unreadable line."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                yield number, f"not JSON: {exc}"
                continue
            yield number, value if isinstance(value, dict) else "not a JSON object"


def _progress(done: int, total: int, counts: Counter[str]) -> None:
    width = 30
    filled = width * done // max(total, 1)
    bar = "#" * filled + "." * (width - filled)
    summary = " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
    print(f"\r[{bar}] {done}/{total} {summary}", end="", file=sys.stderr, flush=True)


def _replay(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"kyperian: no such file: {path}", file=sys.stderr)
        return EXIT_USAGE
    alerts = list(_read_alerts(path))
    key = api_key(args.key)
    counts: Counter[str] = Counter()
    symbols: set[str] = set()
    interval = 1.0 / args.rate if args.rate > 0 else 0.0
    next_at = time.monotonic()
    for done, (number, alert) in enumerate(alerts, start=1):
        time.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        if isinstance(alert, str):
            counts["unreadable"] += 1
            print(f"\nline {number}: {alert}", file=sys.stderr)
        else:
            answer = _post_alert(args.url, _with_key(alert, key))
            counts[_outcome(answer)] += 1
            if answer.ok:
                symbols.add(str(alert.get("symbol", "")).split(":")[-1].upper())
            else:
                print(f"\nline {number}: {answer.status} {_reason(answer)}", file=sys.stderr)
        _progress(done, len(alerts), counts)
    print(file=sys.stderr)
    _print_summary(counts, sorted(s for s in symbols if s), args)
    return EXIT_OK if counts["rejected"] + counts["unreadable"] == 0 else EXIT_FAILED


def _outcome(answer: Answer) -> str:
    if not answer.ok:
        return "rejected"
    entries = answer.body.get("signals") or [answer.body]
    return "duplicate" if all(e.get("duplicate") for e in entries) else "accepted"


def _reason(answer: Answer) -> str:
    details = answer.body.get("details") or []
    fields = "; ".join(f"{d.get('field')}: {d.get('reason')}" for d in details[:3])
    return f"{answer.body.get('error', '')} {fields or answer.body.get('message', '')}".strip()


def _print_summary(counts: Counter[str], symbols: list[str], args: argparse.Namespace) -> None:
    print(
        f"accepted={counts['accepted']} duplicates={counts['duplicate']} "
        f"rejected={counts['rejected']} unreadable={counts['unreadable']}"
    )
    if not symbols or args.no_decisions:
        return
    time.sleep(args.settle)
    print("decisions:")
    for symbol in symbols:
        try:
            answer = engine_request("GET", f"{args.engine}/decisions/{symbol_path(symbol)}")
        except Unreachable:
            print(f"  {symbol:<12} engine not reachable at {args.engine}")
            continue
        print(f"  {symbol:<12} {_decision_line(answer)}")


def _decision_line(answer: Answer) -> str:
    if not answer.ok:
        return f"none ({answer.status})"
    body = answer.body
    vetoes = ", ".join(v.get("code", "?") for v in body.get("vetoes", []))
    return (
        f"{body.get('action')} score={body.get('score', 0):+.2f} "
        f"size={body.get('position_size', 0):.4f}" + (f" vetoed: {vetoes}" if vetoes else "")
    )


# --- engine reads -------------------------------------------------------------------------


def _signals(args: argparse.Namespace) -> int:
    answer = engine_request("GET", f"{args.engine}/signals/{symbol_path(args.symbol)}")
    print(json.dumps(answer.body, indent=2))
    return EXIT_OK if answer.ok else EXIT_FAILED


def _decisions(args: argparse.Namespace) -> int:
    suffix = f"/history?limit={args.limit}" if args.history else ""
    answer = engine_request("GET", f"{args.engine}/decisions/{symbol_path(args.symbol)}{suffix}")
    if args.json or not answer.ok:
        print(json.dumps(answer.body, indent=2))
    elif args.history:
        for decision in answer.body.get("decisions", []):
            print(f"{decision.get('decided_at')}  {_decision_line(Answer(200, decision))}")
    else:
        print(f"{answer.body.get('decided_at')}  {_decision_line(answer)}")
    return EXIT_OK if answer.ok else EXIT_FAILED


# --- orders, positions, the kill switch (the engine's ledger) ------------------------------


def _show(answer: Answer, line: Callable[[dict[str, Any]], str], as_json: bool) -> int:
    """Print a list answer one line per item (or the JSON); exit 0 only on success."""
    body: Any = answer.body.get("value", answer.body)
    if as_json or not answer.ok:
        print(json.dumps(body, indent=2))
    else:
        for item in body if isinstance(body, list) else [body]:
            print(line(item))
    return EXIT_OK if answer.ok else EXIT_FAILED


def _order_line(order: dict[str, Any]) -> str:
    return (
        f"{order.get('client_order_id')}  {order.get('state'):16s} {order.get('side')} "
        f"{order.get('quantity')} {order.get('symbol')}  filled={order.get('filled_quantity')}"
        f"  decision={order.get('decision_id')}  {order.get('reason') or ''}"
    ).rstrip()


def _position_line(position: dict[str, Any]) -> str:
    return (
        f"{position.get('symbol'):8s} {position.get('quantity')} @ {position.get('average_price')}"
        f"  realized={position.get('realized_pnl')}  last={position.get('last_price')}"
    )


def _account_line(account: dict[str, Any]) -> str:
    state = f"HALTED ({account.get('halt_reason')})" if account.get("halted") else "trading"
    return (
        f"{account.get('venue')}#{account.get('account_id')}  cash={account.get('cash')} "
        f"equity={account.get('equity')} {account.get('currency')}  {state}  "
        f"auto_trading={account.get('auto_trading')} approval={account.get('approval_mode')}"
    )


def _positions(args: argparse.Namespace) -> int:
    answer = engine_request("GET", f"{args.engine}/positions")
    return _show(answer, _position_line, args.json)


def _orders(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode(
        {k: v for k, v in (("symbol", args.symbol), ("status", args.status)) if v}
    )
    answer = engine_request("GET", f"{args.engine}/orders{'?' + query if query else ''}")
    return _show(answer, _order_line, args.json)


def _account(args: argparse.Namespace) -> int:
    return _show(engine_request("GET", f"{args.engine}/account"), _account_line, args.json)


def _approve(args: argparse.Namespace) -> int:
    order_id = urllib.parse.quote(args.order_id, safe="")
    answer = engine_request("POST", f"{args.engine}/orders/{order_id}/approve")
    return _show(answer, _order_line, args.json)


def _reject(args: argparse.Namespace) -> int:
    order_id = urllib.parse.quote(args.order_id, safe="")
    answer = engine_request("POST", f"{args.engine}/orders/{order_id}/reject")
    return _show(answer, _order_line, args.json)


def _halt(args: argparse.Namespace) -> int:
    query = urllib.parse.urlencode({"flatten": str(args.flatten).lower(), "reason": args.reason})
    answer = engine_request("POST", f"{args.engine}/halt?{query}")
    if args.json or not answer.ok:
        print(json.dumps(answer.body, indent=2))
    else:
        print(_account_line(answer.body.get("account", {})))
        for order in answer.body.get("flatten_orders", []):
            print(f"  flatten: {_order_line(order)}")
    return EXIT_OK if answer.ok else EXIT_FAILED


def _resume(args: argparse.Namespace) -> int:
    return _show(engine_request("POST", f"{args.engine}/resume"), _account_line, args.json)


def _add_ledger_commands(commands: Any) -> None:
    """``positions``, ``orders``, ``account``, ``approve``, ``reject``, ``halt``, ``resume``."""
    made = {
        "positions": (_positions, "the ledger's open positions"),
        "orders": (_orders, "the ledger's orders (--symbol, --status)"),
        "account": (_account, "cash, equity, the kill switch and the trading mode"),
        "approve": (_approve, "send a pending order ID to the venue"),
        "reject": (_reject, "refuse a pending order ID"),
        "halt": (_halt, "stop every new order (--flatten also closes every position)"),
        "resume": (_resume, "let orders flow again"),
    }
    for name, (run, text) in made.items():
        command = commands.add_parser(
            name, help=text, description=f"{text[0].upper()}{text[1:]}. {_ENGINE_CREDENTIAL_HELP}"
        )
        if name in {"approve", "reject"}:
            command.add_argument("order_id", metavar="ID", help="the order's client order id")
        if name == "orders":
            command.add_argument("--symbol", help="only this symbol")
            command.add_argument("--status", help="only this state (PENDING_APPROVAL, FILLED...)")
        if name == "halt":
            command.add_argument("--flatten", action="store_true", help="close every position")
            command.add_argument("--reason", default="halted by an operator", help="why")
        command.add_argument("--json", action="store_true", help="print the raw JSON")
        command.add_argument("--engine", default=DEFAULT_ENGINE, help="engine URL")
        command.set_defaults(run=run)


# --- parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kyperian",
        description="Kyperian: TradingView alerts to multi-timeframe trading decisions.",
        epilog="Exit codes: 0 ok, 1 refused/failed, 2 usage error, 3 nothing answered.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        help="start the whole system locally, in the foreground (what `make run` calls)",
        description="Start the local stack on embedded defaults; settings come from "
        "KYPERIAN_* environment variables. Ctrl-C stops everything.",
    )
    up.add_argument("--log-dir", default=".kyperian/logs", help="where child logs go")
    up.set_defaults(run=_up)

    send = commands.add_parser(
        "send",
        help="post one alert to the webhook",
        description="Post one alert. The key comes from --key, KYPERIAN_API_KEY, or the "
        "file the local stack writes (.kyperian/api-key).",
    )
    send.add_argument("symbol", help="e.g. AAPL or NASDAQ:AAPL")
    send.add_argument("action", help="buy, sell, strong_buy, strong_sell, neutral, wait")
    send.add_argument("timeframe", help="15m 30m 1h 4h 1D 1W (or TradingView's 240, D, W...)")
    send.add_argument("--source", default="custom", help="indicator family (default custom)")
    send.add_argument("--price", type=float, help="price at the alert")
    send.add_argument("--confidence", type=float, help="0-100")
    _add_gateway_options(send)
    send.set_defaults(run=_send)

    replay = commands.add_parser(
        "replay",
        help="post a JSON-lines file of alerts at a chosen rate",
        description="Post each line of FILE (one alert per line; lines with a 'signals' "
        "array go to /webhook/mtf), then print accepted/rejected counts and each "
        "symbol's latest decision.",
    )
    replay.add_argument("file", help="JSON-lines file, e.g. examples/replay.jsonl")
    replay.add_argument("--rate", type=float, default=10.0, help="alerts per second (0 = max)")
    replay.add_argument("--engine", default=DEFAULT_ENGINE, help="engine URL for decisions")
    replay.add_argument("--settle", type=float, default=1.0, help="seconds before decisions")
    replay.add_argument("--no-decisions", action="store_true", help="skip the decision summary")
    _add_gateway_options(replay)
    replay.set_defaults(run=_replay)

    signals = commands.add_parser(
        "signals",
        help="a symbol's latest signal per timeframe",
        description=f"Read the engine's signals for SYMBOL. {_ENGINE_CREDENTIAL_HELP}",
    )
    signals.add_argument("symbol")
    signals.add_argument("--engine", default=DEFAULT_ENGINE, help="engine URL")
    signals.set_defaults(run=_signals)

    decisions = commands.add_parser(
        "decisions",
        help="a symbol's latest decision or history",
        description=f"Read the engine's decisions for SYMBOL. {_ENGINE_CREDENTIAL_HELP}",
    )
    decisions.add_argument("symbol")
    decisions.add_argument("--history", action="store_true", help="list past decisions")
    decisions.add_argument("--limit", type=int, default=20, help="history length (max 200)")
    decisions.add_argument("--json", action="store_true", help="print the raw JSON")
    decisions.add_argument("--engine", default=DEFAULT_ENGINE, help="engine URL")
    decisions.set_defaults(run=_decisions)
    _add_ledger_commands(commands)
    broker_commands.add_commands(commands, DEFAULT_ENGINE)

    # Deploy tooling (kyperian/ops) registers its own group; only the CLI imports ops.
    from kyperian.ops.cli import add_commands  # noqa: PLC0415

    add_commands(commands)
    return parser


def _add_gateway_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--url", default=DEFAULT_GATEWAY, help="webhook base URL")
    command.add_argument("--key", help="API key (default: KYPERIAN_API_KEY or the local key)")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except Unreachable as exc:
        print(f"kyperian: nothing answered at {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    raise SystemExit(main())
