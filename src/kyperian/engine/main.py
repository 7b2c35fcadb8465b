"""The engine service: FastAPI on port 8000, with the SQS worker started by the lifespan.

Run ``python -m kyperian.engine.main`` (the container's command) or
``uvicorn kyperian.engine.main:app``. On SIGTERM uvicorn stops accepting requests, drains
them for a few seconds, then the lifespan stops the worker, which finishes its batch and
releases what it had not started: the whole shutdown fits in ECS's 30-second stop timeout.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Final

import uvicorn
from fastapi import FastAPI, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from kyperian import __version__
from kyperian.domain.errors import InvalidOrderError, KyperianError
from kyperian.engine.api.routes import (
    account,
    broker,
    decisions,
    health,
    orders,
    positions,
    signals,
    venues,
)
from kyperian.engine.auth import install_auth
from kyperian.engine.services import EngineServices, build_services
from kyperian.engine.telemetry import logger
from kyperian.engine.ui import routes as ui
from kyperian.settings import get_settings

PORT: Final = 8000
_HTTP_DRAIN_SECONDS: Final = 3


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the services (unless a test supplied them), run the worker, stop it on shutdown."""
    services: EngineServices | None = app.state.services
    if services is None:
        services = build_services(get_settings())
        app.state.services = services
    if services.notifier is not None:
        services.notifier.start()
    if services.reconciler is not None:
        services.reconciler.start()
    if services.alarms is not None:
        services.alarms.start()
    if services.worker is not None:
        services.worker.start()
        logger.info("worker started", extra={"queue": services.settings.signal_queue_url})
    try:
        yield
    finally:
        await _shutdown(services)


async def _shutdown(services: EngineServices) -> None:
    if services.worker is not None:
        stopped = await run_in_threadpool(
            services.worker.stop, services.settings.worker_shutdown_seconds
        )
        if not stopped:
            logger.error("worker did not stop in time; unfinished messages will be redelivered")
    services.close()


async def _dependency_failed(request: Request, exc: Exception) -> JSONResponse:
    """A store or cache failure is the caller's cue to retry, never a 500 with a trace."""
    if isinstance(exc, InvalidOrderError):
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
    logger.warning(
        "request failed on a dependency", extra={"path": request.url.path, "reason": str(exc)}
    )
    return JSONResponse(
        {"detail": "a dependency is unavailable; retry shortly"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "1"},
    )


def create_app(services: EngineServices | None = None) -> FastAPI:
    """The ASGI app; ``services`` replaces the real wiring (tests, benchmarks)."""
    app = FastAPI(
        title="Kyperian engine",
        version=__version__,
        summary="Multi-timeframe decisions from validated TradingView signals",
        lifespan=lifespan,
    )
    app.state.services = services
    app.add_exception_handler(KyperianError, _dependency_failed)
    install_auth(app)  # every route, including those added after this line, needs a caller
    for router in (
        health.router,
        signals.router,
        decisions.router,
        broker.router,
        orders.router,
        positions.router,
        account.router,
        venues.router,
    ):
        app.include_router(router)
    app.include_router(ui.router)  # the cockpit (docs/cockpit.md)
    app.mount("/ui/static", ui.static, name="ui-static")
    return app


app = create_app()


def main() -> None:
    """Serve on 0.0.0.0:8000 (inside the container; the ALB is the only way in)."""
    uvicorn.run(
        app,
        host="0.0.0.0",  # noqa: S104 - container port, reachable only from the ALB security group
        port=PORT,
        timeout_graceful_shutdown=_HTTP_DRAIN_SECONDS,
        access_log=False,
    )


if __name__ == "__main__":
    main()
