"""No Python file of the library is over 500 lines (tools/check_file_length.py; CI runs it too)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

from check_file_length import long_files  # noqa: E402  (tools/ is not a package)

LIMIT = 500


def test_no_library_file_over_the_limit():
    found = long_files(ROOT / "tinyconv", LIMIT)
    assert not found, "split these files: " + ", ".join(
        f"{path.relative_to(ROOT)} ({n} lines)" for path, n in found)


def test_the_check_reports_a_long_file_and_fails(tmp_path):
    (tmp_path / "short.py").write_text("x = 1\n" * LIMIT)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "long.py").write_text("x = 1\n" * (LIMIT + 1))
    assert long_files(tmp_path, LIMIT) == [(tmp_path / "sub" / "long.py", LIMIT + 1)]
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "check_file_length.py"), str(tmp_path), str(LIMIT)],
        capture_output=True, text=True)
    assert result.returncode == 1
    assert f"long.py: {LIMIT + 1} lines (limit {LIMIT})" in result.stdout
    assert "short.py" not in result.stdout
