"""Every notebook in nbs/ runs top to bottom (one test each, named after the notebook), the way `nbdev-test` runs it,
and its stored outputs hold what a run makes: the docs site shows stored outputs, so a missing plot is a bug."""
import json
from pathlib import Path
import pytest
from conftest import notebooks


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
    shell = CaptureShell(path, profile=bool(cfg.exec_profile))
    try:
        with working_directory(path.parent):
            shell.run_all(nb, exc_stop=True, preproc=lambda c: c.idx_ not in to_run, cell_timeout=cfg.cell_timeout)
        return nb, to_run, None
    except BaseException:
        return nb, to_run, shell.prettytb(fname=path)
    finally:
        shell.close()


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
        first_line = ''.join(stored['source']).splitlines()[0][:60]
        if 'image' in fresh and 'image' not in kept: problems.append(f"cell {idx} ({first_line!r}) makes a plot")
        elif fresh and not kept: problems.append(f"cell {idx} ({first_line!r}) prints output")
    return problems


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
                          + ". Run `make nbs` (re-runs the notebooks, keeps their outputs) and commit.")
