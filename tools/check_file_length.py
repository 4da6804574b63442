"""Fail when a Python file in a folder is longer than a given number of lines.

Usage::

    python tools/check_file_length.py tinyconv 500

prints ``path: N lines (limit L)`` for every ``*.py`` file under the folder that has more than
``L`` lines, and exits with status 1 if there is any (0 otherwise).

CI (``.ci/run``) runs it on the library (``tinyconv/``), the examples (``examples/``) and the
PyTorch side (``parity/``), not on ``tests/``. The limit exists so that a student can read one
idea per file: the library is what students read to learn how the framework works, and the
examples and ``parity/`` are what they read to learn how it is used and checked against PyTorch.
A file there that outgrows the limit holds more than one idea (``examples/common.py`` and
``parity/cli.py`` did, and were split where one concept ends and the next begins). A test file
mirrors one library module and is a list of independent cases, so its length measures how
thoroughly that module is tested, not how hard it is to read; splitting it would scatter one
module's tests.
"""

from __future__ import annotations

import sys
from pathlib import Path


def count_lines(path: Path) -> int:
    """Number of lines in ``path`` (a last line without a newline counts too)."""
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def long_files(folder: str | Path, limit: int) -> list[tuple[Path, int]]:
    """Every ``*.py`` file under ``folder`` with more than ``limit`` lines, with its line count,
    sorted by path."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"folder must be an existing directory, got {str(folder)!r}")
    if limit < 1:
        raise ValueError(f"limit must be a positive number of lines, got {limit}")
    found = []
    for path in sorted(folder.rglob("*.py")):
        n = count_lines(path)
        if n > limit:
            found.append((path, n))
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python tools/check_file_length.py FOLDER MAX_LINES", file=sys.stderr)
        return 2
    folder, limit = argv[0], int(argv[1])
    found = long_files(folder, limit)
    for path, n in found:
        print(f"{path}: {n} lines (limit {limit})")
    if found:
        print(f"{len(found)} file(s) over {limit} lines: split them along their natural seams",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
