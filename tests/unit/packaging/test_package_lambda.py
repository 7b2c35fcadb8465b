"""The Lambda package: what goes in (import closure, requirements) and byte-for-byte zips.

Pure: no wheel is downloaded here; ``make package`` builds the real zip and checks that two
builds match.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from kyperian import __version__
from kyperian.ops.lambda_package import (
    HANDLER_MODULE,
    PackagingError,
    check_requirements,
    locked_requirements,
    module_closure,
    project_files,
    project_version,
    requirement_pins,
    write_zip,
)


def source_tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def test_the_real_handler_reaches_neither_the_engine_nor_the_local_stack() -> None:
    # WHEN the handler's import closure is computed from the real source
    modules = module_closure([HANDLER_MODULE])
    # THEN it holds the ingest path and the core, and nothing the Lambda must not carry
    assert {"kyperian.ingest.handler", "kyperian.domain.models", "kyperian.settings"} <= modules
    forbidden = ("kyperian.engine", "kyperian.local", "kyperian.cli")
    assert not any(m.startswith(forbidden) for m in modules)
    # AND every package on the way is included (its __init__ runs on import)
    assert {"kyperian", "kyperian.ingest", "kyperian.adapters", "kyperian.adapters.aws"} <= modules


def test_an_engine_import_anywhere_in_the_closure_stops_the_build(tmp_path: Path) -> None:
    # GIVEN a helper two imports away from the handler that imports the engine
    src = source_tree(
        tmp_path,
        {
            "kyperian/__init__.py": "",
            "kyperian/ingest/__init__.py": "",
            "kyperian/ingest/handler.py": "from kyperian.ingest import helper\n",
            "kyperian/ingest/helper.py": "def f():\n    from kyperian.engine import main\n",
            "kyperian/engine/__init__.py": "",
            "kyperian/engine/main.py": "import fastapi\n",
        },
    )
    # WHEN / THEN the closure refuses, naming the module
    with pytest.raises(PackagingError, match=r"kyperian\.engine"):
        module_closure(["kyperian.ingest.handler"], src)


def test_type_checking_imports_and_relative_imports_are_read_as_python_does(tmp_path: Path) -> None:
    # GIVEN a type-only import of the engine and a relative import of a sibling
    src = source_tree(
        tmp_path,
        {
            "kyperian/__init__.py": "",
            "kyperian/ingest/__init__.py": "",
            "kyperian/ingest/handler.py": (
                "from typing import TYPE_CHECKING\n"
                "from . import parse\n"
                "if TYPE_CHECKING:\n"
                "    from kyperian.engine.main import app\n"
            ),
            "kyperian/ingest/parse.py": "",
            "kyperian/engine/__init__.py": "",
            "kyperian/engine/main.py": "",
        },
    )
    # WHEN the closure is computed
    modules = module_closure(["kyperian.ingest.handler"], src)
    # THEN the sibling is in, the type-only import is not, and the files follow
    ingest = {"kyperian.ingest", "kyperian.ingest.handler", "kyperian.ingest.parse"}
    assert modules == {"kyperian", *ingest}
    assert [p.as_posix() for p in project_files(modules, src)] == [
        "kyperian/__init__.py",
        "kyperian/ingest/__init__.py",
        "kyperian/ingest/handler.py",
        "kyperian/ingest/parse.py",
    ]


def test_the_locked_requirements_leave_the_sdk_to_the_runtime_and_the_engine_out() -> None:
    # WHEN the Lambda's requirements are exported from uv.lock
    lean = requirement_pins(locked_requirements(bundle_sdk=False))
    full = requirement_pins(locked_requirements(bundle_sdk=True))
    # THEN the default package has the handler's libraries but not boto3's closure
    assert {"pydantic", "pydantic-settings", "aws-lambda-powertools"} <= lean.keys()
    assert not {"boto3", "botocore", "s3transfer", "urllib3"} & lean.keys()
    assert {"boto3", "botocore"} <= full.keys()
    # AND neither carries the engine's dependencies, which live in the `engine` extra
    check_requirements(lean)
    check_requirements(full)
    assert not {"fastapi", "uvicorn", "redis"} & full.keys()
    # AND no broker SDK rides along
    assert not {"alpaca-py", "schwab-py", "ib-async", "pandas"} & full.keys()


def test_a_broker_sdk_among_the_requirements_stops_the_build() -> None:
    with pytest.raises(PackagingError, match="alpaca-py"):
        check_requirements(requirement_pins("pydantic==2.12.4\nalpaca-py==0.44.0\n"))


def test_an_engine_dependency_among_the_requirements_stops_the_build() -> None:
    with pytest.raises(PackagingError, match="fastapi"):
        check_requirements(requirement_pins("pydantic==2.12.4\nfastapi==0.121.3 \\\n"))


def test_the_same_tree_always_zips_to_the_same_bytes(tmp_path: Path) -> None:
    # GIVEN a tree whose files were written at different times and in another order
    tree = source_tree(tmp_path / "tree", {"b/z.py": "z = 1\n", "a.py": "a = 1\n"})
    # WHEN it is zipped twice, with the files touched in between
    write_zip(tree, tmp_path / "one.zip")
    (tree / "a.py").touch()
    write_zip(tree, tmp_path / "two.zip")
    # THEN the bytes match, entries are sorted, with one timestamp and mode
    assert (tmp_path / "one.zip").read_bytes() == (tmp_path / "two.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.zip") as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == ["a.py", "b/z.py"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.external_attr >> 16 for i in infos} == {0o100644}


def test_the_package_version_is_the_code_version() -> None:
    # GIVEN the version kept in kyperian/__init__.py (hatch reads it, pyproject has none)
    # THEN the packaging script finds that same version for the zip's metadata
    assert project_version() == __version__
