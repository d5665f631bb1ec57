"""Shared paths and helpers for fastnote's cross-cutting tests."""
import shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
sys.path.insert(0, str(ROOT/'tools'))   # tools/docs.py: the offline site and README builder


SUMMARY = []   # lines the test modules want printed at the end of the run (figures, not verdicts)


def pytest_terminal_summary(terminalreporter):
    for line in SUMMARY: terminalreporter.write_line(line)


def notebooks():
    "Every notebook in nbs/, in the order of the site's pages."
    from docs import notebook_pages
    return [NBS/name for name in notebook_pages()]


def venv_bin(name:str)->str:
    "A console script of the environment running the tests (nbdev-export, nbdev-clean, ...)."
    return str(Path(sys.executable).parent/name)


@pytest.fixture
def project_copy(tmp_path):
    "A copy of what nbdev reads and writes (nbs/, fastnote/, pyproject.toml), to run nbdev commands without touching the tree."
    for d in ('nbs', 'fastnote'): shutil.copytree(ROOT/d, tmp_path/d, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    shutil.copy(ROOT/'pyproject.toml', tmp_path)
    return tmp_path


def run(cmd, cwd, **kw):
    "Run `cmd`, returning the completed process; output captured as text."
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, **kw)
