"""The Interactive Brokers venue over ib_async, connected to an IB Gateway.

ib_async is asyncio code bound to one event loop, while the engine calls brokers from its
worker and API threads. The adapter therefore owns one thread running one loop with one
``IB`` connection, and every call is a coroutine run there with a timeout. When the Gateway
drops the connection (its nightly restart, a network blip) the loop reconnects by itself,
waiting 1, 2, 4 ... up to ``reconnect_max_seconds`` between tries; meanwhile ``check`` and
every call raise ``TemporaryError`` saying so.

A submit is sent once (``placeOrder``) and then watched until IB acknowledges it; if no
acknowledgement comes within the timeout the outcome is unknown, and ``find_order`` looks the
order up by ``orderRef`` (the client order id) among this session's, the open and the
completed orders. IB's rejections (an ``Inactive`` or cancelled order with its log message)
become ``InvalidOrderError``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ClassVar, Final, TypeVar

from ib_async import IB, Contract, Crypto, Stock, Trade

from kyperian.adapters.brokers.ibkr.config import IbkrConfig
from kyperian.adapters.brokers.ibkr.mapping import (
    account_from_summary,
    ib_order,
    order_from_trade,
    position_from_ib,
)
from kyperian.adapters.brokers.ibkr.symbols import IbkrSymbols
from kyperian.domain.brokers import (
    Account,
    Broker,
    BrokerCapabilities,
    Order,
    OrderRequest,
    OrderStatus,
    Position,
)
from kyperian.domain.errors import InvalidOrderError, OperationalError, TemporaryError

T = TypeVar("T")
_ACKNOWLEDGED: Final = frozenset({"PreSubmitted", "Submitted", "Filled"})
_POLL_SECONDS: Final = 0.05


async def _pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the adapter closes."""
    try:
        await asyncio.wait_for(stopping.wait(), timeout=seconds)
    except TimeoutError:
        return


async def keep_connected(
    connect: Callable[[], Awaitable[None]],
    is_connected: Callable[[], bool],
    stopping: asyncio.Event,
    max_wait: float,
    sleep: Callable[[float], Awaitable[Any]] | None = None,
    on_failure: Callable[[Exception, float], None] | None = None,
) -> None:
    """Connect, and connect again whenever the connection is lost, with doubling waits."""
    if sleep is None:

        async def sleep(seconds: float) -> None:
            await _pause(stopping, seconds)

    wait = 1.0
    while not stopping.is_set():
        if is_connected():
            wait = 1.0
            await sleep(1.0)
            continue
        try:
            await connect()
            wait = 1.0
        except (OSError, TimeoutError, ConnectionError) as exc:
            if on_failure is not None:
                on_failure(exc, wait)
            await sleep(wait)
            wait = min(max_wait, wait * 2)


class IbkrBroker(Broker):
    """One IB account through one Gateway connection (paper or live by port)."""

    name: ClassVar[str] = "ibkr"
    capability_overrides: ClassVar[dict[str, bool]] = {
        "stop_orders": True,
        "stop_limit_orders": True,
        "short_selling": True,
        "extended_hours": True,
        "crypto": True,
    }

    def __init__(self, config: IbkrConfig, ib: IB | None = None, start: bool = True) -> None:
        self.config = config
        self.symbols = IbkrSymbols(config.symbol_overrides)
        self.ib = ib or IB()
        self.last_error: str | None = None
        self._loop = asyncio.new_event_loop()
        self._stopping = asyncio.Event()
        self._thread = threading.Thread(target=self._run, name="ibkr-gateway", daemon=True)
        if start:
            self._thread.start()

    @property
    def caps(self) -> BrokerCapabilities:
        return self._class_caps.model_copy(update={"paper": self.config.paper})

    # --- the loop thread --------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(
            keep_connected(
                self._connect,
                self.ib.isConnected,
                self._stopping,
                self.config.reconnect_max_seconds,
                on_failure=self._failed,
            )
        )

    async def _connect(self) -> None:
        await self.ib.connectAsync(
            self.config.host,
            self.config.port,
            clientId=self.config.client_id,
            timeout=self.config.timeout_seconds,
            account=self.config.account or "",
        )
        self.last_error = None

    def _failed(self, exc: Exception, wait: float) -> None:
        self.last_error = f"{type(exc).__name__}: {exc} (next try in {wait:.0f} s)"

    def _on_loop(self, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run a coroutine on the connection's loop and wait for it, within the timeout."""
        if not self.ib.isConnected():
            raise TemporaryError(
                f"not connected to the IB Gateway at {self.config.host}:{self.config.port}"
                + (f" ({self.last_error})" if self.last_error else "")
            )
        future = asyncio.run_coroutine_threadsafe(make(), self._loop)
        try:
            return future.result(timeout=self.config.timeout_seconds * 2)
        except TimeoutError as exc:
            future.cancel()
            raise TemporaryError("the IB Gateway did not answer in time") from exc

    def close(self) -> None:
        """Disconnect and stop the loop thread."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
            self._loop.call_soon_threadsafe(self.ib.disconnect)
            self._thread.join(timeout=5)

    # --- account and positions --------------------------------------------------------

    def _account_id(self) -> str:
        if self.config.account:
            return self.config.account
        accounts = self.ib.managedAccounts()
        if not accounts:
            raise OperationalError("the IB Gateway manages no account: check its login")
        return accounts[0]

    def account(self) -> Account:
        account = self._account_id()

        async def summary() -> Account:
            values = await self.ib.accountSummaryAsync(account)
            return account_from_summary(values, account)

        return self._on_loop(summary)

    def positions(self) -> list[Position]:
        account = self._account_id()

        async def portfolio() -> list[Position]:
            items = self.ib.portfolio(account)
            return [position_from_ib(p, self.symbols) for p in items if p.position]

        return self._on_loop(portfolio)

    # --- orders -----------------------------------------------------------------------

    def contract(self, symbol: str) -> Contract:
        """The IB contract for an engine symbol (a refusal when IB cannot trade it)."""
        instrument = self.symbols.instrument(symbol)
        if instrument.sec_type == "CRYPTO":
            return Crypto(instrument.symbol, instrument.exchange, instrument.currency)
        return Stock(instrument.symbol, instrument.exchange, instrument.currency)

    def _submit(self, request: OrderRequest) -> Order:
        contract = self.contract(request.symbol)
        order = ib_order(request, self.config.account)

        async def place() -> Trade:
            qualified = await self.ib.qualifyContractsAsync(contract)
            if not qualified or qualified[0] is None:
                raise InvalidOrderError(f"IB knows no contract for {request.symbol}")
            trade = self.ib.placeOrder(contract, order)
            return await self._acknowledged(trade)

        trade = self._on_loop(place)
        result = order_from_trade(trade, self.symbols)
        if result.status is OrderStatus.REJECTED or (
            result.status is OrderStatus.CANCELED and result.filled_quantity == 0
        ):
            raise InvalidOrderError(f"IB refused the order: {result.reason}")
        return result

    async def _acknowledged(self, trade: Trade) -> Trade:
        """Wait until IB acknowledges or ends the order; unknown after the timeout."""
        waited = 0.0
        while waited < self.config.timeout_seconds:
            if trade.orderStatus.status in _ACKNOWLEDGED or trade.isDone():
                return trade
            await asyncio.sleep(_POLL_SECONDS)
            waited += _POLL_SECONDS
        raise TemporaryError(
            "IB did not acknowledge the order (it may be live): reconcile with find_order"
        )

    def _all_trades(self) -> list[Trade]:
        async def every() -> list[Trade]:
            session = list(self.ib.trades())
            opened = await self.ib.reqAllOpenOrdersAsync()
            completed = await self.ib.reqCompletedOrdersAsync(apiOnly=False)
            return [*session, *opened, *completed]

        return self._on_loop(every)

    def get_order(self, order_id: str) -> Order:
        for trade in self._all_trades():
            if str(trade.order.permId or trade.order.orderId) == order_id:
                return order_from_trade(trade, self.symbols)
        raise InvalidOrderError(f"IB knows no order {order_id}")

    def find_order(self, client_order_id: str) -> Order | None:
        found = [t for t in self._all_trades() if t.order.orderRef == client_order_id]
        if not found:
            return None
        # The session's own copy is the freshest; completed/open copies may lag it.
        return order_from_trade(found[0], self.symbols)

    def cancel_order(self, order_id: str) -> Order:
        async def cancel() -> Trade:
            for trade in self.ib.trades():
                if str(trade.order.permId or trade.order.orderId) == order_id:
                    if trade.isDone():
                        raise InvalidOrderError(f"order {order_id} is already done")
                    self.ib.cancelOrder(trade.order)
                    return trade
            raise InvalidOrderError(f"IB knows no open order {order_id} in this session")

        return order_from_trade(self._on_loop(cancel), self.symbols)

    def open_orders(self) -> list[Order]:
        async def opened() -> list[Trade]:
            return list(await self.ib.reqAllOpenOrdersAsync())

        return [order_from_trade(t, self.symbols) for t in self._on_loop(opened)]

    def check(self) -> None:
        """Connected to the Gateway, and the Gateway logged in to an account."""
        if not self.ib.isConnected():
            raise TemporaryError(
                f"not connected to the IB Gateway at {self.config.host}:{self.config.port}"
                + (f" ({self.last_error})" if self.last_error else "")
            )
        self._account_id()
