"""The package's layers import downwards only: io < methods/models < engine < the front ends.

Every ``import`` and ``from ... import`` in every module of ``vsr`` (inside functions too,
where the lazy imports are) is read with :mod:`ast`; an import of a higher layer fails.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "vsr"

# Lower numbers are lower layers. A module may import its own layer and the ones below.
_LAYERS = {
    "vsr": 0, "vsr.errors": 0, "vsr.types": 0, "vsr.digest": 0,  # "vsr": the root's own names (__version__)
    "vsr.io": 1,
    "vsr.methods": 2, "vsr.models": 2,
    "vsr.engine": 3,
    "vsr.api": 4, "vsr.upscaler": 4, "vsr.cli": 4, "vsr.distributed": 4, "vsr.report": 4, "vsr.progress": 4,
    "vsr.verify": 4, "vsr.quality": 4, "vsr.__main__": 4,
}


def _layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        layer = _LAYERS.get(".".join(parts[:n]))
        if layer is not None:
            return layer
    raise KeyError(module)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every vsr module ``path`` imports (names imported from a package
    count as modules of it: ``from vsr.engine import window`` is ``vsr.engine.window``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "vsr":  # `from vsr import api`: the submodule, or a name of the package
                found += [(node.lineno, f"vsr.{a.name}" if f"vsr.{a.name}" in _LAYERS else "vsr")
                          for a in node.names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}:{node.lineno}: relative import; vsr imports by absolute name")
    return [(line, name) for line, name in found if name == "vsr" or name.startswith("vsr.")]


def _upward_imports() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for line, imported in _imports(path):
            if imported == module or imported.startswith(module + "."):
                continue  # a package importing its own submodules
            if _layer(imported) > _layer(module):
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {module} imports {imported}")
    return problems


def test_no_import_runs_back_up():
    assert _upward_imports() == []


def test_distributed_holds_only_the_ray_executor():
    modules = {_module_name(p) for p in (PACKAGE / "distributed").rglob("*.py")}
    assert modules == {"vsr.distributed", "vsr.distributed.ray_runner"}


def test_every_module_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        _layer(_module_name(path))  # KeyError names a module the table forgot


def test_the_walker_sees_lazy_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from vsr.engine.window import frame_windows\n")
    assert _imports(source) == [(2, "vsr.engine.window")]
