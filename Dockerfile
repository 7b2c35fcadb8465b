# The engine service (ECS Fargate): FastAPI + the SQS worker on port 8000.
#
# Two stages: `build` resolves the locked runtime dependencies (uv.lock, no dev group, the
# `engine` extra) into /opt/venv and installs kyperian itself as a wheel (not editable), with
# bytecode compiled ahead of time because the task's root filesystem is read-only; `runtime`
# copies only that venv onto the same slim base and runs it as an unprivileged user. No build
# tool, cache, source tree or secret reaches the final image: configuration and secrets come
# from the task definition (SSM, Secrets Manager) at run time.
#
# Built by .github/workflows/deploy.yml (linux/amd64 = the task's X86_64 CpuArchitecture);
# linted here by `make lint-docker` (hadolint + checkov). Base images are pinned to exact
# releases; Dependabot (.github/dependabot.yml) proposes the bumps. BuildKit's built-in
# frontend is used (no `# syntax=` line, so no unpinned frontend image is pulled).

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

# The one base both stages share, so the venv's interpreter path is the same in each.
FROM python:3.13.15-slim-trixie AS base

# ---------------------------------------------------------------------------------------------
FROM base AS build

COPY --from=uv /uv /usr/local/bin/uv

# Use the base image's interpreter (never a downloaded one), copy instead of hard-linking out
# of the cache mount, compile bytecode now (the container cannot write it later).
ENV UV_PYTHON=/usr/local/bin/python3 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy

WORKDIR /src

# Dependencies first: this layer is rebuilt only when the lock changes, not on every commit.
COPY pyproject.toml uv.lock ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra engine --no-install-project

# Then the project itself, as a regular (non-editable) install so /src is not needed at run time.
COPY README.md ./
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --extra engine --no-editable

# ---------------------------------------------------------------------------------------------
FROM base AS runtime

ARG GIT_SHA=unknown
LABEL org.opencontainers.image.title="kyperian-engine" \
      org.opencontainers.image.description="Kyperian multi-timeframe fusion engine (FastAPI + SQS worker)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${GIT_SHA}"

# Fixed ids so the task definition and file ownership never depend on build order.
RUN groupadd --system --gid 10001 kyperian \
    && useradd --system --uid 10001 --gid kyperian --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin kyperian

# Owned by root and not writable by the service user: the code cannot be changed at run time.
COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /tmp
USER 10001:10001
EXPOSE 8000

# The slim base has no curl: probe /health with the standard library. Same timing as the ALB
# health check (30 s interval, 5 s timeout); 503 (worker dead) fails it and ECS replaces the task.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]

# Same options as kyperian.engine.main.main(): 3 s HTTP drain on SIGTERM, then the lifespan
# stops the worker; access logs off (the engine logs structured events itself).
CMD ["uvicorn", "kyperian.engine.main:app", "--host", "0.0.0.0", "--port", "8000", \
     "--timeout-graceful-shutdown", "3", "--no-access-log", "--no-server-header"]
