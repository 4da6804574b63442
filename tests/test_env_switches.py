"""tinyconv's environment switches take only the values they document: a typo is an error that
names the variable, not the default in silence."""

import os
import subprocess
import sys

import pytest

from tinyconv._utils import env_choice

SWITCHES = {  # variable: the values it takes (the first is read at import by the module shown)
    "TINYCONV_DIRECT_CONV": ("0", "1"),
    "TINYCONV_WINOGRAD": ("0", "1"),
    "TINYCONV_ADAPTIVE_THREADS": ("0", "1", "all"),
    "TINYCONV_MALLOC_TUNING": ("0", "1"),
}


@pytest.mark.parametrize("name", sorted(SWITCHES))
def test_env_choice_takes_the_documented_values_only(monkeypatch, name):
    choices = SWITCHES[name]
    monkeypatch.delenv(name, raising=False)
    assert env_choice(name, choices) == "1"
    for value in choices:
        monkeypatch.setenv(name, value)
        assert env_choice(name, choices) == value
    monkeypatch.setenv(name, "yes")
    with pytest.raises(ValueError, match=f"{name} must be one of .*got 'yes'"):
        env_choice(name, choices)


def test_a_typo_stops_the_import_with_the_variable_named():
    env = dict(os.environ, TINYCONV_ADAPTIVE_THREADS="al")
    done = subprocess.run([sys.executable, "-c", "import tinyconv"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert ("environment variable TINYCONV_ADAPTIVE_THREADS must be one of '0', '1', 'all' "
            "(default '1'); got 'al'") in done.stderr


def test_each_switch_is_read_through_env_choice():
    """Every switch above is read by env_choice in the library (none by a bare os.environ)."""
    root = os.path.join(os.path.dirname(os.path.dirname(__file__)), "tinyconv")
    sources = ""
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                with open(os.path.join(folder, f), encoding="utf-8") as fh:
                    sources += fh.read()
    for name in SWITCHES:
        assert f'env_choice("{name}"' in sources, name
        assert f'environ.get("{name}"' not in sources, name
