"""The front door: `make setup` installs only when what it installs changed, `make hooks` leaves a repository whose
`git diff` works without an activated venv, and the markers of `make test-fast` name tests that exist."""
import ast, json, os, shutil, sys
from pathlib import Path
from conftest import ROOT, MARKS, venv_bin, run

VENV_BIN = Path(sys.executable).parent


def test_marks_name_tests_that_exist():
    "A test renamed or removed in a file leaves no stale name in conftest's `MARKS` (it would no longer be marked slow)."
    stale = []
    for marker, files in MARKS.items():
        for file, names in files.items():
            path = ROOT/'tests'/file
            assert path.exists(), f"MARKS[{marker!r}] names {file}, which does not exist"
            if names == '*': continue
            defined = {n.name for n in ast.walk(ast.parse(path.read_text(encoding='utf-8')))
                       if isinstance(n, ast.FunctionDef) and n.name.startswith('test_')}
            stale += [f"{marker}: {file}::{n}" for n in sorted(set(names) - defined)]
    assert not stale, f"conftest.py's MARKS names tests that do not exist: {stale}"


# A stand-in for `python3` and for the venv's python: it logs how it was called, answers `--version`, and makes a
# venv by copying itself. `make setup` then runs in a moment and installs nothing, and the log says what it ran.
FAKE_PYTHON = '''#!/bin/sh
echo "$*" >> "$FAKE_LOG"
case "$1" in
  --version) echo "Python 3.11.7" ;;
  -m) if [ "$2" = venv ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; fi ;;
esac
'''

def installs(log:Path)->list:
    "The pip installs the fake pythons were asked for, in order."
    return [l.split(' install ', 1)[1] for l in log.read_text().splitlines() if ' pip install ' in l] if log.exists() else []


def test_setup_installs_only_when_its_inputs_change(project_copy):
    shutil.copy(ROOT/'Makefile', project_copy)
    fake, log = project_copy/'fake-python3', project_copy/'calls.log'
    fake.write_text(FAKE_PYTHON); fake.chmod(0o755)
    env = os.environ | {'FAKE_LOG': str(log)}
    def setup(*args):
        res = run(['make', '--no-print-directory', 'setup', f'PYTHON={fake}', 'VENV=venv', *args], cwd=project_copy, env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout
    first = setup()
    assert installs(log) == ['--upgrade pip', 'torch==2.13.0', "-e .[dev]"], log.read_text()
    assert all(f'[{i}/4]' in first for i in range(1, 5)) and 'ready' in first, first   # one line a step, and times
    assert setup() == '' and len(installs(log)) == 3                                  # nothing changed: no install

    pyproject = project_copy/'pyproject.toml'
    res = run([venv_bin('nbdev-export')], cwd=project_copy)                          # rewrites pyproject.toml
    assert res.returncode == 0, res.stderr
    later = (project_copy/'venv'/'.installed').stat().st_mtime + 10
    os.utime(pyproject, (later, later))                                               # newer than the stamp, whatever nbdev does
    assert setup() == '' and len(installs(log)) == 3, "a pyproject.toml rewritten with the same text reinstalled"
    pyproject.write_text(pyproject.read_text() + '\n[tool.pytest.ini_options.extra]\nx = 1\n')
    assert setup() == '' and len(installs(log)) == 3, "a change to a table pip does not read reinstalled"

    pyproject.write_text(pyproject.read_text().replace('"tqdm>=4.60",', '"tqdm>=4.61",'))
    setup()
    assert len(installs(log)) == 6, "a changed dependency did not reinstall"
    cpu = 'torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu'
    setup(f'TORCH={cpu}')
    assert installs(log)[-2] == cpu, installs(log)
    setup()
    assert len(installs(log)) == 9, "TORCH, once given, is kept: a later command without it reinstalled"


NOTEBOOK = dict(nbformat=4, nbformat_minor=5, metadata={}, cells=[
    dict(cell_type='code', id='c0', metadata={}, outputs=[], execution_count=None, source='x = 1')])

def test_hooks_make_git_diff_work_without_the_venv(tmp_path):
    "`make hooks` in a fresh repository; then `git diff` of a notebook runs nbdev's driver with no venv on PATH."
    repo, home = tmp_path/'repo', tmp_path/'home'
    (repo/'nbs').mkdir(parents=True); home.mkdir()
    for f in ('Makefile', '.gitignore', '.gitattributes'): shutil.copy(ROOT/f, repo)
    nb = repo/'nbs'/'a.ipynb'
    nb.write_text(json.dumps(NOTEBOOK, indent=1))
    path = os.pathsep.join(p for p in os.environ['PATH'].split(os.pathsep) if Path(p).resolve() != VENV_BIN.resolve())
    env = {k: v for k, v in os.environ.items() if k not in ('VIRTUAL_ENV', 'GIT_DIR', 'GIT_WORK_TREE')}
    env |= {'HOME': str(home), 'PATH': path, 'GIT_CONFIG_NOSYSTEM': '1', 'GIT_AUTHOR_NAME': 'a', 'GIT_AUTHOR_EMAIL': 'a@b.c',
            'GIT_COMMITTER_NAME': 'a', 'GIT_COMMITTER_EMAIL': 'a@b.c'}
    git = lambda *args, cwd=repo: run(['git', *args], cwd=cwd, env=env)
    assert git('init', '-q').returncode == 0
    assert git('add', '-A').returncode == 0 and git('commit', '-qm', 'start').returncode == 0
    NOTEBOOK['cells'][0]['source'] = 'x = 2'
    nb.write_text(json.dumps(NOTEBOOK, indent=1))
    assert run([str(VENV_BIN/'nbdev-install-hooks')], cwd=repo, env=env).returncode == 0
    res = git('diff')                                     # nbdev's hooks alone: git looks for the driver on PATH
    assert res.returncode != 0 and 'cannot run nbdev-diff-driver' in res.stderr, res.stdout + res.stderr

    res = run(['make', '-o', 'setup', 'hooks', f'VENV={VENV_BIN.parent}'], cwd=repo, env=env)   # the tests' venv, as it is
    assert res.returncode == 0, res.stdout + res.stderr
    for cwd in (repo, repo/'nbs'):
        res = git('diff', cwd=cwd)
        assert res.returncode == 0 and 'cannot run' not in res.stderr, res.stderr
        assert '## modified c0' in res.stdout and '2' in res.stdout, res.stdout    # nbdev's diff, cell by cell
    assert git('status', '--porcelain').stdout.split() == ['M', 'nbs/a.ipynb'], git('status', '--porcelain').stdout  # .gitconfig ignored, .gitattributes as committed
    hook = Path(git('rev-parse', '--git-path', 'hooks').stdout.strip())
    assert str(VENV_BIN) in ((repo/hook) if not hook.is_absolute() else hook).joinpath('post-merge').read_text()
    assert 'nbdev_clean_jupyter' in (home/'.jupyter'/'jupyter_server_config.py').read_text()
