#!/usr/bin/env bash
# Mutation testing (mutmut) of the decision-making code, printing the survival rate.
#
#   scripts/mutate.sh src/kyperian/ingest src/kyperian/fusion [src/kyperian/execution]
#   (make mutate passes MUTATE_PATHS; MUTATE_TESTS picks the tests run against each mutant)
#
# mutmut reads its settings from [tool.mutmut] of pyproject.toml and writes mutants/ beside it,
# so the run happens in a scratch copy of the repository (.mutate/) whose pyproject gets the
# paths given here: the repository itself is never mutated. Every mutant is run against the
# tests that cover it (mutmut tracks which); the fuzz runs a short seeded slice (300 cases).
# A mutant that survives is a behaviour change no test notices: `mutmut show <name>` in .mutate/
# prints its diff. Not part of `make test` (it takes many minutes).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if (($# == 0)); then
    echo "usage: scripts/mutate.sh <source dir>..." >&2
    exit 2
fi
# In-process unit tests by default: each mutant reruns every test that reaches it, and the
# moto-backed ones (test_handler.py, the integration tests: the fault drill waits out real
# timeouts) take about a minute per handler mutant here. The handler is still exercised by the
# fuzz and the key rotation tests, with the stores in memory.
default_tests=(
    tests/unit/ingest/test_parse.py tests/unit/ingest/test_intake.py
    tests/unit/ingest/test_key_grace.py tests/unit/ingest/test_fuzz.py tests/unit/fusion
)
tests="${MUTATE_TESTS:-${default_tests[*]}}"
work=".mutate"
children="${MUTATE_CHILDREN:-2}"

copied=(src tests benchmarks scripts pyproject.toml uv.lock cloudformation dashboards runbooks)
mkdir -p "$work"
# A fresh copy of the code and tests; mutmut's own cache (mutants/) is kept between runs.
for item in "${copied[@]}"; do
    rm -rf "${work:?}/$item"
    cp -a "$item" "$work/"
done

toml_list() { printf '"%s", ' "$@" | sed 's/, $//'; }
globs=()
for path in "$@"; do
    if [[ -f "$path" ]]; then globs+=("$path"); else globs+=("${path%/}/*"); fi
done
# The whole of src/ is copied (the tests import all of it); only the given paths are mutated.
# shellcheck disable=SC2086 # word splitting of the test list is intended
cat >>"$work/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["src"]
only_mutate = [$(toml_list "${globs[@]}")]
pytest_add_cli_args = ["-p", "no:randomly", "-p", "no:cacheprovider", "-q"]
pytest_add_cli_args_test_selection = [$(toml_list $tests)]
also_copy = ["benchmarks", "scripts", "cloudformation", "dashboards", "runbooks"]
EOF

cd "$work"
export KYPERIAN_FUZZ_CASES="${KYPERIAN_FUZZ_CASES:-300}"
status=0
"$root/.venv/bin/mutmut" run --max-children "$children" || status=$?
"$root/.venv/bin/mutmut" export-cicd-stats >/dev/null
"$root/.venv/bin/python" - "$@" <<'EOF'
import json
import sys

stats = json.load(open("mutants/mutmut-cicd-stats.json"))
killed, survived = stats["killed"], stats["survived"]
judged = killed + survived
rate = 100 * survived / judged if judged else 0.0
others = {k: v for k, v in stats.items() if k not in {"killed", "survived", "total"} and v}
print(f"mutate: {' '.join(sys.argv[1:])}")
print(f"mutate: killed={killed} survived={survived} survival_rate={rate:.1f}% other={others}")
EOF
exit "$status"
