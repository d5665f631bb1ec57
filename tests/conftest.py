"""Shared paths and helpers for fastnote's cross-cutting tests."""
import shutil, subprocess, sys
from contextlib import contextmanager
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
sys.path.insert(0, str(ROOT/'tools'))   # tools/docs.py: the offline site and README builder


SUMMARY = []   # lines the test modules want printed at the end of the run (figures, not verdicts)


def pytest_terminal_summary(terminalreporter):
    for line in SUMMARY: terminalreporter.write_line(line)


# The markers of pyproject.toml, given by test file and test name (without its parameters); '*' is the whole file.
# `slow`: over 5 s each on 2 cores (as timed with `pytest --durations=0`), or behind a fixture that is: leaving these
# out (`make test-fast`) runs the rest in about 70 s. tests/test_setup.py checks that every name here exists.
MARKS = {
    'slow': {
        'test_notebooks.py': '*',                                     # every notebook, run top to bottom
        'test_docs_site.py': '*',                                     # the site is built first (minutes)
        'test_package.py': {'test_wheel_holds_only_the_package', 'test_wheel_installs_and_imports',
                            'test_lab_draws_from_the_installed_wheel', 'test_demo_extra_from_the_wheel'},  # a clean venv
        'test_distributed.py': {'test_two_processes_of_b_equal_one_process_of_2b', 'test_a_distributed_run_resumes_exactly',
                                'test_a_metric_that_does_not_say_how_it_combines_is_refused',
                                'test_checkpoints_move_between_distributed_and_single_runs'},
        'test_resume.py': {'test_killed_process_resumes_bit_identical'},
        'test_demo.py': {'test_trains_prints_the_table_and_writes_the_plots', 'test_compare_ranks_every_optimizer'},
        'test_faults.py': {'test_ctrl_c_during_saves_arrives_as_keyboard_interrupt'},
        'test_compile.py': '*',                                       # inductor compiles every chain (seconds each, on an empty cache)
        'test_lightning.py': '*', 'test_hf_trainer.py': '*',                 # a whole client library is imported and run
        'test_export.py': {'test_a_fresh_process_without_the_training_code_predicts_the_same_classes'},   # trains, then 2 processes
    },
    'browser': {
        'test_docs_site.py': {'test_every_page_in_the_browser', 'test_every_chapter_shows_a_plot', 'test_plot_text_is_legible',
                              'test_code_wraps_in_the_column', 'test_folded_code_opens', 'test_phone_menu_and_contents',
                              'test_search_finds_chapter_words'},
    },
    'subprocess': {
        'test_demo.py': '*',
        'test_export.py': {'test_a_fresh_process_without_the_training_code_predicts_the_same_classes'},
        'test_package.py': {'test_wheel_holds_only_the_package', 'test_wheel_installs_and_imports',
                            'test_lab_draws_from_the_installed_wheel', 'test_demo_extra_from_the_wheel',
                            'test_importing_a_module_changes_no_class_of_another_but_the_fastai_extensions'},
        'test_distributed.py': {'test_two_processes_of_b_equal_one_process_of_2b', 'test_a_distributed_run_resumes_exactly',
                                'test_a_metric_that_does_not_say_how_it_combines_is_refused',
                                'test_checkpoints_move_between_distributed_and_single_runs'},
        'test_resume.py': {'test_killed_process_resumes_bit_identical', 'test_killing_the_writer_never_leaves_a_broken_checkpoint'},
        'test_sync.py': {'test_export_leaves_no_diff', 'test_notebooks_are_clean'},
        'test_faults.py': {'test_a_save_past_the_size_limit_says_so_and_keeps_the_old_file', 'test_ctrl_c_during_saves_arrives_as_keyboard_interrupt'},
        'test_setup.py': {'test_setup_installs_only_when_its_inputs_change', 'test_hooks_make_git_diff_work_without_the_venv'},
    },
}


def marks_of(file:str, name:str)->list:
    "The markers `MARKS` gives the test `name` of `tests/<file>`."
    return [m for m, files in MARKS.items() if files.get(file) == '*' or name in files.get(file, ())]


@pytest.hookimpl(tryfirst=True)   # before pytest's own hook deselects by `-m`
def pytest_collection_modifyitems(items):
    for item in items:
        for m in marks_of(item.path.name, getattr(item, 'originalname', item.name)): item.add_marker(m)


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


@contextmanager
def package_classes_kept():
    """Put back every fastnote class as it was: a notebook's `@patch` cells (`fit_one_cycle`, `to_fp16`) patch the package's
    `Learner` with the notebook's own functions, which use the notebook's classes, not the package's."""
    import inspect, fastnote
    classes = {id(c): c for m in list(sys.modules.values()) if getattr(m, '__name__', '').startswith('fastnote.')
               for c in vars(m).values() if inspect.isclass(c) and c.__module__.startswith('fastnote.')}
    saved = {k: dict(vars(c)) for k, c in classes.items()}
    try: yield
    finally:
        for k, c in classes.items():
            for name in set(vars(c)) - set(saved[k]): delattr(c, name)
            for name, v in saved[k].items():
                if vars(c).get(name) is not v and name not in ('__dict__', '__weakref__'): setattr(c, name, v)


@pytest.fixture(scope='module')
def one_thread():
    "torch on one thread for a test module: tiny models run much faster than on two threads competing for shared cores."
    import torch
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
