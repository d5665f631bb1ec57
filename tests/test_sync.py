"""The package, the notebooks and the README agree: exporting or cleaning changes nothing, the README is generated."""
import json, re
from pathlib import Path
import pytest
from conftest import ROOT, NBS, venv_bin, run


def tree_files(folder:Path)->dict:
    "`{relative path: bytes}` of the files under `folder`, caches left out."
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob('*'))
            if p.is_file() and '__pycache__' not in p.parts and '.ipynb_checkpoints' not in p.parts}


def changed(before:dict, after:dict)->list:
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def test_export_leaves_no_diff(project_copy):
    "fastnote/ is exactly what `nbdev-export` writes from nbs/: nobody edited the package by hand or forgot to export."
    before = tree_files(project_copy)
    res = run([venv_bin('nbdev-export')], cwd=project_copy)
    assert res.returncode == 0, res.stderr
    diff = changed(before, tree_files(project_copy))
    assert not diff, f"nbdev-export would change {diff}: run `nbdev-export` (or `make export`) and commit the result"


def test_notebooks_are_clean(project_copy):
    "`nbdev-clean` changes nothing: no execution counts, stray metadata or object ids in the committed notebooks."
    before = tree_files(project_copy/'nbs')
    res = run([venv_bin('nbdev-clean')], cwd=project_copy)
    assert res.returncode == 0, res.stderr
    diff = changed(before, tree_files(project_copy/'nbs'))
    assert not diff, f"nbdev-clean would change {diff}: run `nbdev-clean` (or `make export`) and commit the result"


def test_readme_is_generated_from_index():
    "README.md is what `make readme` makes from nbs/index.ipynb, with no nbdev directive and no hidden cell in it."
    from docs import build_readme
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    assert readme == build_readme(out=None), "README.md is stale: run `make readme` and commit it"
    assert not re.search(r'^\s*#\|', readme, re.MULTILINE), "README.md contains an nbdev directive"
    index = json.loads((NBS/'index.ipynb').read_text(encoding='utf-8'))
    hidden = [''.join(c['source']) for c in index['cells'] if c['cell_type'] == 'code'
              and re.match(r'#\|\s*(hide|export)', ''.join(c['source']))]
    for src in hidden:
        body = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
        assert body not in readme, f"README.md shows a hidden cell of index.ipynb: {body[:80]!r}"


def test_readme_has_what_a_newcomer_needs():
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    for needed in ('## Install', '## Quick start', 'make demo', 'make test', 'settings.ini', '## Chapters'):
        assert needed in readme, f"README.md lacks {needed!r}"
    for link in re.findall(r'\]\((nbs/[^)#]+)', readme):
        assert (ROOT/link).exists(), f"README.md links to {link}, which does not exist"


def test_nbdev3_config_only():
    "nbdev 3 keeps its settings in pyproject.toml and refuses settings.ini; setup.py's role is [project]."
    assert not (ROOT/'settings.ini').exists() and not (ROOT/'setup.py').exists()
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    assert cfg.config_file == ROOT/'pyproject.toml' and cfg.lib_path == ROOT/'fastnote'
