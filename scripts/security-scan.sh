#!/usr/bin/env bash
# Security scans of the code and of the locked dependencies.
#
#   bandit     src/ and scripts/, medium severity and confidence and up. B104 (bind to all
#              interfaces), B310 (urlopen schemes) and B506 (yaml.load) are left to ruff's
#              S104/S310/S506, which `make lint` enforces line by line with a written reason
#              (`# noqa: S506 - the loader derives from SafeLoader`); bandit cannot read those,
#              so it would only ask for the same reason twice. Same rule, one place to justify.
#   pip-audit  every package pinned in uv.lock (runtime, the engine extra, dev and load
#              groups: one lock, one truth), hashed and unresolved (--disable-pip), --strict so
#              a package that could not be checked fails the audit. The scanner environments
#              (tools/*-requirements.txt) never ship and are not audited.
#
# pip-audit needs PyPI's JSON API or OSV. Where neither answers (these development machines
# reach only the package index), it is reported as SKIPPED - never as passed - and the script
# still exits 0, unless REQUIRE_AUDIT=1 (set by CI on GitHub), which makes it a failure.
#
# Usage: scripts/security-scan.sh          Tools: .venv-lint (tools/lint-requirements.txt)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# shellcheck source=scripts/lint-env.sh
source scripts/lint-env.sh
ensure_tool_venv .venv-lint tools/lint-requirements.txt
if command -v uv >/dev/null; then uv_cmd=(uv); else uv_cmd=(python3 -m uv); fi

status=0
skipped=""

echo "bandit: src scripts"
if ! .venv-lint/bin/bandit --recursive src scripts --severity-level medium \
    --confidence-level medium --skip B104,B310,B506 --quiet; then
    status=1
fi

requirements="$(mktemp)"
trap 'rm -f "$requirements"' EXIT
"${uv_cmd[@]}" export --frozen --all-extras --all-groups --no-emit-project --no-header \
    --no-annotate --format requirements.txt --output-file "$requirements" >/dev/null

# The per-version endpoint pip-audit reads (a mirror may serve the project page only).
reachable() {
    python3 - <<'PY'
import sys, urllib.request
try:
    with urllib.request.urlopen("https://pypi.org/pypi/pip/24.0/json", timeout=10) as answer:
        sys.exit(0 if answer.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
}

echo "pip-audit: $(grep -c '==' "$requirements") locked packages"
if reachable; then
    if ! .venv-lint/bin/pip-audit --requirement "$requirements" --require-hashes --disable-pip \
        --strict --progress-spinner off; then
        status=1
    fi
elif [[ "${REQUIRE_AUDIT:-0}" == "1" ]]; then
    echo "pip-audit: FAILED - PyPI's vulnerability data is unreachable and REQUIRE_AUDIT=1" >&2
    status=1
else
    echo "pip-audit: SKIPPED - PyPI's vulnerability data is unreachable from this machine" \
        "(CI on GitHub runs it with REQUIRE_AUDIT=1)" >&2
    skipped=" (bandit only: pip-audit skipped)"
fi

if ((status == 0)); then
    echo "security scan: ok$skipped"
fi
exit "$status"
