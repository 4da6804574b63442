"""Test-wide settings.

In CI (the CI environment variable is set) hypothesis runs derandomized: the same examples on
every run, so that a red build always reproduces. Locally it explores new examples each run.
"""

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
