"""``GET /health`` for the ALB: 200 while the worker runs, even if Redis is down.

Redis being down is a degraded state the engine handles (it decides from the table), so
failing the health check would only make ECS replace healthy tasks. A worker that died
is not handled: the answer is 503 and ECS replaces the task.

``/health`` is the one route open to anyone, so it says one word and nothing else (no
error text, no version); ``/health/details`` gives operators the whole report, behind the
engine's authentication like every other route.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from kyperian import __version__
from kyperian.domain.errors import KyperianError
from kyperian.engine.api.deps import ServicesDep
from kyperian.engine.api.schemas import HealthReport, HealthStatus
from kyperian.engine.services import EngineServices

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "the worker has stopped"}},
)
def health(services: ServicesDep, response: Response) -> HealthStatus:
    report = _report(services, response)
    return HealthStatus(status=report.status)


@router.get(
    "/health/details",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "the worker has stopped"}},
)
def health_details(services: ServicesDep, response: Response) -> HealthReport:
    return _report(services, response)


def _report(services: EngineServices, response: Response) -> HealthReport:
    try:
        services.cache.check()
        redis = "ok"
    except KyperianError:
        redis = "unavailable"
    worker = services.worker
    worker_state = worker.state.value if worker else "DISABLED"
    failing = worker is not None and not worker.alive
    if failing:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return HealthReport(
        status="failing" if failing else ("degraded" if redis != "ok" else "ok"),
        redis=redis,
        worker=worker_state,
        worker_error=worker.last_error if worker else None,
        version=__version__,
    )
