#!/usr/bin/env bash
# Lint and scan the CloudFormation templates in their own tool environment.
#
# cfn-lint must report no error and no warning; checkov must report no failed check, its own
# and the project's policies in tools/checkov/kyperian_policies.py (PITR on every table replica,
# TTL, DLQ, log retention, permissions boundary, no public bucket, runbook link in alarms).
# The scanners live in .venv-scan/, apart from the project venv, because checkov's pins
# conflict with the project's (urllib3 1.x breaks locust). The environment is synced from the
# hashed lock tools/scan-requirements.txt only when the lock changed since the last sync.
#
# Usage: scripts/cfn-check.sh            (from anywhere; works on the repository it lives in)
# Refresh the lock after editing tools/scan-requirements.in:
#   uv pip compile --generate-hashes --python-version 3.11 \
#     tools/scan-requirements.in -o tools/scan-requirements.txt
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

venv=".venv-scan"
# shellcheck source=scripts/lint-env.sh
source "$root/scripts/lint-env.sh"
ensure_tool_venv "$venv" tools/scan-requirements.txt

shopt -s nullglob
templates=(cloudformation/*.yaml)
if ((${#templates[@]} == 0)); then
    echo "cfn-check: no templates in cloudformation/" >&2
    exit 2
fi

status=0

echo "cfn-check: cfn-lint ${#templates[@]} templates"
# Exit code 0 means no error, no warning and no informational finding; any other code fails.
if ! "$venv/bin/cfn-lint" --format parseable -- "${templates[@]}"; then
    echo "cfn-check: cfn-lint reported findings" >&2
    status=1
fi

echo "cfn-check: checkov (built-in checks and Kyperian's own, tools/checkov: CKV_KYP_*)"
if ! "$venv/bin/checkov" -d cloudformation --framework cloudformation --compact --quiet \
    --skip-download --external-checks-dir tools/checkov --output cli; then
    echo "cfn-check: checkov reported failed checks" >&2
    status=1
fi

if ((status == 0)); then
    echo "cfn-check: ok"
fi
exit "$status"
