"""The layout is the architecture: one package per stage, each imported only through its face
(`__init__`), layers that import only downwards, no import circles, and SQL in catalog/ alone.
The contracts are in pyproject.toml ([tool.importlinter]) and checked by import-linter."""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "lookalike"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(source_root: Path) -> subprocess.CompletedProcess:
    if not LINT_IMPORTS.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_import_contracts_are_kept():
    result = _lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" in result.stdout and " 0 broken" in result.stdout


def test_a_layer_break_a_circle_and_a_reach_past_a_face_each_fail(tmp_path):
    """The contracts bite: a copy of the package with a decoder that imports the CLI, a
    circle inside upkeep, and a searcher reaching into catalog/store.py."""
    copy = tmp_path / "lookalike"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "weights"))
    with open(copy / "pictures" / "decode.py", "a") as f:
        f.write("\nimport lookalike.cli  # noqa\n")
    with open(copy / "upkeep" / "rules.py", "a") as f:
        f.write("\nimport lookalike.upkeep.check  # noqa\n")
    with open(copy / "search" / "hits.py", "a") as f:
        f.write("\nimport lookalike.catalog.store  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout
    broken = set(re.findall(r"^(.+) BROKEN$", result.stdout, re.M))
    assert {
        "Stages: each package imports only the layers below it",
        "No import circles",
        "catalog is imported through its face",
    } <= broken, result.stdout


def _modules(root: Path):
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def test_only_the_entry_points_sit_at_the_top_of_the_package():
    loose = {p.name for p in PACKAGE.glob("*.py")}
    assert loose == {"__init__.py", "__main__.py"}


def test_every_package_has_a_face_that_says_what_it_is_for():
    for folder in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"):
        if not any(folder.glob("*.py")):
            continue  # data only (server/static)
        face = folder / "__init__.py"
        assert face.exists(), f"{folder.name}/ has no __init__.py"
        doc = ast.get_docstring(ast.parse(face.read_text()))
        assert doc and len(doc.split()) >= 8, f"{folder.name}/__init__.py says nothing of its use"


def test_sql_is_run_only_inside_catalog():
    outside = [
        f"{p.relative_to(PACKAGE)}:{n}"
        for p in _modules(PACKAGE)
        if "catalog" not in p.relative_to(PACKAGE).parts[:1]
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\.execute(many|script)?\(", line)
    ]
    assert outside == []


def test_benchmarks_use_no_private_names():
    """bench/ uses lookalike as a user would: no `_name` imported or reached for."""
    private = []
    for path in _modules(ROOT / "bench"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lookalike"):
                private += [f"{path.name}: {a.name}" for a in node.names if _private(a.name)]
            elif isinstance(node, ast.Attribute) and _private(node.attr):
                if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                    private.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert private == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


@pytest.mark.parametrize(
    "module, heavy",
    [
        ("lookalike.cli", {"cv2", "torch", "open_clip"}),  # every command starts with this
        ("lookalike.ingest.workers", {"faiss", "httpx", "bs4", "cv2", "torch"}),  # spawned
        ("lookalike.search", {"cv2", "torch"}),  # verification loads OpenCV when it is asked for
    ],
)
def test_what_is_heavy_is_imported_only_by_who_uses_it(module, heavy):
    code = f"import sys, {module}; print(sorted(m for m in {sorted(heavy)!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"{module} loads {out.stdout.strip()}"


def test_a_face_loads_on_first_use_what_it_names_and_nothing_else():
    code = (
        "import sys; from lookalike.search import Searcher; assert 'cv2' not in sys.modules; "
        "from lookalike.search import is_pixel_copy; assert 'cv2' in sys.modules; "
        "import lookalike.search as s; print(hasattr(s, 'no_such_name'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
