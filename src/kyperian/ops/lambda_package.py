"""Build the webhook Lambda package, ``build/lambda.zip``, reproducibly from the lock file.

The zip holds exactly what ``kyperian.ingest.handler`` imports from ``src/kyperian`` (found by
walking the import statements, so a new module is picked up and an engine import is caught)
plus the locked runtime dependencies installed as manylinux wheels for the Lambda platform
(Python 3.13, x86_64 or arm64), and bytecode compiled ahead of time because ``/var/task`` is
read-only (without it every cold start compiles every module again). Entries are sorted and
carry a fixed timestamp and mode, and the bytecode is hash-based, so one commit gives one
sha256 on a given toolchain.

It must never ship the engine: ``kyperian.engine``, ``kyperian.local``, ``kyperian.cli`` or a
live broker adapter in the import closure, or fastapi/starlette/uvicorn/redis or a broker SDK
(alpaca-py, schwab-py, ib-async, pandas, numpy) among the requirements, stop the build.

The AWS SDK (boto3, botocore, s3transfer, urllib3, ...) is left to the python3.13 runtime by
default (``uv export --prune boto3``): it is about two thirds of the package otherwise, and the
handler uses only long-stable APIs (DynamoDB PutItem, EventBridge PutEvents, Secrets Manager
GetSecretValue). ``--bundle-sdk`` ships the locked copy instead.

Usage (``make package`` runs the second)::

    kyperian ops package-lambda                   # build/lambda.zip
    kyperian ops package-lambda --verify          # build twice, compare sha256
    kyperian ops package-lambda --measure-import  # cold-import time of the handler
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[3]
SRC: Final = ROOT / "src"
DEFAULT_OUTPUT: Final = ROOT / "build" / "lambda.zip"

HANDLER_MODULE: Final = "kyperian.ingest.handler"
PROJECT_PACKAGE: Final = "kyperian"
FORBIDDEN_MODULES: Final = (
    "kyperian.engine",
    "kyperian.local",
    "kyperian.cli",
    "kyperian.adapters.brokers.alpaca",
    "kyperian.adapters.brokers.ibkr",
    "kyperian.adapters.brokers.schwab",
)
# The broker SDKs (and their heavy closures: pandas, numpy, authlib) are the engine's alone.
FORBIDDEN_DISTRIBUTIONS: Final = frozenset(
    {
        "fastapi",
        "starlette",
        "uvicorn",
        "redis",
        "hiredis",
        "alpaca-py",
        "schwab-py",
        "ib-async",
        "pandas",
        "numpy",
    }
)
RUNTIME_SDK: Final = "boto3"
PYTHON_VERSION: Final = "3.13"
PLATFORMS: Final = {"x86_64": "x86_64-manylinux2014", "arm64": "aarch64-manylinux2014"}
# The uv that runs this command (``uv run`` exports it as UV), else the one on PATH.
UV: Final = os.environ.get("UV", "uv")

# 1980-01-01 is the earliest time a zip entry can carry; every entry gets it.
ZIP_TIMESTAMP: Final = (1980, 1, 1, 0, 0, 0)
FILE_MODE: Final = 0o100644
# Installed files the function never runs.
SKIPPED_TOP_LEVEL: Final = frozenset({"bin"})

_REQUIREMENT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


class PackagingError(Exception):
    """The package cannot be built as asked; the message says why and what to do."""


# --- what to ship ----------------------------------------------------------------------------


def module_file(module: str, src: Path = SRC) -> Path | None:
    """The source file of ``module`` under ``src`` (a module or a package), if any."""
    base = src.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking_block(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run at some point: all of them but ``if TYPE_CHECKING:`` ones."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking_block(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> set[str]:
    """Fully qualified modules an import statement may load (submodules included)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names}
    if node.level:
        parts = module.split(".")
        anchor = parts if is_package else parts[:-1]
        anchor = anchor[: len(anchor) - (node.level - 1)]
        base = ".".join([*anchor, node.module] if node.module else anchor)
    else:
        base = node.module or ""
    return {base} | {f"{base}.{alias.name}" for alias in node.names}


def module_closure(roots: Iterable[str], src: Path = SRC) -> set[str]:
    """Every ``kyperian`` module the roots import, directly or not, with their packages.

    Raises
    ------
    PackagingError
        When a root is missing or the closure reaches a module the Lambda must not carry.
    """
    wanted = tuple(roots)
    seen: set[str] = set()
    pending = list(wanted)
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        path = module_file(module, src)
        if path is None:
            if module in wanted:
                raise PackagingError(f"{module} not found under {src}")
            continue  # `from pkg import name` where name is not a module
        seen.add(module)
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _runtime_imports(tree):
            for name in _imported_names(node, module, path.name == "__init__.py"):
                if name == PROJECT_PACKAGE or name.startswith(PROJECT_PACKAGE + "."):
                    pending.append(name)
    forbidden = sorted(
        m for m in seen if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_MODULES)
    )
    if forbidden:
        raise PackagingError(
            f"the handler's imports reach {', '.join(forbidden)}; ingest must not import the "
            "engine, the local stack or the CLI (the Lambda package must not carry them)"
        )
    return seen


def project_files(modules: Iterable[str], src: Path = SRC) -> list[Path]:
    """Source files of ``modules`` (plus ``py.typed``), relative to ``src``, sorted."""
    files = {path.relative_to(src) for m in modules if (path := module_file(m, src)) is not None}
    typed = src / PROJECT_PACKAGE / "py.typed"
    if typed.is_file():
        files.add(typed.relative_to(src))
    return sorted(files)


def locked_requirements(*, bundle_sdk: bool, root: Path = ROOT) -> str:
    """The Lambda's pinned, hashed requirements exported from ``uv.lock``.

    Only the project's base dependencies (never the ``engine`` extra or the dev group); without
    ``bundle_sdk``, boto3 and whatever only it needs are pruned (the runtime provides them).
    """
    command = [
        UV,
        "export",
        "--frozen",
        "--no-dev",
        "--no-emit-project",
        "--no-header",
        "--no-annotate",
        "--format",
        "requirements.txt",
    ]
    if not bundle_sdk:
        command += ["--prune", RUNTIME_SDK]
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        command, cwd=root, check=True, capture_output=True, text=True
    )
    return result.stdout


def requirement_pins(requirements: str) -> dict[str, str]:
    """``{normalized name: version}`` of a requirements file's ``name==version`` lines."""
    pins: dict[str, str] = {}
    for line in requirements.splitlines():
        match = _REQUIREMENT.match(line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def check_requirements(pins: dict[str, str]) -> None:
    """Refuse a requirement set that would drag the engine into the Lambda."""
    leaked = sorted(FORBIDDEN_DISTRIBUTIONS & pins.keys())
    if leaked:
        raise PackagingError(
            f"{', '.join(leaked)} would be packaged into the Lambda: engine-only dependencies "
            "belong in the `engine` extra of pyproject.toml, not in [project.dependencies]"
        )


def project_version(root: Path = ROOT) -> str:
    """``kyperian.__version__``: the single source hatch reads too (``[tool.hatch.version]``)."""
    data = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    source = root / data["tool"]["hatch"]["version"]["path"]
    module = ast.parse(source.read_text(encoding="utf-8"))
    for node in module.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return str(ast.literal_eval(node.value))
    raise PackagingError(f"no __version__ in {source}")


# --- building --------------------------------------------------------------------------------


def _run(command: Sequence[str], **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in command), file=sys.stderr)
    subprocess.run(command, check=True, **kwargs)  # type: ignore[call-overload]  # noqa: S603


def install_dependencies(requirements: Path, target: Path, *, arch: str) -> None:
    """Install the hashed requirements as manylinux wheels for the Lambda platform."""
    _install_for_lambda(
        requirements,
        target,
        arch,
        ("--require-hashes", "--no-compile", "--link-mode", "copy"),
    )


def _install_for_lambda(
    requirements: Path, target: Path, arch: str, extra: Sequence[str] = ()
) -> None:
    """``uv pip install`` of exact pins as binary wheels for the Lambda's platform and Python."""
    _run(
        [
            UV,
            "pip",
            "install",
            "--quiet",
            "--target",
            str(target),
            "--python-platform",
            PLATFORMS[arch],
            "--python-version",
            PYTHON_VERSION,
            "--only-binary",
            ":all:",
            "--no-deps",
            *extra,
            "-r",
            str(requirements),
        ]
    )


def copy_project(files: Iterable[Path], target: Path, src: Path = SRC) -> None:
    for relative in files:
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / relative, destination)


def write_dist_info(target: Path, version: str) -> None:
    """Minimal metadata so ``importlib.metadata.version("kyperian")`` answers in the Lambda."""
    info = target / f"{PROJECT_PACKAGE}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {PROJECT_PACKAGE}\nVersion: {version}\n", encoding="utf-8"
    )


def find_python(explicit: str | None) -> str:
    """A Python 3.13 interpreter to compile bytecode with (the magic number must match)."""
    candidates: list[str] = []
    if explicit:
        candidates.append(explicit)
    if env := os.environ.get("KYPERIAN_LAMBDA_PYTHON"):
        candidates.append(env)
    found = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [UV, "python", "find", "--no-project", PYTHON_VERSION],
        capture_output=True,
        text=True,
        check=False,
    )
    if found.returncode == 0 and found.stdout.strip():
        candidates.append(found.stdout.strip())
    if which := shutil.which(f"python{PYTHON_VERSION}"):
        candidates.append(which)
    if pyenv := shutil.which("pyenv"):  # pyenv's shim answers only for the active version
        root = subprocess.run(  # noqa: S603 - pyenv's own path, fixed argv
            [pyenv, "root"], capture_output=True, text=True, check=False
        ).stdout.strip()
        if root:
            found_here = sorted(
                Path(root).glob(f"versions/{PYTHON_VERSION}.*/bin/python{PYTHON_VERSION}")
            )
            candidates += [str(p) for p in reversed(found_here)]
    for candidate in candidates:
        probe = subprocess.run(  # noqa: S603 - the interpreter's own path, no shell
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == PYTHON_VERSION:
            return candidate
    raise PackagingError(
        f"no Python {PYTHON_VERSION} interpreter to compile the bytecode with: install one "
        f"(`uv python install {PYTHON_VERSION}`), pass --python PATH or set "
        "KYPERIAN_LAMBDA_PYTHON, or build with --no-compile (slower cold starts)"
    )


def compile_bytecode(tree: Path, python: str) -> None:
    """Hash-checked-free (unchecked-hash) bytecode: deterministic, and never recompiled.

    Paths inside the bytecode are rewritten to ``/var/task`` (where Lambda unpacks the zip) and
    the hash seed is fixed, so neither the build directory nor set ordering leaks into it.
    """
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    _run(
        [
            python,
            "-m",
            "compileall",
            "-q",
            "-j",
            "1",
            "--invalidation-mode",
            "unchecked-hash",
            "-s",
            str(tree),
            "-p",
            "/var/task",
            str(tree),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )


def _zip_entries(tree: Path) -> list[Path]:
    entries = []
    for path in tree.rglob("*"):
        relative = path.relative_to(tree)
        if path.is_file() and relative.parts[0] not in SKIPPED_TOP_LEVEL:
            entries.append(relative)
    return sorted(entries, key=lambda p: p.as_posix())


def write_zip(tree: Path, output: Path) -> None:
    """Zip ``tree`` with sorted entries, one timestamp and one mode: same input, same bytes."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for relative in _zip_entries(tree):
            info = zipfile.ZipInfo(relative.as_posix(), date_time=ZIP_TIMESTAMP)
            info.create_system = 3  # Unix, so external_attr carries the permission bits
            info.external_attr = FILE_MODE << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, (tree / relative).read_bytes(), compresslevel=9)
    partial.replace(output)


@dataclass(frozen=True)
class BuildResult:
    output: Path
    sha256: str
    size: int
    unpacked_size: int
    modules: tuple[str, ...]
    pins: dict[str, str]

    def summary(self) -> dict[str, object]:
        return {
            "zip": str(self.output.relative_to(ROOT) if self.output.is_relative_to(ROOT) else ""),
            "sha256": self.sha256,
            "bytes": self.size,
            "unpacked_bytes": self.unpacked_size,
            "kyperian_modules": list(self.modules),
            "requirements": self.pins,
        }


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(
    output: Path,
    *,
    arch: str = "x86_64",
    bundle_sdk: bool = False,
    python: str | None = None,
) -> BuildResult:
    """Build the zip at ``output``; ``python`` None means no bytecode."""
    modules = module_closure([HANDLER_MODULE])
    requirements = locked_requirements(bundle_sdk=bundle_sdk)
    pins = requirement_pins(requirements)
    check_requirements(pins)
    with tempfile.TemporaryDirectory(prefix="kyperian-lambda-") as scratch:
        work = Path(scratch)
        tree = work / "package"
        tree.mkdir()
        (work / "requirements.txt").write_text(requirements, encoding="utf-8")
        install_dependencies(work / "requirements.txt", tree, arch=arch)
        copy_project(project_files(modules), tree)
        write_dist_info(tree, project_version())
        for cache in tree.rglob("__pycache__"):
            shutil.rmtree(cache)
        if python is not None:
            compile_bytecode(tree, python)
        unpacked = sum((tree / p).stat().st_size for p in _zip_entries(tree))
        write_zip(tree, output)
    return BuildResult(
        output=output,
        sha256=sha256_of(output),
        size=output.stat().st_size,
        unpacked_size=unpacked,
        modules=tuple(sorted(modules)),
        pins=pins,
    )


# --- measuring -------------------------------------------------------------------------------


def _sdk_dir(work: Path, arch: str, python: str) -> Path:
    """The locked boto3 closure, standing in for the runtime's (precompiled) SDK."""
    full = requirement_pins(locked_requirements(bundle_sdk=True))
    lean = requirement_pins(locked_requirements(bundle_sdk=False))
    sdk_only = [f"{name}=={version}" for name, version in sorted(full.items()) if name not in lean]
    requirements = work / "sdk.txt"
    requirements.write_text("\n".join(sdk_only) + "\n", encoding="utf-8")
    target = work / "runtime-sdk"
    _install_for_lambda(requirements, target, arch)
    compile_bytecode(target, python)
    return target


def measure_import(
    zip_path: Path, python: str, *, runs: int, arch: str, bundled: bool
) -> tuple[float, float]:
    """Fastest and median cold-import time (ms) of the handler, as ``-X importtime`` reports it.

    The fastest run is the least disturbed by other work on a shared machine; the median says
    what a typical run saw.

    Each run is a fresh interpreter on the unpacked zip with bytecode writing disabled, as on
    Lambda's read-only ``/var/task``; the SDK comes after the package on ``sys.path`` when the
    package does not carry it (as the runtime's copy does).
    """
    with tempfile.TemporaryDirectory(prefix="kyperian-lambda-import-") as scratch:
        work = Path(scratch)
        task = work / "task"
        with zipfile.ZipFile(zip_path) as zf:
            zf.extractall(task)
        path = [str(task)] + ([] if bundled else [str(_sdk_dir(work, arch, python))])
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join(path),
            "AWS_DEFAULT_REGION": "us-east-1",
            "POWERTOOLS_SERVICE_NAME": "signal-validator",
        }
        samples = []
        for _ in range(runs):
            result = subprocess.run(  # noqa: S603 - the interpreter's own path, no shell
                [python, "-s", "-X", "importtime", "-c", f"import {HANDLER_MODULE}"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
                cwd=work,
            )
            samples.append(_cumulative_us(result.stderr, HANDLER_MODULE) / 1000)
    return min(samples), statistics.median(samples)


def _cumulative_us(importtime: str, module: str) -> int:
    """The cumulative microseconds ``-X importtime`` gives ``module`` (its whole import)."""
    for line in importtime.splitlines():
        fields = [f.strip() for f in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[2].strip() == module:
            return int(fields[1])
    raise PackagingError(f"-X importtime printed no line for {module}")


# --- command line ----------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The build's options, for ``kyperian ops package-lambda``."""
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument(
        "--bundle-sdk",
        action="store_true",
        help="ship the locked boto3/botocore instead of using the runtime's",
    )
    parser.add_argument("--python", help=f"Python {PYTHON_VERSION} used to compile bytecode")
    parser.add_argument(
        "--no-compile", action="store_true", help="no bytecode (every cold start compiles)"
    )
    parser.add_argument(
        "--verify", action="store_true", help="build a second time and require identical bytes"
    )
    parser.add_argument(
        "--measure-import",
        type=int,
        nargs="?",
        const=7,
        default=0,
        metavar="RUNS",
        help="print the median cold-import time of the handler over RUNS fresh interpreters",
    )


def run(args: argparse.Namespace) -> int:
    """Build (and verify, measure) as ``args`` say; print the JSON report; 0 when built."""
    try:
        python = None if args.no_compile else find_python(args.python)
        output = args.output.resolve()
        result = build(output, arch=args.arch, bundle_sdk=args.bundle_sdk, python=python)
        report = result.summary()
        if args.verify:
            second = output.with_name(output.stem + ".verify.zip")
            again = build(second, arch=args.arch, bundle_sdk=args.bundle_sdk, python=python)
            second.unlink()
            report["reproducible"] = again.sha256 == result.sha256
            if again.sha256 != result.sha256:
                raise PackagingError(
                    f"two builds differ: {result.sha256} vs {again.sha256} (not reproducible)"
                )
        if args.measure_import:
            fastest, median = measure_import(
                output,
                python or find_python(args.python),
                runs=args.measure_import,
                arch=args.arch,
                bundled=args.bundle_sdk,
            )
            report["import_ms"] = {"fastest": round(fastest, 1), "median": round(median, 1)}
    except (PackagingError, subprocess.CalledProcessError) as exc:
        print(f"kyperian ops package-lambda: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0
