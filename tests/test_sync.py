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
    for needed in ('## Install', '## Quick start', 'make demo', 'make test-fast', 'make test', "fastnote[demo]", 'TORCH=',
                   'make hooks', 'source .venv/bin/activate', 'settings.ini', '## Chapters'):
        assert needed in readme, f"README.md lacks {needed!r}"
    for cmd in ('nbdev-preview', 'nbdev-prepare', 'nbdev-docs', 'nbdev-readme', 'nbdev-install-hooks'):   # each mapped
        assert re.search(rf'^\| `{cmd}` \| `make \w+`', readme, re.M), f"README.md's table says nothing of {cmd}"


def test_readme_reads_on_a_package_index():
    """README.md is also the package's page on PyPI: every link is absolute and points at a page of the site or a file
    of the repository that exists, and no TeX is left in its prose."""
    from docs import doc_url, notebook_pages, _re_code, _re_fence
    from nbdev.config import get_config
    readme = (ROOT/'README.md').read_text(encoding='utf-8')
    site, pages = doc_url(), set(notebook_pages().values())
    repo = f"{get_config(ROOT).git_url.rstrip('/')}/blob/{get_config(ROOT).branch}/"
    for target in re.findall(r'\]\(([^)\s]+)\)', _re_fence.sub('', readme)):
        assert re.match(r'https?://|#', target), f"README.md has a relative link, {target}, which PyPI cannot follow"
        path = target.split('#')[0]
        if path.startswith(site): assert path[len(site):].removesuffix('.html') in pages, f"no page for {target}"
        if path.startswith(repo): assert (ROOT/path[len(repo):]).exists(), f"README.md links to {target}, not in the repository"
    tex = re.findall(r'\$[^$\s][^$\n]*\$', _re_code.sub('', readme))
    assert not tex, f"README.md's prose has TeX, which PyPI shows as it is written: {tex}"


def test_links_made_absolute_and_math_made_text():
    from docs import absolute_links, math_as_text
    pages, site, repo = {'01_sgd.ipynb': 'sgd', '99_demo.ipynb': 'demo'}, 'https://h.io/fn/', 'https://github.com/o/fn'
    md = ('[a](nbs/01_sgd.ipynb), [`b`](nbs/99_demo.ipynb#the-loop), [c](LICENSE), ![d](img/x.png), [e](https://x.org), '
          '[f](#install), `[g](nbs/01_sgd.ipynb)`\n```\n[h](Makefile)\n```\n')
    assert absolute_links(md, pages, site, repo) == (
        '[a](https://h.io/fn/sgd.html), [`b`](https://h.io/fn/demo.html#the-loop), [c](https://github.com/o/fn/blob/main/LICENSE), '
        '![d](https://github.com/o/fn/raw/main/img/x.png), [e](https://x.org), [f](#install), `[g](nbs/01_sgd.ipynb)`\n'
        '```\n[h](Makefile)\n```\n')                              # code stays as it is written
    assert math_as_text('Fit $y = 3x + 2$; $5 or $10; `$HOME`.') == 'Fit y = 3x + 2; $5 or $10; `$HOME`.'
    assert math_as_text(r'$\beta_1 \times \theta$ and $$\frac{\hat{m}_t}{\sqrt{\hat{v}_t} + \epsilon}$$') == (
        'β_1 × θ and \n```\n(m\u0302_t)/(√(v\u0302_t) + ε)\n```\n')


def test_nbdev3_config_only():
    "nbdev 3 keeps its settings in pyproject.toml and refuses settings.ini; setup.py's role is [project]."
    assert not (ROOT/'settings.ini').exists() and not (ROOT/'setup.py').exists()
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    assert cfg.config_file == ROOT/'pyproject.toml' and cfg.lib_path == ROOT/'fastnote'
