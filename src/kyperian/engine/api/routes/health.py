"""``GET /health`` for the ALB: 200 while the worker runs, even if Redis is down.

Redis being down is a degraded state the engine handles (it decides from the table), so
failing the health check would only make ECS replace healthy tasks. A worker that died
is not handled: the answer is 503 and ECS replaces the task.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from kyperian import __version__
from kyperian.domain.errors import KyperianError
from kyperian.engine.api.deps import ServicesDep
from kyperian.engine.api.schemas import HealthReport

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthReport,
    responses={503: {"model": HealthReport, "description": "the worker has stopped"}},
)
def health(services: ServicesDep, response: Response) -> HealthReport:
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
