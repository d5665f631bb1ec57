"""`fastnote-demo` as a user runs it: the installed console script, in a subprocess, with what it prints and writes."""
import re, sys
from pathlib import Path
import pytest
from conftest import run

pytest.importorskip('sklearn', reason="the demo's data comes from scikit-learn (fastnote's demo and dev extras)")

DEMO = Path(sys.executable).parent/'fastnote-demo'
OPTIMIZERS = ('sgd', 'sgd_mom', 'rmsprop', 'adam', 'adamw', 'radam', 'lamb', 'larc', 'nadam', 'qhadam', 'ranger', 'lion',
              'schedule_free', 'adafactor', 'muon')     # the demo's names, written out: a test of what it offers


def demo(*args, cwd):
    "Run `fastnote-demo *args` in `cwd`; the completed process, its output captured as text."
    assert DEMO.exists(), f"no console script at {DEMO}: install the package (pip install -e '.[dev]')"
    return run([str(DEMO), *map(str, args)], cwd=cwd, timeout=120)


def is_png(path:Path)->bool: return path.is_file() and path.stat().st_size > 1000 and path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_trains_prints_the_table_and_writes_the_plots(tmp_path):
    out = tmp_path/'plots'
    res = demo('--opt', 'Adam', '--epochs', 2, '--out', out, '--no-bar', cwd=tmp_path)    # names in any case
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    header = [i for i, l in enumerate(lines) if l.split() == ['epoch', 'train_loss', 'valid_loss', 'accuracy', 'time']]
    assert len(header) == 1, res.stdout
    rows = lines[header[0] + 1:header[0] + 3]
    assert [r.split()[0] for r in rows] == ['0', '1'], res.stdout                 # one row per epoch
    assert all(len(r.split()) == 5 for r in rows), rows
    m = re.search(r'^final validation accuracy: ([\d.]+)', res.stdout, re.M)
    assert m and float(m.group(1)) > 0.9, res.stdout
    assert is_png(out/'loss.png') and is_png(out/'schedule.png'), sorted(out.iterdir())
    assert 'Traceback' not in res.stderr, res.stderr


def test_compare_ranks_every_optimizer(tmp_path):
    res = demo('--compare', '--epochs', 1, '--out', tmp_path, '--no-bar', cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    board = res.stdout[res.stdout.index('leaderboard'):].splitlines()
    ranked = [l.split()[1] for l in board[2:2 + len(OPTIMIZERS)]]                 # title, header, then one row each
    assert sorted(ranked) == sorted(OPTIMIZERS), res.stdout
    assert is_png(tmp_path/'compare.png')
    assert '[13/15] schedule_free, constant lr 0.01' in res.stdout, res.stdout     # its own schedule


@pytest.mark.parametrize('args,named', [(['--opt', 'nope'], "'nope'"), (['--epochs', '0'], '0'), (['--lr', '-1'], '-1'),
                                        (['--sched', 'cosine'], "'cosine'"),
                                        (['--compare', '--sched', 'constant'], 'leave out --sched constant')])
def test_bad_option_is_one_line_not_a_traceback(tmp_path, args, named):
    res = demo(*args, '--out', tmp_path/'out', cwd=tmp_path)
    assert res.returncode != 0
    err = res.stderr.strip()
    assert 'Traceback' not in err and len(err.splitlines()) == 1, err
    assert named in err, err
    if args[0] == '--opt': assert all(o in err for o in OPTIMIZERS), err           # it says what would do
    assert not (tmp_path/'out').exists()                                          # and stops before any work


def test_help_shows_the_choices(tmp_path):
    "`--help` shows what each name option takes, not a placeholder such as `--opt (str)`."
    res = demo('--help', cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for shown in ('--opt {' + ','.join(OPTIMIZERS) + '}', '--sched {one_cycle,constant}', '--out DIR'):
        assert shown in res.stdout, res.stdout
    assert '(str)' not in res.stdout, res.stdout


@pytest.mark.parametrize('out,named', [('taken', 'is a file, not a folder'), ('taken/plots', 'cannot make the folder')])
def test_an_unusable_out_is_one_line_not_a_traceback(tmp_path, out, named):
    (tmp_path/'taken').write_text('a file where the plots would go')
    res = demo('--epochs', 1, '--out', tmp_path/out, cwd=tmp_path)
    assert res.returncode != 0
    err = res.stderr.strip()
    assert 'Traceback' not in err and len(err.splitlines()) == 1, err
    assert named in err and str(tmp_path/out) in err, err
    assert 'epoch' not in res.stdout, res.stdout                                   # it stops before training
