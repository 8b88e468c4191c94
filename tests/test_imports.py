"""Imports point down: core training never imports an experiment (shrink, study) or the reports, and the
shrink experiment never reaches into the study's or the reports' modules. Read from the source with ast,
function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "asr_transfer"

# package folder -> the asr_transfer subpackages its modules must not import
FORBIDDEN = {
    "training": ("asr_transfer.shrink", "asr_transfer.study", "asr_transfer.analysis"),
    "shrink": ("asr_transfer.study", "asr_transfer.analysis"),
}
# Imports still to be moved (issue 20) by the owner of the file: (file, module). Delete the entry when the
# import is gone.
PENDING: set[tuple[str, str]] = set()


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_imports_point_down():
    wrong = []
    for folder, forbidden in FORBIDDEN.items():
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            name = path.relative_to(PACKAGE).as_posix()
            for module in sorted(imported_modules(path)):
                if not any(module == bad or module.startswith(bad + ".") for bad in forbidden):
                    continue
                if not any(entry[0] == name and module.startswith(entry[1]) for entry in PENDING):
                    wrong.append(f"{name} imports {module}")
    assert not wrong, "imports must point down: " + "; ".join(wrong)
