#!/usr/bin/env bash
# make loadtest: the specification's phases at fixed arrival rates against the local stack
# (started on free ports) or HOST=https://... (ENGINE_URL=... for decision latency).
# PHASES="name:rate:seconds,..." replaces the profile, SPIKE=1 adds a 10x spike, REPORTS=dir.
# Everything is in tests/load/run.py; reports land in reports/ (requests.csv, locust.html...).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 -m uv run --frozen python -m tests.load.run
