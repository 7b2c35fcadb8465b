"""``kyperian broker status [VENUE]`` and ``kyperian broker login schwab``.

``status`` reads the engine's ``/broker/<venue>/status`` (authenticated as every engine call
is) and prints one line per venue. ``login schwab`` is the one-time (then weekly) browser
login Schwab requires: it prints Schwab's authorization URL, takes the URL the browser was
sent back to, exchanges it for a token with schwab-py and stores the token in the
environment's token secret, where every engine task reads it. It runs on an operator's
machine with AWS credentials for the environment; nothing is written locally.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kyperian.client import Answer, engine_request
from kyperian.domain.errors import KyperianError, OperationalError
from kyperian.settings import get_settings

VENUES = ("alpaca", "ibkr", "tda")


def add_commands(commands: Any, default_engine: str) -> None:
    """Register ``broker status`` and ``broker login`` on the top-level parser."""
    broker = commands.add_parser("broker", help="live venues: status, Schwab login")
    actions = broker.add_subparsers(dest="broker_command", required=True, metavar="ACTION")

    status = actions.add_parser(
        "status",
        help="configured, connected, paper or live, account summary",
        description="Ask the engine about one venue or all (alpaca, ibkr, tda = Schwab).",
    )
    status.add_argument("venue", nargs="?", choices=VENUES, help="default: every venue")
    status.add_argument("--engine", default=default_engine, help="engine URL")
    status.add_argument("--json", action="store_true", help="print the raw JSON")
    status.set_defaults(run=_status)

    login = actions.add_parser(
        "login",
        help="log in to Schwab in a browser and store the token (every 7 days)",
        description="Print Schwab's login URL, read back the URL the browser lands on, and "
        "store the OAuth token in the environment's token secret (KYPERIAN_ENVIRONMENT, "
        "KYPERIAN_SCHWAB_TOKEN_SECRET_ID). The app key and secret come from "
        "KYPERIAN_BROKER_CREDENTIALS or the environment's broker-credentials secret.",
    )
    login.add_argument("venue", choices=["schwab"], help="only Schwab needs a browser login")
    login.set_defaults(run=_login)


# --- status -------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> int:
    venues = [args.venue] if args.venue else list(VENUES)
    failed = False
    for venue in venues:
        answer = engine_request("GET", f"{args.engine.rstrip('/')}/broker/{venue}/status")
        if args.json:
            print(json.dumps({venue: answer.body}, indent=2))
        else:
            print(status_line(venue, answer))
        failed |= bool(args.venue) and not (answer.ok and answer.body.get("connected"))
    return 1 if failed else 0


def status_line(venue: str, answer: Answer) -> str:
    """One line: the venue, then its state or what is wrong."""
    body = answer.body
    if not answer.ok:
        return f"{venue:<7} {answer.status}: {body.get('detail', body)}"
    mode = "paper" if body.get("paper") else "LIVE"
    state = "connected" if body.get("connected") else f"NOT connected ({body.get('problem')})"
    parts = [f"{venue:<7}", mode, state]
    if body.get("served_by") and body["served_by"] != venue:
        parts.append(f"served by {body['served_by']}")
    if body.get("executing"):
        parts.append("EXECUTING decisions")
    account = body.get("account") or {}
    if account:
        parts.append(f"equity={account.get('equity')} buying_power={account.get('buying_power')}")
    if body.get("refresh_token_days_left") is not None:
        parts.append(f"login expires in {body['refresh_token_days_left']} days")
    if not body.get("live_orders", True):
        parts.append("orders off")
    return "  ".join(parts)


# --- login --------------------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    try:
        expires = login_schwab(get_settings(), ask=input, say=print)
    except (ValueError, KeyError, KyperianError) as exc:
        print(f"kyperian: Schwab login failed: {exc}", file=sys.stderr)
        return 1
    print(f"Schwab login stored; it expires {expires:%Y-%m-%d %H:%M} UTC: log in again before.")
    return 0


def login_schwab(
    settings: Any,
    ask: Callable[[str], str],
    say: Callable[[str], None],
    secrets: Any = None,
    clock: Callable[[], float] = time.time,
) -> datetime:
    """Run the manual OAuth flow and store the token; returns when the login expires.

    Raises ``OperationalError`` when the app's credentials are missing, ``ValueError`` when
    the pasted URL is not Schwab's redirect for this login.
    """
    from schwab.auth import (  # noqa: PLC0415 - the SDK is needed by this command only
        client_from_received_url,
        get_auth_context,
    )

    from kyperian.adapters.aws.clients import make_client  # noqa: PLC0415
    from kyperian.adapters.brokers.schwab.config import SchwabConfig  # noqa: PLC0415
    from kyperian.adapters.brokers.schwab.token import (  # noqa: PLC0415
        REFRESH_TOKEN_LIFETIME_SECONDS,
        SchwabTokenStore,
        StoredToken,
    )

    secrets = secrets or make_client("secretsmanager", settings)
    config = SchwabConfig.from_section(
        _schwab_section(settings, secrets), token_secret_id=settings.schwab_token_secret_id
    )
    store = SchwabTokenStore(config.token_secret_id, secrets, clock=clock)
    app_key = config.app_key.get_secret_value()
    context = get_auth_context(app_key, config.callback_url)
    say("Open this URL, log in to Schwab and approve the app:")
    say(context.authorization_url)
    received = ask("Paste the whole URL the browser was sent to: ").strip()
    if not received.startswith(config.callback_url):
        raise ValueError(f"that URL does not start with the app's callback {config.callback_url}")

    def write(wrapped: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        store.write(StoredToken(int(wrapped["creation_timestamp"]), dict(wrapped["token"])))

    client_from_received_url(
        app_key, config.app_secret.get_secret_value(), context, received, write
    )
    say(f"token stored in {config.token_secret_id}")
    created = store.read(fresh=True).creation_timestamp
    return datetime.fromtimestamp(created + REFRESH_TOKEN_LIFETIME_SECONDS, UTC)


def _schwab_section(settings: Any, secrets: Any) -> dict[str, Any]:
    """The ``schwab`` credentials: from the environment variable, else the secret itself."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415
    from pydantic import SecretStr  # noqa: PLC0415

    from kyperian.adapters.brokers.credentials import venue_section  # noqa: PLC0415

    section = venue_section(settings.broker_credentials, "schwab")
    if section is None:
        secret_id = f"/kyperian/{settings.environment}/broker/credentials"
        try:
            text = secrets.get_secret_value(SecretId=secret_id)["SecretString"]
        except (ClientError, BotoCoreError, KeyError) as exc:
            raise OperationalError(f"cannot read {secret_id}: {type(exc).__name__}") from None
        section = venue_section(SecretStr(text), "schwab")
    if section is None:
        raise OperationalError(
            "no 'schwab' section in KYPERIAN_BROKER_CREDENTIALS or the broker-credentials "
            "secret: add app_key, app_secret and callback_url (docs/brokers.md)"
        )
    return section
