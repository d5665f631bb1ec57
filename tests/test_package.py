"""The package as a user gets it: every public name at the top level, and a wheel that installs into a clean venv."""
import importlib, os, sys, textwrap
from pathlib import Path
import pytest
from conftest import ROOT, run

import fastnote
from fastnote._modidx import d as modidx


def exported_modules()->list:
    "The modules nbdev exported from the notebooks, e.g. `fastnote.optimizer`."
    return sorted(modidx['syms'])


def test_every_module_is_indexed():
    on_disk = {f'fastnote.{p.stem}' for p in (ROOT/'fastnote').glob('*.py') if not p.name.startswith('_')}
    assert on_disk == set(exported_modules()), "a module in fastnote/ is not in _modidx: run nbdev-export"


@pytest.mark.parametrize('module', exported_modules())
def test_public_names_import_from_top_level(module):
    "`from fastnote import X` works for every name in every module's `__all__`, and is the same object."
    mod = importlib.import_module(module)
    assert mod.__all__, f"{module} exports nothing"
    missing = [n for n in mod.__all__ if getattr(fastnote, n, None) is not getattr(mod, n)]
    assert not missing, f"{missing} from {module} are not importable from fastnote: add `from .{module.split('.')[-1]} import *` to fastnote/__init__.py"


def test_version_matches_metadata():
    from importlib.metadata import version
    assert fastnote.__version__ == version('fastnote')
    assert all(part.isdigit() for part in fastnote.__version__.split('.'))


@pytest.fixture(scope='module')
def clean_venv(tmp_path_factory):
    "A new venv with CPU torch and fastnote installed from a freshly built wheel, and nothing else of ours."
    tmp = tmp_path_factory.mktemp('wheel')
    res = run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '-q', '-w', str(tmp/'dist'), str(ROOT)], cwd=tmp)
    assert res.returncode == 0, f"building the wheel failed:\n{res.stdout}\n{res.stderr}"
    wheels = list((tmp/'dist').glob('fastnote-*.whl'))
    assert len(wheels) == 1, wheels
    venv = tmp/'venv'
    assert run([sys.executable, '-m', 'venv', str(venv)], cwd=tmp).returncode == 0
    py = venv/'bin'/'python'
    for spec in (['torch==2.13.0'], [str(wheels[0])]):
        res = run([str(py), '-m', 'pip', 'install', '-q', *spec], cwd=tmp)
        assert res.returncode == 0, f"pip install {spec} failed:\n{res.stdout}\n{res.stderr}"
    return venv, wheels[0]


def test_wheel_holds_only_the_package(clean_venv):
    import zipfile
    _, wheel = clean_venv
    tops = {name.split('/')[0] for name in zipfile.ZipFile(wheel).namelist()}
    assert tops == {'fastnote', wheel.name.split('-py3')[0] + '.dist-info'}, tops


def test_wheel_installs_and_imports(clean_venv):
    venv, wheel = clean_venv
    code = "import fastnote, torch; from fastnote import sgd_step; print(fastnote.__version__, fastnote.__file__)"
    res = run([str(venv/'bin'/'python'), '-c', code], cwd=venv)   # not the repo: the installed copy must be found
    assert res.returncode == 0, res.stderr
    version, location = res.stdout.split()
    assert version == fastnote.__version__ and wheel.name.startswith(f'fastnote-{version}-')
    assert str(venv) in location, f"imported {location}, not the installed wheel"


def test_lab_draws_from_the_installed_wheel(clean_venv):
    "The optimizer lab needs only the declared dependencies: matplotlib draws, Pillow writes the GIF."
    venv, _ = clean_venv
    code = ("from fastnote import trajectory, plot_trajectories, animate_trajectories, Adam\n"
            "t = trajectory(Adam, 'noisy_rosenbrock', n_steps=30, lr=0.05, seed=1)\n"
            "ax_map, _ = plot_trajectories({'Adam': t}, 'noisy_rosenbrock'); ax_map.figure.savefig('lab.png')\n"
            "print(animate_trajectories({'Adam': t}, 'noisy_rosenbrock', fname='lab.gif', n_frames=10).n_frames)")
    res = run([str(venv/'bin'/'python'), '-c', code], cwd=venv, env=os.environ | {'MPLBACKEND': 'Agg'})
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ['10']
    assert (venv/'lab.gif').read_bytes()[:6] == b'GIF89a' and (venv/'lab.png').stat().st_size > 10_000


def test_demo_extra_from_the_wheel(clean_venv):
    """scikit-learn is not a runtime dependency: without it the demo names the `demo` extra in one line, and with
    `fastnote[demo]` installed from the wheel it trains. (Last of the clean-venv tests: it adds scikit-learn.)"""
    venv, wheel = clean_venv
    demo = [str(venv/'bin'/'fastnote-demo'), '--epochs', '1', '--no-bar', '--out', str(venv/'out')]
    res = run(demo, cwd=venv)
    assert res.returncode != 0 and "pip install 'fastnote[demo]'" in res.stderr, res.stdout + res.stderr
    assert 'Traceback' not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    res = run([str(venv/'bin'/'python'), '-m', 'pip', 'install', '-q', f'{wheel}[demo]'], cwd=venv)
    assert res.returncode == 0, f"pip install {wheel.name}[demo] failed:\n{res.stdout}\n{res.stderr}"
    res = run(demo, cwd=venv, env=os.environ | {'MPLBACKEND': 'Agg'})
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'final validation accuracy' in res.stdout and (venv/'out'/'loss.png').stat().st_size > 10_000, res.stdout


def module_imports(path:Path)->list:
    "`(module, name)` for every `from .module import name` in a package file."
    import ast
    tree = ast.parse(path.read_text(encoding='utf-8'))
    return [(node.module, a.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1
            for a in node.names]


def test_no_module_imports_another_modules_private_names():
    private = [(p.name, m, n) for p in sorted((ROOT/'fastnote').glob('*.py')) for m, n in module_imports(p)
               if n.startswith('_') and n != '*']
    assert not private, f"modules importing other modules' underscore names: {private}"


def test_modules_import_in_one_direction():
    "No import cycle: each module imports only modules that do not import it back, directly or not."
    graph = {p.stem: {m for m, _ in module_imports(p)} for p in (ROOT/'fastnote').glob('*.py') if p.stem != '__init__'}
    def reaches(a, b, seen=()):
        return any(m == b or (m not in seen and reaches(m, b, (*seen, m))) for m in graph.get(a, ()))
    cycles = sorted(m for m in graph if reaches(m, m))
    assert not cycles, f"modules in an import cycle: {cycles}"
    assert graph['callback'] == {'optimizer'} or graph['callback'] <= {'optimizer'}, graph['callback']


# what later chapters add to earlier classes, as fastai does: the only changes importing a module may make to a class
# defined in another one (each says so in its docstring)
FASTAI_EXTENSIONS = {('learner', 'Learner'): {'fit_one_cycle', 'fit_flat_cos', 'fit_sgdr', 'lr_find', 'fine_tune', 'to_fp16',
                                              'to_bf16', 'to_fp32', 'export', 'distrib_ctx'},
                     ('learner', 'Recorder'): {'plot_lr_find'}}

def test_importing_a_module_changes_no_class_of_another_but_the_fastai_extensions():
    code = textwrap.dedent('''
        import importlib, inspect, json, re, sys, types
        from pathlib import Path
        pkg = types.ModuleType('fastnote'); pkg.__path__ = [str(Path('fastnote').resolve())]
        sys.modules['fastnote'] = pkg                      # the package without its __init__, which imports everything
        order = re.findall(r'^from \\.(\\w+) import', Path('fastnote/__init__.py').read_text(), re.M)
        classes, changed = {}, {}
        for name in order:
            importlib.import_module('fastnote.' + name)
            for key, (cls, before) in classes.items():
                added = sorted(set(vars(cls)) - before)
                if added: changed.setdefault(key, []).extend(added)
                classes[key] = (cls, set(vars(cls)))
            for mname, mod in list(sys.modules.items()):
                if not mname.startswith('fastnote.'): continue
                for cname, cls in vars(mod).items():
                    key = mname.split('.')[1] + ':' + cname
                    if inspect.isclass(cls) and cls.__module__ == mname and key not in classes: classes[key] = (cls, set(vars(cls)))
        print(json.dumps(changed))''')
    import json
    res = run([sys.executable, '-c', code], cwd=ROOT)
    assert res.returncode == 0, res.stderr
    changed = {tuple(k.split(':')): set(v) for k, v in json.loads(res.stdout).items()}
    assert changed == FASTAI_EXTENSIONS, changed
    from fastnote import Learner, Recorder
    for (_, cls), names in FASTAI_EXTENSIONS.items():
        for n in names: assert 'patched' in getattr({'Learner': Learner, 'Recorder': Recorder}[cls], n).__doc__, n
