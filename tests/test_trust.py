"""RAdam, Lamb and Larc (fastnote.trust) against their references: torch.optim.RAdam (both weight decays) run here,
fastai 2.8.12's RAdam, Lamb and Larc from the fixture recorded by `data/make_fastai_trust.py`; state dicts, schedulers,
fit_one_cycle, and the errors for bad hyper-parameters."""
import functools, io, json
from pathlib import Path
import pytest, torch
import problems
from problems import max_rel_diff
from fastnote.optimizer import Optimizer
from fastnote.trust import RAdam, Lamb, Larc, rectification, lamb_step, larc_step

FIXTURE = json.loads((Path(__file__).parent / 'data' / 'fastai_trust.json').read_text())
SHAPES = [tuple(s) for s in FIXTURE['meta']['shapes']]      # (20, 30) is cut into blocks of 256 below
SCALES = FIXTURE['meta']['scales']
CLASSES = {'RAdam': RAdam, 'Lamb': Lamb, 'Larc': Larc}


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    "Blocks of 256 values, so that RAdam's steppers see cut tensors (Lamb and Larc must not: their steppers declare whole_tensors)."
    monkeypatch.setattr(Optimizer, 'block_size', 256)


def make_params(seed=0, dtype=torch.float32): return problems.make_params(SHAPES, seed, dtype)
def set_grads(ps, t, drop=0.): problems.set_grads(ps, t, SCALES, drop)     # the fixture's gradients
groups = problems.three_groups


def train(make, lr, n=100, drop=0., ps=None, start=0):
    ps = make_params() if ps is None else ps
    opt = make(groups(ps, lr))
    for t in range(start, n): set_grads(ps, t, drop); opt.step()
    return ps, opt




def test_fixture_problem_is_the_same():
    assert [p.sum().item() for p in make_params()] == pytest.approx(FIXTURE['meta']['init_sums'], rel=1e-6)


@pytest.mark.parametrize('name', FIXTURE['cases'])
def test_matches_fastai_over_100_steps(name):
    case = FIXTURE['cases'][name]
    cls, lr = CLASSES[case['optimizer']], case['lr']
    ps, _ = train(lambda g: cls(g, lr=lr, **case['kwargs']), lr, drop=case['drop'])
    ref = [torch.tensor(v).view(p.shape) for v, p in zip(case['params'], ps)]
    assert max_rel_diff(ps, ref) < 1e-6


TORCH_RADAM = [(dwd, foreach, drop) for dwd in (False, True) for foreach in (False, True) for drop in (0., 0.3)]


@pytest.mark.parametrize('dwd,foreach,drop', TORCH_RADAM)
def test_radam_matches_torch_over_100_steps(dwd, foreach, drop):
    "torch's RAdam by fastnote's names and by torch's; torch adds eps before the bias correction, so not bit for bit."
    lr = 1e-2
    theirs, _ = train(lambda g: torch.optim.RAdam(g, lr, weight_decay=0.1, decoupled_weight_decay=dwd, foreach=foreach), lr, drop=drop)
    mine, _ = train(lambda g: RAdam(g, lr, sqr_mom=0.999, eps=1e-8, wd=0.1, decouple_wd=dwd), lr, drop=drop)
    named, _ = train(lambda g: RAdam(g, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, decoupled_weight_decay=dwd), lr, drop=drop)
    assert max_rel_diff(mine, theirs) < 1e-6
    assert all(torch.equal(a, b) for a, b in zip(mine, named))


def test_radam_defaults_are_fastais_and_torch_defaults_are_reachable():
    opt = RAdam(make_params(), 1e-3)
    assert {k: opt.defaults[k] for k in ('mom', 'sqr_mom', 'eps', 'wd', 'beta')} == dict(mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0., beta=0.)
    assert opt.steppers[0].__name__ == 'weight_decay'
    assert RAdam(make_params(), 1e-3, decoupled_weight_decay=False).steppers[0].__name__ == 'l2_reg'
    theirs, _ = train(lambda g: torch.optim.RAdam(g, 1e-3), 1e-3)
    mine, _ = train(lambda g: RAdam(g, 1e-3, sqr_mom=0.999, eps=1e-8, decouple_wd=False), 1e-3)
    assert max_rel_diff(mine, theirs) < 1e-6


def test_rectification_is_torchs():
    for sm in (0.9, 0.99, 0.999):
        rho_inf = 2 / (1 - sm) - 1
        for t in (1, 5, 6, 7, 50, 5000):
            rho = rho_inf - 2 * t * sm**t / (1 - sm**t)
            ref = ((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)) ** 0.5 if rho > 5 else 0.
            assert rectification(sm, t) == pytest.approx(ref, rel=1e-12)


MAKERS = {'RAdam': lambda g: RAdam(g, 1e-3, wd=0.01), 'Lamb': lambda g: Lamb(g, 1e-3, wd=0.01),
          'Larc': lambda g: Larc(g, 0.1, wd=1e-3), 'Lars mom=0': lambda g: Larc(g, 0.1, mom=0., clip=False)}


@pytest.mark.parametrize('name', MAKERS)
def test_state_dict_round_trips_and_continues_bit_for_bit(name):
    make = MAKERS[name]
    ref, _ = train(make, 1e-3, n=40)
    ps, opt = train(make, 1e-3, n=15)
    buf = io.BytesIO()
    torch.save({'params': [p.detach() for p in ps], 'opt': opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    ps = [p.clone().requires_grad_() for p in saved['params']]
    opt = make(groups(ps, 1e-3))
    opt.load_state_dict(saved['opt'])
    for t in range(15, 40): set_grads(ps, t); opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))


def test_a_state_dict_of_another_optimizer_is_refused():
    _, opt = train(MAKERS['Lamb'], 1e-3, n=2)
    with pytest.raises(ValueError, match='belongs to an optimizer made of'): RAdam(groups(make_params(), 1e-3), 1e-3).load_state_dict(opt.state_dict())


@pytest.mark.parametrize('cls', [Lamb, Larc])
def test_trust_ratios_see_whole_tensors(cls, monkeypatch):
    "Lamb and Larc take the norm of whole tensors: blocks of 256 give the same bits as none; the same steppers without their flag would not."
    cut, _ = train(lambda g: cls(g, 1e-2), 1e-2, n=5)
    monkeypatch.setattr(Optimizer, 'block_size', None)
    whole, _ = train(lambda g: cls(g, 1e-2), 1e-2, n=5)
    assert all(torch.equal(x, y) for x, y in zip(cut, whole))
    monkeypatch.setattr(Optimizer, 'block_size', 256)
    monkeypatch.setattr(lamb_step if cls is Lamb else larc_step, 'whole_tensors', False)
    pieces, _ = train(lambda g: cls(g, 1e-2), 1e-2, n=5)
    assert not all(torch.equal(x, y) for x, y in zip(pieces, whole))    # cut, the norms would be the pieces'


@pytest.mark.parametrize('name', ['RAdam', 'Lamb', 'Larc'])
def test_torch_scheduler_drives_lr_and_momentum(name):
    "OneCycleLR cycles the lr and the momentum (`betas` for RAdam and Lamb, `momentum` for Larc), through torch's names."
    ps = make_params()
    opt = MAKERS[name](ps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10)
    lrs, moms = [], []
    for t in range(10):
        set_grads(ps, t); opt.step(); sched.step()
        lrs.append(opt.param_groups[0]['lr']); moms.append(opt.param_groups[0]['mom'])
    ref = torch.optim.SGD([torch.zeros(1, requires_grad=True)], 0.1, momentum=0.9)
    ref_sched = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=0.05, total_steps=10)
    ref_lrs, ref_moms = [], []
    for _ in range(10): ref.step(); ref_sched.step(); ref_lrs.append(ref.param_groups[0]['lr']); ref_moms.append(ref.param_groups[0]['momentum'])
    assert lrs == ref_lrs and moms == ref_moms


def one_cycle_run(opt_func):
    "lr and mom after a fit_one_cycle of 2 epochs, and whether the parameters moved."
    learn, before = problems.one_cycle_fit(opt_func)
    moved = any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    return type(learn.opt), learn.opt.param_groups[0]['lr'], learn.opt.param_groups[0]['mom'], moved


@pytest.mark.parametrize('name', ['RAdam', 'Lamb', 'Larc'])
def test_fit_one_cycle_drives_them(name):
    "fit_one_cycle schedules lr and mom of each exactly as it does Adam's."
    from fastnote import Adam
    cls, lr, mom, moved = one_cycle_run(CLASSES[name])
    _, ref_lr, ref_mom, _ = one_cycle_run(Adam)
    assert cls is CLASSES[name] and moved and (lr, mom) == (ref_lr, ref_mom) and mom < 0.95


BAD = [(RAdam, dict(lr=1e-3, beta=-1.), 'beta', ValueError), (RAdam, dict(lr=1e-3, sqr_mom=1.), 'sqr_mom', ValueError),
       (RAdam, dict(lr=-1e-3), 'lr', ValueError), (Lamb, dict(lr=1e-3, eps=-1.), 'eps', ValueError),
       (Lamb, dict(lr=1e-3, mom=1.5), 'mom', ValueError), (Larc, dict(lr=0.1, trust_coeff=0.), 'trust_coeff', ValueError),
       (Larc, dict(lr=0.1, trust_coeff=float('nan')), 'trust_coeff', ValueError), (Larc, dict(lr=0.1, wd=-1.), 'wd', ValueError),
       (Larc, dict(lr=0.1, clip='no'), 'clip', TypeError), (RAdam, dict(lr=1e-3, decouple_wd=1), 'decouple_wd', TypeError),
       (RAdam, dict(lr=1e-3, decoupled_weight_decay='yes'), 'decoupled_weight_decay', TypeError),
       (RAdam, dict(lr=1e-3, beta='0'), 'beta', TypeError)]


@pytest.mark.parametrize('cls,kw,name,err', BAD)
def test_bad_hyper_parameters_are_refused_by_name(cls, kw, name, err):
    with pytest.raises(err) as e: cls(make_params(), **kw)
    assert name in str(e.value) and repr(kw[name]) in str(e.value)


def test_bad_values_in_groups_and_set_hyper_are_refused():
    with pytest.raises(ValueError, match='beta must be >= 0, got -2'): RAdam([{'params': make_params()[:2], 'beta': -2}], 1e-3)
    with pytest.raises(ValueError, match='trust_coeff must be > 0, got -1'): Larc(make_params(), 0.1).set_hyper('trust_coeff', -1)
    with pytest.raises(ValueError, match="no hyper-parameter 'beta1'"): Lamb(make_params(), 1e-3, beta1=0.9)
    with pytest.raises(ValueError, match="does not do torch's amsgrad=True"): RAdam(make_params(), 1e-3, amsgrad=True)
    with pytest.raises(ValueError, match='give one'): RAdam(make_params(), 1e-3, decouple_wd=False, decoupled_weight_decay=True)
    with pytest.raises(ValueError, match="Larc has no hyper-parameter 'sqr_mom'"): Larc(make_params(), 0.1, betas=(0.9, 0.99))
    opt = Larc(make_params(), 0.1)
    opt.set_hyper('trust_coeff', 0.05)
    assert opt.param_groups[0]['trust_coeff'] == 0.05


def test_a_schedule_of_a_stepper_hyper_parameter_is_checked():
    "A schedule sets `beta` and `trust_coeff` through `hyper_setter`, which checks the ranges their steppers declare."
    from fastnote.optimizer import hyper_setter
    radam, larc = RAdam(groups(make_params(), 1e-3), 1e-3), Larc(groups(make_params(), 1e-3), 1e-3)
    hyper_setter(radam, 'beta')([0.5, 1., 2.]); assert [g['beta'] for g in radam.param_groups] == [0.5, 1., 2.]
    with pytest.raises(ValueError, match='beta must be >= 0, got -1.0'): hyper_setter(radam, 'beta')([-1.] * 3)
    with pytest.raises(ValueError, match=r'trust_coeff must be > 0, got 0.0'): hyper_setter(larc, 'trust_coeff')([0.] * 3)
