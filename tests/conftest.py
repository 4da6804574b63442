"""Test-wide settings.

In CI (the CI environment variable is set) hypothesis runs derandomized: the same examples on
every run, so that a red build always reproduces. Locally it explores new examples each run.
"""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(autouse=True)
def _fusion_restored():
    """Every test starts with nn.Sequential's fusion on and leaves it on, whatever it set."""
    from tinyconv import nn

    nn.set_fusion(True)
    yield
    nn.set_fusion(True)


def pytest_terminal_summary(terminalreporter):
    """Report how many random inputs the fuzz tests tried (issue: count them in CI)."""
    fuzz = __import__("sys").modules.get("test_fuzz")
    if fuzz is not None and fuzz.TRIED["count"]:
        tried = fuzz.TRIED
        terminalreporter.write_line(
            f"fuzz: {tried['count']} inputs tried against torch; tinyconv refused "
            f"{tried['stricter']} that torch accepted, with a clear error")
        for example in sorted(tried.get("examples", ()))[:12]:
            terminalreporter.write_line(f"  stricter: {example}")
