#!/usr/bin/env bash
# Sourced by the linter scripts: make a tool virtualenv match its hashed lock file.
#
#   ensure_tool_venv .venv-lint tools/lint-requirements.txt
#
# Tool environments stay apart from the project's .venv (checkov pins urllib3 1.x, which breaks
# locust). A venv is (re)synced only when its lock changed since the last sync (a sha256 stamp
# in the venv). scripts/cfn-check.sh uses it for .venv-scan, the other linters for theirs.
ensure_tool_venv() {
    local venv="$1" lock="$2" stamp lock_hash uv_cmd
    stamp="$venv/.lock-sha256"
    if [[ ! -f "$lock" ]]; then
        echo "missing $lock" >&2
        return 2
    fi
    if command -v uv >/dev/null; then uv_cmd=(uv); else uv_cmd=(python3 -m uv); fi
    lock_hash="$(sha256sum "$lock" | cut -d' ' -f1)"
    if [[ ! -x "$venv/bin/python" ]]; then
        "${uv_cmd[@]}" venv --quiet --python 3.11 "$venv"
    fi
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$lock_hash" ]]; then
        echo "syncing $venv from $lock"
        VIRTUAL_ENV="$PWD/$venv" "${uv_cmd[@]}" pip sync --quiet --require-hashes "$lock"
        echo "$lock_hash" >"$stamp"
    fi
}
