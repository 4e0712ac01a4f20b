"""The library's rooms and the direction of its imports, read from the source (ast)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

SRC = ROOT / "src"
ROOMS = ("experiments", "course", "grading")


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every posenc module that ``path`` imports, at the top or inside a function."""
    found = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else None
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("posenc")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level and package:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            if base.startswith("posenc"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    return {
        name: {m for m in _imports(path) if m in modules} - {name} for name, path in modules.items()
    }


def test_there_is_no_import_cycle():
    graph, state, cycles = _graph(), {}, []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(" → ".join(stack[stack.index(nxt) :] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_encodings_do_not_import_the_rooms_above_them():
    for name, targets in _graph().items():
        if name.count(".") == 1 and name.split(".")[1] not in ROOMS:  # posenc.rope, …
            above = sorted(t for t in targets if t.split(".")[1:2] and t.split(".")[1] in ROOMS)
            assert not above, f"{name} imports {above}: an encoding must not need the rooms"


def test_experiments_do_not_import_grading_or_course():
    for name, targets in _graph().items():
        if name.startswith("posenc.experiments"):
            wrong = sorted(t for t in targets if t.startswith(("posenc.grading", "posenc.course")))
            assert not wrong, f"{name} imports {wrong}"


def test_the_rooms_exist_and_every_module_sits_in_one():
    top = {p.stem for p in (SRC / "posenc").glob("*.py")}
    assert not top & {"model", "data", "bench", "viz", "doctor", "warm_kernels", "cli"}, top
    for room in ROOMS:
        assert (SRC / "posenc" / room / "__init__.py").is_file(), room


def test_no_library_function_is_longer_than_sixty_lines():
    too_long = []
    for path in sorted((SRC / "posenc").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    too_long.append(f"{_module_name(path)}.{node.name}: {length} lines")
    assert not too_long, "split these:\n" + "\n".join(too_long)
