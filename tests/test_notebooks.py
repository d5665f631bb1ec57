"""Every notebook in nbs/ runs top to bottom (one test each, named after the notebook), the way `nbdev-test` runs it,
and its stored outputs hold what a run makes: the docs site shows stored outputs, so a missing plot is a bug, and so
is a printed number that the code no longer produces.

Two checks per notebook, on the cells the run executed:

1. a cell whose run makes a plot (or any output) has a stored one;
2. the text a cell shows (stdout and stderr streams, the text/markdown or text/plain of a result or display, error
   names and messages) is the stored text, once both sides are put through `NORMALISERS` (what legitimately changes
   between runs: times, progress bars, addresses, temporary paths, warnings' locations, trailing whitespace) and
   numbers are compared as in `same_text` (integers exactly, floats to a relative `FLOAT_RTOL`, 1e-2, or as set by
   the environment variable FASTNOTE_NB_RTOL: 0 demands identical text).

A cell whose text legitimately differs from run to run opts out of check 2 with the directive `#| output-varies`
(or `#| output-varies: true`) among the `#|` lines at its top; check 1 still applies to it. nbdev-clean keeps the
line (`--dirs` writes it bare), nbdev-export ignores it, and the docs build drops it from the page.
"""
import difflib, json, math, os, re, sys, tempfile, warnings
from contextlib import contextmanager
from pathlib import Path
import pytest
from conftest import package_classes_kept, ROOT, notebooks


# Python's default warning filters (docs.python.org/3/library/warnings.html#default-warning-filter), as a plain
# `python` or `nbdev-test` process has them; pytest replaces them for each test with its own
_PYTHON_DEFAULT_FILTERS = [('default', DeprecationWarning, '__main__'), ('ignore', DeprecationWarning, ''),
                           ('ignore', PendingDeprecationWarning, ''), ('ignore', ImportWarning, ''),
                           ('ignore', ResourceWarning, '')]

def _print_warning(message, category, filename, lineno, file=None, line=None):
    (file or sys.stderr).write(warnings.formatwarning(message, category, filename, lineno, line))

@contextmanager
def warnings_as_nbdev_test():
    """Warnings as `nbdev-test --save` (so `make nbs`) stores them: Python's default filters (and `-W` options), each
    warning printed to stderr, which the shell captures as the cell's, instead of pytest recording it for its summary;
    and shown once per place as in a fresh process, whatever ran before in this one. The filters come back after."""
    with warnings.catch_warnings():
        warnings.resetwarnings()
        for action, category, module in _PYTHON_DEFAULT_FILTERS:
            warnings.filterwarnings(action, category=category, module=module, append=True)
        if hasattr(warnings, '_processoptions'): warnings._processoptions(sys.warnoptions)
        warnings.showwarning = _print_warning
        yield


def run_notebook(path:Path):
    "Execute the cells `nbdev-test` would run; returns `(notebook with fresh outputs, indices run, error report or None)`."
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.config import get_config
    from nbdev.process import NBProcessor
    from nbdev.test import nb_test_cells
    cfg = get_config(path.parent)
    skip_flags = cfg.tst_flags.split() if isinstance(cfg.tst_flags, str) else list(cfg.tst_flags or [])
    nb = NBProcessor(path, rm_directives=False, process=True).nb
    to_run = {c.idx_ for c in nb_test_cells(path, skip_flags)}
    with warnings_as_nbdev_test(), package_classes_kept():   # the shell adds its own filter for `__main__` as it starts
        shell = CaptureShell(path, profile=bool(cfg.exec_profile))
        try:
            with working_directory(path.parent):
                shell.run_all(nb, exc_stop=True, preproc=lambda c: c.idx_ not in to_run, cell_timeout=cfg.cell_timeout)
            return nb, to_run, None
        except BaseException:
            return nb, to_run, shell.prettytb(fname=path)
        finally:
            shell.close()


def joined(text)->str:
    "Notebook text fields are a string or a list of lines."
    return ''.join(text) if isinstance(text, list) else (text or '')


def first_line(cell)->str:
    "The first line of a cell's code, its `#|` directives skipped: how a report names the cell."
    lines = [l for l in joined(cell['source']).splitlines() if l.strip() and not l.lstrip().startswith('#|')]
    return lines[0][:60] if lines else ''


def output_kinds(outputs)->set:
    "What a cell shows: 'image' for plots and pictures, 'text' for anything else."
    kinds = set()
    for o in outputs:
        data = o.get('data', {})
        kinds.add('image' if any(k.startswith('image/') for k in data) else 'text')
    return kinds


def missing_outputs(stored_nb:dict, run_nb, ran:set)->list:
    "Cells whose run makes a plot (or any output) that the stored notebook lacks."
    problems = []
    for idx in sorted(ran):
        stored = stored_nb['cells'][idx]
        fresh, kept = output_kinds(run_nb.cells[idx].get('outputs', [])), output_kinds(stored.get('outputs', []))
        if 'image' in fresh and 'image' not in kept: problems.append(f"cell {idx} ({first_line(stored)!r}) makes a plot")
        elif fresh and not kept: problems.append(f"cell {idx} ({first_line(stored)!r}) prints output")
    return problems


# ---- the text a cell shows, and what may change between two runs of it ----

OPT_OUT = 'output-varies'   # `#| output-varies`: this cell's text is not compared with the stored one

_TMP = re.escape(Path(tempfile.gettempdir()).as_posix())
_NUM = r'\d+(?:\.\d+)?(?:[eE][-+]?\d+)?'
_TIME_UNIT = r'(?:ns|µs|μs|us|ms|s|sec|secs|seconds|min|mins|minutes)'
_TIME_COLUMNS = {'time', 'times', 'seconds', 'secs', 'sec', 'elapsed', 'duration', 'wall', 'wall_time', 'time_s'}

def _keep_after_cr(text:str)->str:
    "What a terminal shows of a line rewritten with carriage returns (tqdm, fastprogress): its last version."
    return '\n'.join(l.rsplit('\r', 1)[-1] for l in text.split('\n'))

_re_header_field = re.compile(r'[A-Za-z_]\w*')

def _time_columns(text:str)->str:
    """Blank the cells of a table's timing column. A header is a line of two or more names (space- or
    comma-separated, `epoch  train_loss ... time`) one of which is a timing column (`time`, `seconds`, ...); its rows
    are the lines below it with as many fields, up to the first line that has not."""
    out, col, sep, n = [], None, None, 0
    for line in text.split('\n'):
        fields = line.split(sep)
        if col is not None and len(fields) == n and line.strip():
            if sep == ',': fields[col] = '<time>'; out.append(','.join(fields)); continue
            spans = list(re.finditer(r'\S+', line))
            a = spans[col].start()
            out.append(line[:a] + '<time>' + ('  ' + line[spans[col + 1].start():] if col + 1 < len(spans) else ''))
            continue
        col = None
        for s in (',', None):
            head = [f.strip() for f in line.split(s)]
            if len(head) < 2 or not all(_re_header_field.fullmatch(f) for f in head): continue
            hits = [i for i, f in enumerate(head) if f.lower() in _TIME_COLUMNS]
            if hits: col, sep, n = hits[0], s, len(head); break
        out.append(line)
    return '\n'.join(out)

def _local_paths(text:str)->str:
    for path, name in ((sys.prefix, '<prefix>'), (ROOT, '<root>'), (Path.home(), '~')):
        if len(path := Path(path).as_posix()) > 1: text = text.replace(path, name)
    return text

def _file_line(m)->str: return 'File "<file>", line <line>' if m.group(0).startswith('File') else '<n>'

# (what, pattern or function, replacement): applied in order to the stored and to the fresh text alike
NORMALISERS = [
    ("line ends: CRLF as LF", r'\r\n', '\n'),
    ("ANSI colour and cursor codes removed", r'\x1b\[[0-9;?]*[A-Za-z]', ''),
    ("carriage returns: only a line's last rewrite is kept, as a terminal shows it", _keep_after_cr, None),
    ("progress-bar lines removed (tqdm's `42%|###  | 5/12 [00:01<00:02, 3.1it/s]`, fastprogress' blocks)",
     r'(?m)^.*(?:\d+%\|.*\||[█▏▎▍▌▋▊▉]{2,}|\d+/\d+ \[\d+:\d+<).*\n?', ''),
    ("a table's timing column (header `time`, `seconds`, ...; space- or comma-separated, as the Learner's results"
     " table, the demo's leaderboard and CSVLogger print it) -> <time>", _time_columns, None),
    ("durations: a number with a time unit (`0.03s`, `1.2 ms`, `850µs`, `3 min`) -> <time>",
     rf'(?<![\w.]){_NUM}\s?{_TIME_UNIT}\b', '<time>'),
    ("clock times (`01:23`, `1:02:03`, `00:05.2`) -> <time>", r'(?<![\w:.])\d{1,2}(?::\d{2}){1,2}(?:\.\d+)?(?![\w:])', '<time>'),
    ("rates (`3.1it/s`, `120 samples/s`) -> <rate>", rf'(?<![\w.]){_NUM}\s?(?:it|s|steps|samples|batches)/(?:s|it)\b', '<rate>'),
    ("speed ratios from timing code (`1.07×`, `3 ×`, `0.61x`; a bare `3x` stays) -> <ratio>",
     rf'(?<![\w.])(?:{_NUM}\s?×|\d+\.\d+x)(?![\w×])', '<ratio>'),
    ("object ids in reprs dropped as nbdev-clean drops them (`<f at 0x7f..>` -> `<f>`)", r'(<[^<>\n]*?) at 0x[0-9a-fA-F]+(>)', r'\1\2'),
    ("other addresses (`0x7f3a2b1c4d50`) -> 0x<addr>", r'\b0x[0-9a-fA-F]{6,}\b', '0x<addr>'),
    ("temporary paths (`/tmp/tmpe3rm5hll/run`) -> <tmp>/run", rf'{_TMP}/[^\s/\'"():,]+', '<tmp>'),
    ("the Python environment's, the repository's and the home folder's paths -> <prefix>, <root>, ~",
     _local_paths, None),
    ("warnings' file paths and line numbers (`/x/y.py:123: UserWarning: ...` -> `<file>:<line>: UserWarning: ...`)",
     r'(?m)^\S.*?:\d+:(?= \w*(?:Warning|Error)\b)', '<file>:<line>:'),
    ("... and tracebacks' (`File \"/x/y.py\", line 123` -> `File \"<file>\", line <line>`, `Cell In[7]` -> `Cell In[<n>]`)",
     r'File "[^"\n]+", line \d+|(?<=Cell In\[)\d+(?=\])', _file_line),
    ("trailing whitespace on each line removed", r'(?m)[ \t]+$', ''),
    ("blank lines at the end removed", r'\n+\Z', ''),
]
NORMALISERS = [(what, re.compile(p) if isinstance(p, str) else p, r) for what, p, r in NORMALISERS]

def normalise(text:str)->str:
    "`text` with what changes between runs (see `NORMALISERS`) replaced by placeholders."
    for _, p, r in NORMALISERS: text = p(text) if callable(p) else p.sub(r, text)
    return text


_SHOWN_ELSEWHERE = ('text/html', 'image/', 'application/javascript', 'application/vnd.jupyter.widget-view+json')

def shown_text(outputs)->list:
    """The text a cell shows, one string per output: `stdout: ...`, `stderr: ...`, `error: Name: message` (the
    traceback, full of paths and colour codes, is left out), and of a result or display what the page renders when
    that is text: its text/markdown, else its text/latex, else its text/plain. A display with a picture or HTML shows
    that instead (check 1 covers pictures), so its text/plain, a mere repr, is not compared. Consecutive pieces of
    one stream are one piece."""
    shown = []
    for o in outputs:
        kind, data = o.get('output_type'), o.get('data', {})
        if kind == 'stream':
            label, text = o.get('name', 'stdout'), joined(o.get('text'))
            if shown and shown[-1][0] == label: shown[-1] = (label, shown[-1][1] + text); continue
            shown.append((label, text))
        elif kind == 'error': shown.append(('error', f"{o.get('ename')}: {o.get('evalue')}"))
        elif kind in ('execute_result', 'display_data'):
            if any(k.startswith(_SHOWN_ELSEWHERE) for k in data): continue
            mime = next((m for m in ('text/markdown', 'text/latex', 'text/plain') if m in data), None)
            if mime: shown.append((mime, joined(data[mime])))
    return [f"{label}: {normalise(text)}" for label, text in shown]


# numbers as they are printed, not inside names (`float32`, `x86_64`, `#L21`)
_re_number = re.compile(r'(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?')

# How close two printed floats must be. The notebooks are seeded and run on CPU, so on one machine every rerun prints
# exactly the same (set FASTNOTE_NB_RTOL=0 to demand that). But PyTorch picks its CPU kernels by instruction set, and
# AVX-512 and AVX2 kernels round differently: a few hundred training steps later the printed losses differ in the
# 4th digit and an accuracy by one validation image (measured: up to 3e-3 relative; the stored outputs in nbs/ come
# from machines of both kinds). 1e-2 absorbs that, while a stale number, from a change of code or of a
# hyper-parameter, is far off. Integers (counts, epochs, shapes, sizes) are compared exactly.
FLOAT_RTOL = float(os.environ.get('FASTNOTE_NB_RTOL', '1e-2'))

def same_text(stored:str, fresh:str)->bool:
    """Whether two normalised texts say the same: identical once their numbers are set aside, and with the same
    numbers, integers exactly and floats (printed with a point or an exponent) to a relative `FLOAT_RTOL`."""
    if stored == fresh: return True
    if _re_number.sub('\0', stored) != _re_number.sub('\0', fresh): return False
    numbers_a, numbers_b = _re_number.findall(stored), _re_number.findall(fresh)
    if len(numbers_a) != len(numbers_b): return False
    for a, b in zip(numbers_a, numbers_b):
        if a == b: continue
        if not any(c in a + b for c in '.eE'): return False                 # integers: exactly
        if not math.isclose(float(a), float(b), rel_tol=FLOAT_RTOL, abs_tol=0.0): return False
    return True


def opted_out(cell)->bool:
    "Whether a code cell carries `#| output-varies` (bare, `: true`, or in its `nbdev` metadata, as nbdev reads directives)."
    value = (getattr(cell, 'directives_', None) or {}).get(OPT_OUT)
    return value is not None and value.strip().lower() not in ('false', 'no', '0')


def short_diff(stored:list, fresh:list, n_lines:int=20)->str:
    "A unified diff of the stored and fresh text of a cell, cut to `n_lines`."
    lines = list(difflib.unified_diff('\n'.join(stored).splitlines(), '\n'.join(fresh).splitlines(),
                                      'stored', 'fresh', n=1, lineterm=''))
    if len(lines) > n_lines: lines = lines[:n_lines] + [f'... ({len(lines) - n_lines} more diff lines)']
    return '\n'.join('    ' + l for l in lines)


def changed_text(stored_nb:dict, run_nb, ran:set)->list:
    "Cells (not opted out) whose fresh text differs from the stored text: `(name, short diff)` for each."
    problems = []
    for idx in sorted(ran):
        cell = run_nb.cells[idx]
        if cell.get('cell_type') != 'code' or opted_out(cell): continue
        stored_cell = stored_nb['cells'][idx]
        kept, fresh = shown_text(stored_cell.get('outputs', [])), shown_text(cell.get('outputs', []))
        if len(kept) == len(fresh) and all(same_text(a, b) for a, b in zip(kept, fresh)): continue
        problems.append((f"cell {idx} ({first_line(stored_cell)!r})", short_diff(kept, fresh)))
    return problems


MAX_CELLS_SHOWN = 6   # cells reported with a diff; the others are only named
FIX = ("Run `make nbs` (re-runs the notebooks, keeps their outputs) and commit; a cell whose text legitimately "
       f"differs from run to run can say so with `#| {OPT_OUT}` at its top.")

@pytest.mark.parametrize('path', notebooks(), ids=lambda p: p.name)
def test_notebook(path, monkeypatch):
    monkeypatch.setenv('IN_TEST', '1')
    monkeypatch.setenv('MPLBACKEND', 'Agg')
    nb, ran, error = run_notebook(path)
    assert error is None, f"{path.name} failed:\n{error}"
    assert ran, f"{path.name} has no cell to run"
    stored = json.loads(path.read_text(encoding='utf-8'))
    problems = missing_outputs(stored, nb, ran)
    assert not problems, (f"{path.name}: the stored outputs are stale, the site would miss them: " + '; '.join(problems)
                          + ". " + FIX)
    problems = changed_text(stored, nb, ran)
    shown = [f"{name}: stored text, then what it prints now:\n{diff}" for name, diff in problems[:MAX_CELLS_SHOWN]]
    more = [name for name, _ in problems[MAX_CELLS_SHOWN:]]
    assert not problems, (f"{path.name}: the stored outputs are stale, they show text the code no longer prints "
                          f"({len(problems)} cell(s)):\n" + '\n'.join(shown)
                          + (f"\nand {', '.join(more)}" if more else '') + "\n" + FIX)
