"""The package's layering (docs/ARCHITECTURE.md) holds, and the checks that keep it can fail.

* ``lint-imports`` passes with the contracts in ``pyproject.toml``; run on a copy of the package
  with one planted violation, the matching contract breaks (so the check cannot pass silently).
* Imports inside functions are only there to defer a heavy or optional dependency, each under a
  ``# deferred: <which>`` comment.
* The old module paths still import, warn that they are deprecated and hand out the same objects.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
DEFERRED = re.compile(r"^\s*# deferred: \S")

LAYERS = "Layers: data < media < models < render < engine < streaming < integrations < training < apps"
NO_TRAINING = "Inference never imports training"
NO_TRANSPORT = "Engine and render never import a transport"
NO_FRAMEWORKS = "The core never imports the optional integrations' frameworks"
ACYCLIC = "No import cycles between sibling modules"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} missing: pip install -e '.[dev]' (import-linter)"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _status(output: str, contract: str) -> str:
    """'KEPT' or 'BROKEN' for a contract in lint-imports' report (names may wrap over lines)."""
    flat = " ".join(output.split())
    m = re.search(re.escape(contract) + r" (KEPT|BROKEN)", flat)
    assert m, f"contract {contract!r} not in the report:\n{output}"
    return m.group(1)


def test_lint_imports_passes_on_the_repository() -> None:
    r = _lint_imports(ROOT)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    for contract in (LAYERS, NO_TRAINING, NO_TRANSPORT, NO_FRAMEWORKS, ACYCLIC):
        assert _status(out, contract) == "KEPT"


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package's Python files and pyproject.toml, copied; each test plants its own module."""
    root = tmp_path_factory.mktemp("layers")
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")

    def keep(src: str, names: list[str]) -> set[str]:
        return {n for n in names if not (n.endswith(".py") or (Path(src) / n).is_dir()) or n == "__pycache__"}

    shutil.copytree(ROOT / "emostream", root / "emostream", ignore=keep)
    return root


# (module to plant, its source, the contracts it must break). An import up the layers also closes a
# cycle between sibling packages (the higher one imports the lower), so the acyclic contract breaks too.
VIOLATIONS = {
    "engine imports a transport inside a function": (
        "emostream/engine/_planted.py",
        "def f() -> None:\n    from emostream.streaming import runner  # noqa\n",
        (LAYERS, NO_TRANSPORT, ACYCLIC),
    ),
    "a model imports training": (
        "emostream/models/_planted.py",
        "import emostream.training.corpus\n",
        (LAYERS, NO_TRAINING, ACYCLIC),
    ),
    "media imports the engine": (
        "emostream/media/_planted.py",
        "import emostream.engine.vad\n",
        (LAYERS, ACYCLIC),
    ),
    "streaming imports pipecat": (
        "emostream/streaming/_planted.py",
        "import pipecat.frames.frames\n",
        (NO_FRAMEWORKS,),
    ),
    "a cycle between two models": (
        "emostream/models/_planted.py",
        "import emostream.models._planted_too\n",
        (ACYCLIC,),
    ),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
def test_a_planted_violation_breaks_its_contract(package_copy: Path, case: str) -> None:
    path, source, broken = VIOLATIONS[case]
    planted = [package_copy / path]
    planted[0].write_text(source)
    if case == "a cycle between two models":
        planted.append(package_copy / "emostream/models/_planted_too.py")
        planted[1].write_text("import emostream.models._planted\n")
    try:
        r = _lint_imports(package_copy)
    finally:
        for p in planted:
            p.unlink()
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    for contract in (LAYERS, NO_TRAINING, NO_TRANSPORT, NO_FRAMEWORKS, ACYCLIC):
        assert _status(out, contract) == ("BROKEN" if contract in broken else "KEPT"), contract


def test_the_copy_without_a_violation_passes(package_copy: Path) -> None:
    """The planted tests fail because of the planted module, not because the copy is incomplete."""
    r = _lint_imports(package_copy)
    assert r.returncode == 0, r.stdout + r.stderr


def undeferred_imports(source: str) -> list[int]:
    """Lines of imports inside functions that lack a ``# deferred: <which>`` comment directly above
    their run of consecutive import statements (or above the ``try:`` that opens the run)."""
    lines = source.splitlines()
    bad: list[int] = []

    def check_runs(body: list[ast.stmt]) -> None:
        previous_is_import = False
        for st in body:
            is_import = isinstance(st, (ast.Import, ast.ImportFrom))
            if is_import and not previous_is_import:
                above = lines[st.lineno - 2] if st.lineno >= 2 else ""
                if above.strip() == "try:" and st.lineno >= 3:
                    above = lines[st.lineno - 3]
                if not DEFERRED.match(above):
                    bad.append(st.lineno)
            previous_is_import = is_import

    def visit(node: ast.AST, in_function: bool) -> None:
        for field in ("body", "orelse", "finalbody", "handlers"):
            seq = getattr(node, field, None)
            if not isinstance(seq, list):
                continue
            if in_function:
                check_runs([st for st in seq if isinstance(st, ast.stmt)])
            for st in seq:
                visit(st, in_function or isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(source), False)
    return bad


def test_the_deferred_import_check_finds_a_bare_import() -> None:
    src = textwrap.dedent(
        """\
        import os

        def ok():
            # deferred: torch (heavy)
            import torch
            import numpy

        def ok_try():
            # deferred: cupy (optional)
            try:
                import cupy
            except ImportError:
                pass

        def bad():
            x = 1
            import json  # line 17
            return x

        class C:
            def m(self):
                if True:
                    from a import b  # line 23
        """
    )
    assert undeferred_imports(src) == [17, 23]


def test_imports_inside_functions_defer_a_named_dependency() -> None:
    found = []
    for path in sorted((ROOT / "emostream").rglob("*.py")):
        found += [f"{path.relative_to(ROOT)}:{n}" for n in undeferred_imports(path.read_text())]
    assert not found, "imports inside functions without a '# deferred: <which>' comment:\n" + "\n".join(found)


# old path -> (new path, names that must be the very same objects)
DEPRECATED = {
    "emostream.streaming.audio_io": ("emostream.media.audio", ("load_audio", "StreamResampler", "MSG_EMPTY")),
    "emostream.streaming.image_io": ("emostream.media.image", ("load_image_rgb", "describe_image")),
    "emostream.render.video": ("emostream.apps.render_video", ("render_to_mp4", "motion_from_audio")),
    "emostream.training.checkpoint": ("emostream.models.weights", ("save_checkpoint", "load_into")),
    "emostream.probe": ("emostream.apps.probe", ("probe", "format_probe")),
}


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_old_paths_warn_and_re_export(old: str) -> None:
    new, names = DEPRECATED[old]
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=re.escape(new)):
        module = importlib.import_module(old)
    target = importlib.import_module(new)
    assert "deprecated" in (module.__doc__ or "").lower()
    for name in names:
        assert getattr(module, name) is getattr(target, name)
    assert set(module.__all__) <= set(dir(target))
