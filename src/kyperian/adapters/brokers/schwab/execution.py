"""The Schwab venue over schwab-py, serving ``/broker/tda`` (TD Ameritrade's API is gone).

schwab-py's client is built with ``client_from_access_functions`` on the token kept in Secrets
Manager (``token.py``): the token is refreshed there, by one refresher, before schwab-py's own
leeway would make it refresh on its own. Schwab has **no paper environment**: every order is
real, so ``submit_order`` refuses until ``live_orders`` is set, and ``caps.paper`` is false.

Schwab orders carry no client order id. The adapter remembers the id of each order it placed
and, after an uncertain submit, finds the order by what was asked (symbol, side, quantity,
type, price) among the account's orders entered since; two candidates are a question for a
person (``OperationalError``), never a guess. Short selling (``SELL_SHORT``) and brackets
(``TRIGGER``/``OCO``) are not wired: the capabilities say so, and sells only reduce longs.

===============================  ===========================================================
Schwab answer                    raised
===============================  ===========================================================
401, refresh ``invalid_grant``   ``OperationalError``: log in again (``kyperian broker login
                                 schwab``)
403                              ``OperationalError`` (the app or account may not trade)
400, 422                         ``InvalidOrderError`` with Schwab's message
404 on get/cancel                ``InvalidOrderError`` (unknown order)
429                              ``RateLimited`` (``Retry-After``, else 1 s)
5xx, timeout, connection error   ``TemporaryError``; on submit: reconcile with ``find_order``
===============================  ===========================================================
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar, Final

import httpx
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.httpx_client import OAuth2Client
from schwab.auth import TOKEN_ENDPOINT, client_from_access_functions
from schwab.client import Client

from kyperian.adapters.brokers.schwab.config import SchwabConfig
from kyperian.adapters.brokers.schwab.symbols import SchwabSymbols
from kyperian.adapters.brokers.schwab.token import LOGIN_HINT, SchwabTokenStore, StoredToken
from kyperian.domain.brokers import (
    Account,
    Broker,
    BrokerCapabilities,
    Order,
    OrderRequest,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    TimeInForce,
)
from kyperian.domain.errors import (
    InvalidOrderError,
    OperationalError,
    RateLimited,
    TemporaryError,
)

_ORDER_URL = re.compile(r"/accounts/[^/]+/orders/(\d+)")
_STATUS: Final[dict[str, OrderStatus]] = {
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "REPLACED": OrderStatus.CANCELED,
    "REJECTED": OrderStatus.REJECTED,
    "EXPIRED": OrderStatus.EXPIRED,
}
_DURATION: Final = {
    TimeInForce.DAY: "DAY",
    TimeInForce.GTC: "GOOD_TILL_CANCEL",
    TimeInForce.IOC: "IMMEDIATE_OR_CANCEL",
    TimeInForce.FOK: "FILL_OR_KILL",
}
_TIF_IN: Final = {v: k for k, v in _DURATION.items()}
_SEARCH_SLACK: Final = timedelta(minutes=2)


@dataclass(frozen=True)
class _Sent:
    """An order this process sent: what was asked, when, and its id once known."""

    request: OrderRequest
    venue_symbol: str
    sent_at: datetime


def _decimal(value: Any) -> Decimal | None:
    return None if value in (None, "") else Decimal(str(value))


def _time(value: Any) -> datetime:
    if not value:
        return datetime.now(UTC)
    return datetime.strptime(str(value), "%Y-%m-%dT%H:%M:%S%z")


class SchwabBroker(Broker):
    """One Schwab brokerage account. Every order is live."""

    name: ClassVar[str] = "schwab"
    capability_overrides: ClassVar[dict[str, bool]] = {
        "stop_orders": True,
        "stop_limit_orders": True,
        "extended_hours": True,
    }

    def __init__(
        self,
        config: SchwabConfig,
        store: SchwabTokenStore,
        clock: Callable[[], float] = time.time,
        on_token: Callable[[float], None] | None = None,
    ) -> None:
        self.config = config
        self.symbols = SchwabSymbols(config.symbol_overrides)
        self._store = store
        self._clock = clock
        self._on_token = on_token
        self._client: Client | None = None
        self._client_token: StoredToken | None = None
        self._account_hash: str | None = None
        self._sent: dict[str, _Sent] = {}
        self._ids: dict[str, str] = {}  # client order id -> Schwab order id
        self._never_sent: set[str] = set()  # refused here, before any request
        self._lock = threading.RLock()

    @property
    def caps(self) -> BrokerCapabilities:
        return self._class_caps  # paper stays False: Schwab has no paper environment

    # --- token and client -------------------------------------------------------------

    def token_days_left(self) -> float:
        """Days before the refresh token expires (a person must then log in again)."""
        return self._store.read().days_left(self._clock())

    def fresh_token(self) -> StoredToken:
        """The shared token, refreshed first if its access token is about to expire."""
        token = self._store.read()
        if self._due(token):
            token = self._store.read(fresh=True)  # another task may have refreshed it
            if self._due(token):
                token = self._store.write(self._refreshed(token), replacing=token)
        if self._on_token is not None:
            self._on_token(token.days_left(self._clock()))
        return token

    def _due(self, token: StoredToken) -> bool:
        return token.access_expires_at - self._clock() < self.config.refresh_margin_seconds

    def _refreshed(self, token: StoredToken) -> StoredToken:
        if token.days_left(self._clock()) <= 0:
            raise OperationalError(f"the Schwab refresh token has expired: {LOGIN_HINT}")
        oauth = OAuth2Client(
            self.config.app_key.get_secret_value(),
            client_secret=self.config.app_secret.get_secret_value(),
            timeout=self.config.timeout_seconds,
        )
        try:
            new = oauth.refresh_token(
                TOKEN_ENDPOINT, refresh_token=token.token.get("refresh_token")
            )
        except OAuthError as exc:
            raise OperationalError(
                f"Schwab refused the refresh token ({exc.error}): {LOGIN_HINT}"
            ) from None
        except httpx.HTTPError as exc:
            raise TemporaryError(f"Schwab token refresh failed: {type(exc).__name__}") from exc
        finally:
            oauth.close()
        return StoredToken(token.creation_timestamp, dict(new))

    def _schwab(self) -> Client:
        token = self.fresh_token()
        with self._lock:
            if self._client is None or self._client_token != token:
                self._client = client_from_access_functions(
                    self.config.app_key.get_secret_value(),
                    self.config.app_secret.get_secret_value(),
                    token_read_func=token.wrapped,
                    token_write_func=self._sdk_wrote,
                )
                self._client.set_timeout(self.config.timeout_seconds)
                self._client_token = token
            return self._client

    def _sdk_wrote(self, wrapped: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        """schwab-py refreshed by itself (only if ours fell behind): share what it got."""
        self._store.write(StoredToken(int(wrapped["creation_timestamp"]), dict(wrapped["token"])))

    def _call(
        self, what: str, call: Callable[[Client], httpx.Response], *, submitting: bool = False
    ) -> httpx.Response:
        unknown = (
            " (the order may have been placed: reconcile with find_order)" if submitting else ""
        )
        try:
            response = call(self._schwab())
        except httpx.TimeoutException as exc:
            raise TemporaryError(f"schwab timed out on {what}{unknown}") from exc
        except httpx.HTTPError as exc:
            raise TemporaryError(
                f"schwab unreachable on {what}: {type(exc).__name__}{unknown}"
            ) from exc
        except OAuthError as exc:
            raise OperationalError(
                f"Schwab refused the token ({exc.error}): {LOGIN_HINT}"
            ) from None
        if response.is_success:
            return response
        raise self._failure(what, response, unknown)

    @staticmethod
    def _failure(what: str, response: httpx.Response, unknown: str) -> Exception:
        status = response.status_code
        try:
            message = str(response.json().get("message") or response.text[:200])
        except ValueError:
            message = response.text[:200]
        if status == 401:
            return OperationalError(f"Schwab rejected the access token on {what}: {LOGIN_HINT}")
        if status == 403:
            return OperationalError(f"Schwab forbids {what} ({message}): check the app and account")
        if status == 429:
            retry_after = float(response.headers.get("Retry-After") or 1)
            return RateLimited(f"schwab rate limit on {what}", retry_after)
        if status in {400, 404, 422}:
            return InvalidOrderError(f"schwab refused {what}: {message}")
        return TemporaryError(f"schwab answered {status} on {what}: {message}{unknown}")

    def _hash(self) -> str:
        if self._account_hash is None:
            numbers = self._call("account numbers", lambda c: c.get_account_numbers()).json()
            wanted = self.config.account_number
            match = [n for n in numbers if wanted in (None, str(n.get("accountNumber")))]
            if not match:
                raise OperationalError(
                    "KYPERIAN_SCHWAB_ACCOUNT_NUMBER names no account linked to this login"
                )
            self._account_hash = str(match[0]["hashValue"])
        return self._account_hash

    # --- account and positions --------------------------------------------------------

    def _account_json(self, positions: bool) -> dict[str, Any]:
        account_hash = self._hash()
        fields = [Client.Account.Fields.POSITIONS] if positions else None
        body = self._call("account", lambda c: c.get_account(account_hash, fields=fields)).json()
        account: dict[str, Any] = body["securitiesAccount"]
        return account

    def account(self) -> Account:
        raw = self._account_json(positions=False)
        balances = raw.get("currentBalances", {})
        number = str(raw.get("accountNumber", ""))
        return Account(
            account_id=f"****{number[-4:]}" if number else "schwab",
            currency="USD",
            cash=Decimal(str(balances.get("cashBalance", 0))),
            equity=Decimal(str(balances.get("liquidationValue", 0))),
            buying_power=Decimal(
                str(balances.get("buyingPower", balances.get("cashAvailableForTrading", 0)))
            ),
        )

    def positions(self) -> list[Position]:
        raw = self._account_json(positions=True)
        return [self._position(p) for p in raw.get("positions", [])]

    def _position(self, raw: dict[str, Any]) -> Position:
        quantity = Decimal(str(raw.get("longQuantity", 0))) - Decimal(
            str(raw.get("shortQuantity", 0))
        )
        value = _decimal(raw.get("marketValue"))
        pnl = _decimal(raw.get("longOpenProfitLoss")) or _decimal(raw.get("shortOpenProfitLoss"))
        return Position(
            symbol=self.symbols.from_venue(str(raw["instrument"]["symbol"])),
            quantity=quantity,
            average_price=Decimal(str(raw.get("averagePrice", 0))),
            market_price=(abs(value) / abs(quantity)) if value is not None and quantity else None,
            market_value=value,
            unrealized_pnl=pnl,
        )

    # --- orders -----------------------------------------------------------------------

    def _submit(self, request: OrderRequest) -> Order:
        try:
            symbol = self._sendable(request)
        except InvalidOrderError:
            with self._lock:
                self._never_sent.add(request.client_order_id)
            raise
        spec = self.order_spec(request, symbol)
        account_hash = self._hash()
        sent_at = datetime.fromtimestamp(self._clock(), UTC)
        with self._lock:
            if request.client_order_id in self._sent:
                raise InvalidOrderError(f"client_order_id {request.client_order_id} already used")
            self._sent[request.client_order_id] = _Sent(request, symbol, sent_at)
        response = self._call("order", lambda c: c.place_order(account_hash, spec), submitting=True)
        match = _ORDER_URL.search(response.headers.get("Location", ""))
        if match is None:
            raise TemporaryError(
                "schwab accepted the order without its id: reconcile with find_order"
            )
        with self._lock:
            self._ids[request.client_order_id] = match[1]
        return self.get_order(match[1])

    def _sendable(self, request: OrderRequest) -> str:
        """The Schwab symbol, or the refusal that keeps the order from ever being sent."""
        if not self.config.live_orders:
            raise InvalidOrderError(
                "schwab has no paper environment: every order is real; orders are refused "
                "until KYPERIAN_SCHWAB_LIVE_ORDERS=true"
            )
        return self.symbols.to_venue(request.symbol)

    @staticmethod
    def order_spec(request: OrderRequest, symbol: str) -> dict[str, Any]:
        """Schwab's order JSON for a request (an equity, single-leg order)."""
        spec: dict[str, Any] = {
            "orderType": request.order_type.value,
            "session": "SEAMLESS" if request.extended_hours else "NORMAL",
            "duration": _DURATION[request.time_in_force],
            "orderStrategyType": "SINGLE",
            "orderLegCollection": [
                {
                    "instruction": request.side.value,
                    "quantity": int(request.quantity),
                    "instrument": {"symbol": symbol, "assetType": "EQUITY"},
                }
            ],
        }
        if request.limit_price is not None:
            spec["price"] = str(request.limit_price)
        if request.stop_price is not None:
            spec["stopPrice"] = str(request.stop_price)
        return spec

    def _order(self, raw: dict[str, Any]) -> Order:
        leg = (raw.get("orderLegCollection") or [{}])[0]
        order_id = str(raw["orderId"])
        with self._lock:
            client_id = next((c for c, o in self._ids.items() if o == order_id), None)
        status = _STATUS.get(str(raw.get("status")))
        filled = _decimal(raw.get("filledQuantity")) or Decimal(0)
        quantity = _decimal(raw.get("quantity")) or Decimal(0)
        if status is None:
            status = OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED
        return Order(
            order_id=order_id,
            client_order_id=client_id or f"schwab-{order_id}",
            symbol=self.symbols.from_venue(str(leg.get("instrument", {}).get("symbol", ""))),
            side=OrderSide.BUY
            if str(leg.get("instruction", "")).startswith("BUY")
            else OrderSide.SELL,
            order_type=OrderType.__members__.get(str(raw.get("orderType")), OrderType.MARKET),
            time_in_force=_TIF_IN.get(str(raw.get("duration")), TimeInForce.DAY),
            quantity=quantity,
            filled_quantity=filled,
            average_fill_price=self._average(raw),
            limit_price=_decimal(raw.get("price")),
            stop_price=_decimal(raw.get("stopPrice")),
            status=status,
            submitted_at=_time(raw.get("enteredTime")),
            updated_at=_time(raw.get("closeTime") or raw.get("enteredTime")),
            reason=raw.get("statusDescription")
            or (
                f"schwab status {raw.get('status')}"
                if not status.is_open and status is not OrderStatus.FILLED
                else None
            ),
        )

    @staticmethod
    def _average(raw: dict[str, Any]) -> Decimal | None:
        legs = [
            leg
            for activity in raw.get("orderActivityCollection") or []
            for leg in activity.get("executionLegs") or []
        ]
        quantity = sum((Decimal(str(leg["quantity"])) for leg in legs), Decimal(0))
        if not quantity:
            return None
        value = sum(
            (Decimal(str(leg["quantity"])) * Decimal(str(leg["price"])) for leg in legs), Decimal(0)
        )
        return value / quantity

    def get_order(self, order_id: str) -> Order:
        account_hash = self._hash()
        body = self._call("order lookup", lambda c: c.get_order(order_id, account_hash)).json()
        return self._order(body)

    def find_order(self, client_order_id: str) -> Order | None:
        """The order placed for ``client_order_id``: remembered, else searched (module doc)."""
        with self._lock:
            known = self._ids.get(client_order_id)
            sent = self._sent.get(client_order_id)
            refused_here = client_order_id in self._never_sent
        if known is not None:
            return self.get_order(known)
        if refused_here:
            return None
        if sent is None:
            raise OperationalError(
                f"schwab orders carry no client id and {client_order_id} was not sent by this "
                "process: check the account's orders before deciding again"
            )
        candidates = [
            o for o in self._orders_since(sent.sent_at - _SEARCH_SLACK) if self._matches(o, sent)
        ]
        if len(candidates) > 1:
            raise OperationalError(
                f"{len(candidates)} schwab orders match {client_order_id}: a person must decide"
            )
        if not candidates:
            return None
        with self._lock:
            self._ids[client_order_id] = candidates[0].order_id
        return self.get_order(candidates[0].order_id)

    def _matches(self, order: Order, sent: _Sent) -> bool:
        request = sent.request
        with self._lock:
            taken = order.order_id in self._ids.values()
        return (
            not taken
            and order.symbol == self.symbols.from_venue(sent.venue_symbol)
            and order.side is request.side
            and order.quantity == request.quantity
            and order.order_type is request.order_type
            and order.limit_price == request.limit_price
        )

    def _orders_since(self, start: datetime) -> list[Order]:
        account_hash = self._hash()
        end = datetime.fromtimestamp(self._clock(), UTC) + timedelta(minutes=1)
        body = self._call(
            "orders",
            lambda c: c.get_orders_for_account(
                account_hash, from_entered_datetime=start, to_entered_datetime=end
            ),
        ).json()
        return [self._order(o) for o in body]

    def cancel_order(self, order_id: str) -> Order:
        account_hash = self._hash()
        self._call("cancel", lambda c: c.cancel_order(order_id, account_hash))
        return self.get_order(order_id)

    def open_orders(self) -> list[Order]:
        start = datetime.fromtimestamp(self._clock(), UTC) - timedelta(
            days=59
        )  # Schwab searches at most 60 days back
        return [o for o in self._orders_since(start) if o.status.is_open]

    def check(self) -> None:
        """The token is usable and the account reachable."""
        self._hash()
