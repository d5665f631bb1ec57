"""NAdam, QHAdam, Lookahead and ranger (fastnote.lookahead) against their references: torch.optim.NAdam (both weight
decays, two momentum schedules) run here; fastai 2.8.12's QHAdam, Lookahead (around its SGD with momentum and its
Adam) and ranger from the fixture recorded by `data/make_fastai_lookahead.py`; state dicts, schedulers,
fit_one_cycle, the Learner's freeze, and the errors for bad hyper-parameters."""
import copy, io, json
from pathlib import Path
import pytest, torch
import problems
from problems import max_rel_diff
from fastnote.optimizer import Optimizer
from fastnote.momentum import SGD
from fastnote.adam import Adam
from fastnote.trust import RAdam
from fastnote.lookahead import NAdam, QHAdam, Lookahead, LookaheadState, ranger, nadam_mu

FIXTURE = json.loads((Path(__file__).parent / 'data' / 'fastai_lookahead.json').read_text())
SHAPES = [tuple(s) for s in FIXTURE['meta']['shapes']]      # (20, 30) is cut into blocks of 256 below
SCALES = FIXTURE['meta']['scales']
INNER = {'SGD': SGD, 'Adam': Adam}


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    "Blocks of 256 values, so that the steppers see cut tensors and per-parameter numbers (`step`, `mu_product`) copied to each piece."
    monkeypatch.setattr(Optimizer, 'block_size', 256)


def make_params(seed=0, dtype=torch.float32): return problems.make_params(SHAPES, seed, dtype)
def set_grads(ps, t, drop=0.): problems.set_grads(ps, t, SCALES, drop)     # the fixture's gradients
groups = problems.three_groups


def train(make, lr, n=100, drop=0., ps=None, start=0, clear_at=None):
    ps = make_params() if ps is None else ps
    opt = make(groups(ps, lr))
    for t in range(start, n):
        if t == clear_at: opt.state.clear()             # what the Learner's freeze and unfreeze do
        set_grads(ps, t, drop); opt.step()
    return ps, opt




def fastnote_maker(case, torch_inner=False):
    "fastnote's optimizer for a fixture case (its lr is the fixture's; groups bring the second group's)."
    lr, kw = case['lr'], case['kwargs']
    if case['optimizer'] == 'QHAdam': return lambda g: QHAdam(g, lr, **kw)
    if case['optimizer'] == 'ranger': return lambda g: ranger(g, lr, **kw)
    if torch_inner:            # the same SGD with momentum from torch: fastnote's SGD is torch's bit for bit
        inner = case['inner_kwargs']
        return lambda g: Lookahead(torch.optim.SGD(g, lr, momentum=inner['mom'], weight_decay=inner.get('wd', 0.)), **kw)
    return lambda g: Lookahead(INNER[case['inner']](g, lr, **case['inner_kwargs']), **kw)


def test_fixture_problem_is_the_same():
    assert [p.sum().item() for p in make_params()] == pytest.approx(FIXTURE['meta']['init_sums'], rel=1e-6)


@pytest.mark.parametrize('name', FIXTURE['cases'])
def test_matches_fastai_over_100_steps(name):
    case = FIXTURE['cases'][name]
    ps, _ = train(fastnote_maker(case), case['lr'], drop=case['drop'], clear_at=case.get('clear_at'))
    ref = [torch.tensor(v).view(p.shape) for v, p in zip(case['params'], ps)]
    assert max_rel_diff(ps, ref) < 1e-6


SGD_CASES = [n for n, c in FIXTURE['cases'].items() if c.get('inner') == 'SGD' and not c['inner_kwargs'].get('wd')]


@pytest.mark.parametrize('name', SGD_CASES)
def test_lookahead_around_torchs_sgd_matches_fastai(name):
    "Lookahead wraps torch's optimizers too: around torch.optim.SGD it computes fastai's Lookahead(SGD) (L2 = decoupled at wd=0)."
    case = FIXTURE['cases'][name]
    ps, opt = train(fastnote_maker(case, torch_inner=True), case['lr'], drop=case['drop'])
    ref = [torch.tensor(v).view(p.shape) for v, p in zip(case['params'], ps)]
    assert isinstance(opt.opt, torch.optim.SGD) and max_rel_diff(ps, ref) < 1e-6


TORCH_NADAM = [(dwd, psi, drop) for dwd in (False, True) for psi in (4e-3, 0.1) for drop in (0., 0.3)]


@pytest.mark.parametrize('dwd,psi,drop', TORCH_NADAM)
def test_nadam_matches_torch_over_100_steps(dwd, psi, drop):
    "torch's NAdam: bit for bit with its multi-tensor path, within 1e-6 of its single-tensor one; by fastnote's names and by torch's."
    lr = 1e-2
    foreach, _ = train(lambda g: torch.optim.NAdam(g, lr, weight_decay=0.1, momentum_decay=psi, decoupled_weight_decay=dwd, foreach=True), lr, drop=drop)
    single, _ = train(lambda g: torch.optim.NAdam(g, lr, weight_decay=0.1, momentum_decay=psi, decoupled_weight_decay=dwd, foreach=False), lr, drop=drop)
    mine, opt = train(lambda g: NAdam(g, lr, wd=0.1, momentum_decay=psi, decouple_wd=dwd), lr, drop=drop)
    named, _ = train(lambda g: NAdam(g, lr, betas=(0.9, 0.999), weight_decay=0.1, momentum_decay=psi, decoupled_weight_decay=dwd), lr, drop=drop)
    assert all(torch.equal(a, b) for a, b in zip(mine, foreach))
    assert max_rel_diff(mine, single) < 1e-6
    assert all(torch.equal(a, b) for a, b in zip(mine, named))
    assert opt.steppers[0].__name__ == ('weight_decay' if dwd else 'l2_reg')


def test_nadam_defaults_are_torchs():
    opt = NAdam(make_params())
    assert {k: opt.defaults[k] for k in ('lr', 'mom', 'sqr_mom', 'eps', 'wd', 'momentum_decay')} == \
           dict(lr=2e-3, mom=0.9, sqr_mom=0.999, eps=1e-8, wd=0., momentum_decay=4e-3)
    assert opt.steppers[0].__name__ == 'l2_reg'
    theirs, _ = train(lambda g: torch.optim.NAdam(g, foreach=True), 2e-3)
    mine, _ = train(lambda g: NAdam(g), 2e-3)
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))


def test_nadam_state_holds_torchs_mu_product():
    "The product of the momenta is state, one number per parameter, equal to torch's float32 `mu_product`; the counts match torch's steps."
    lr = 1e-2
    _, theirs = train(lambda g: torch.optim.NAdam(g, lr, foreach=True), lr, n=30, drop=0.3)
    _, mine = train(lambda g: NAdam(g, lr), lr, n=30, drop=0.3)
    ps = [p for g in mine.param_groups for p in g['params']]
    tps = [p for g in theirs.param_groups for p in g['params']]
    assert [mine.state[p]['mu_product'] for p in ps] == [theirs.state[p]['mu_product'].item() for p in tps]
    assert [mine.state[p]['step'] for p in ps] == [theirs.state[p]['step'].item() for p in tps]
    assert nadam_mu(0.9, 0., 5) == 0.45 and 0.45 < nadam_mu(0.9, 4e-3, 10**5) < 0.9


def test_qhadam_at_nu_one_is_adam():
    "nu_1 = nu_2 = 1 is Adam (the order of the debias differs: within rounding)."
    lr = 1e-2
    a, _ = train(lambda g: QHAdam(g, lr, mom=0.9, sqr_mom=0.99, nu_1=1., nu_2=1., eps=1e-5, wd=0.01), lr, drop=0.2)
    b, _ = train(lambda g: Adam(g, lr, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01), lr, drop=0.2)
    assert max_rel_diff(a, b) < 1e-6


def test_ranger_is_lookahead_of_radam():
    lr = 1e-2
    a, opt = train(lambda g: ranger(g, lr), lr, drop=0.2)
    b, _ = train(lambda g: Lookahead(RAdam(g, lr, mom=0.95, sqr_mom=0.99, eps=1e-6, wd=0.01), k=6, alpha=0.5), lr, drop=0.2)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert (type(opt), type(opt.opt), opt.k, opt.alpha) == (Lookahead, RAdam, 6, 0.5)
    named = ranger(make_params(), lr, betas=(0.9, 0.999), weight_decay=0.1, decoupled_weight_decay=False)
    assert {k: named.param_groups[0][k] for k in ('mom', 'sqr_mom', 'wd')} == dict(mom=0.9, sqr_mom=0.999, wd=0.1)
    assert named.opt.steppers[0].__name__ == 'l2_reg'


MAKERS = {'NAdam': lambda g: NAdam(g, 1e-2, wd=0.01),
          'QHAdam': lambda g: QHAdam(g, 1e-3, wd=0.01),
          'ranger': lambda g: ranger(g, 1e-3),
          'Lookahead(SGD)': lambda g: Lookahead(SGD(g, 1e-2, mom=0.9), k=4),
          'Lookahead(torch AdamW)': lambda g: Lookahead(torch.optim.AdamW(g, 1e-3), k=5, alpha=0.7)}


@pytest.mark.parametrize('name', MAKERS)
def test_state_dict_round_trips_and_continues_bit_for_bit(name):
    "Saved at step 15 (in the middle of a look-ahead cycle), through torch.save with weights_only, then 25 more steps."
    make = MAKERS[name]
    ref, _ = train(make, 1e-3, n=40, drop=0.2)
    ps, opt = train(make, 1e-3, n=15, drop=0.2)
    buf = io.BytesIO()
    torch.save({'params': [p.detach() for p in ps], 'opt': opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    ps = [p.clone().requires_grad_() for p in saved['params']]
    opt = make(groups(ps, 1e-3))
    opt.load_state_dict(saved['opt'])
    for t in range(15, 40): set_grads(ps, t, 0.2); opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))


def test_lookahead_state_dict_is_left_alone_and_copied():
    "Loading leaves the dict as it was (fastai's takes its entries out), copies the slow weights, and loads again."
    ps, opt = train(MAKERS['ranger'], 1e-3, n=8)
    sd = opt.state_dict()
    assert sd['lookahead']['count'] == 8 and len(sd['lookahead']['slow_weights']) == len(SHAPES)
    keys, other = set(sd), ranger(groups(ps, 1e-3), 1e-3, k=3, alpha=0.9)
    other.load_state_dict(sd); other.load_state_dict(sd)
    assert set(sd) == keys and (other.k, other.alpha, other.count) == (6, 0.5, 8)
    mine = [s for g in other.slow_weights for s in g]
    assert all(torch.equal(a, b) and a.data_ptr() != b.data_ptr() for a, b in zip(mine, sd['lookahead']['slow_weights']))


def test_lookahead_state_dict_before_the_first_step():
    "Before any step there are no slow weights: the state dict says None, and the loaded optimizer copies them at its first step."
    ref, _ = train(MAKERS['Lookahead(SGD)'], 1e-2, n=10)
    ps = make_params()
    fresh = MAKERS['Lookahead(SGD)'](groups(ps, 1e-2))
    assert fresh.state_dict()['lookahead'] == {'k': 4, 'alpha': 0.5, 'count': 0, 'slow_weights': None}
    opt = MAKERS['Lookahead(SGD)'](groups(ps, 1e-2))
    opt.load_state_dict(fresh.state_dict())
    for t in range(10): set_grads(ps, t); opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))


def test_lookahead_refuses_a_state_dict_it_cannot_continue():
    _, opt = train(MAKERS['ranger'], 1e-3, n=3)
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="no 'lookahead' entry"): opt.load_state_dict(opt.opt.state_dict())
    bad = {**sd, 'lookahead': {**sd['lookahead'], 'slow_weights': sd['lookahead']['slow_weights'][:-1]}}
    with pytest.raises(ValueError, match="slow weights .* do not match this optimizer's parameters"): opt.load_state_dict(bad)
    bad = {**sd, 'lookahead': {**sd['lookahead'], 'k': 0}}
    with pytest.raises(ValueError, match='k must be >= 1, got 0'): opt.load_state_dict(bad)
    with pytest.raises(ValueError, match='belongs to an optimizer made of'):
        Lookahead(Adam(groups(make_params(), 1e-3), 1e-3)).load_state_dict(sd)


def test_lookahead_moves_every_parameter_every_k_steps_by_hand():
    "SGD with lr 1 on a gradient of -1, k=3, alpha=0.5; a parameter without a gradient is looked ahead too (its slow weight holds it)."
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(1, requires_grad=True)
    opt = Lookahead(SGD([a, b], lr=1.), k=3, alpha=0.5)
    seen = []
    for t in range(6):
        a.grad = -torch.ones(2); b.grad = -torch.ones(1) if t == 0 else None
        opt.step(); seen.append((a[0].item(), b.item()))
    # a: 1, 2, 3 -> slow 1.5; 2.5, 3.5, 4.5 -> slow 3.  b: 1 after step 1, then no gradient -> slow 0.5 at step 3, kept
    assert seen == [(1., 1.), (2., 1.), (1.5, 0.5), (2.5, 0.5), (3.5, 0.5), (3., 0.5)]


def test_param_groups_are_the_inner_optimizers():
    "The same list, read live: after the inner optimizer's load_state_dict replaces it, still the inner one's; set_hyper reaches it."
    opt = Lookahead(NAdam(make_params(), 1e-2))
    assert opt.param_groups is opt.opt.param_groups and opt.defaults is opt.opt.defaults
    opt.param_groups[0]['lr'] = 0.5
    assert opt.opt.param_groups[0]['lr'] == 0.5
    opt.opt.load_state_dict(NAdam(make_params(), 0.25).state_dict())
    assert opt.param_groups is opt.opt.param_groups and opt.param_groups[0]['lr'] == 0.25
    opt.set_hyper('momentum_decay', 0.1)                  # fastnote's own method, on the inner optimizer
    assert opt.opt.param_groups[0]['momentum_decay'] == 0.1
    with pytest.raises(ValueError, match='momentum_decay must be >= 0'): opt.param_groups[0]['momentum_decay'] = -1
    assert isinstance(opt.state, LookaheadState) and isinstance(opt, torch.optim.Optimizer)


def test_add_param_group_gets_slow_weights():
    "A group added after the first step starts its slow weights at its current values, and is looked ahead from then on."
    ps = make_params()
    opt = Lookahead(SGD(ps[:4], 0.1, mom=0.9), k=2)
    set_grads(ps, 0); opt.step()
    opt.add_param_group({'params': ps[4:], 'lr': 0.05})
    assert [tuple(s.shape) for s in opt.slow_weights[1]] == SHAPES[4:]
    start = [p.detach().clone() for p in ps[4:]]
    set_grads(ps, 1); opt.step()                           # step 2: the look-ahead; the new group moved once since it came
    ref = [torch.optim.SGD([p.clone().requires_grad_()], 0.05, momentum=0.9) for p in start]
    for r, p, p0 in zip(ref, ps[4:], start):
        q = r.param_groups[0]['params'][0]; q.grad = p.grad.clone(); r.step()
        assert torch.allclose(p.detach(), p0 + 0.5 * (q.detach() - p0), rtol=0, atol=1e-7)


def test_zero_grad_closure_hooks_and_copies():
    ps = make_params()
    opt = ranger(ps, 1e-3)
    calls = []
    opt.register_step_post_hook(lambda o, args, kwargs: calls.append(o))
    def closure():
        opt.zero_grad()
        loss = sum((p**2).sum() for p in ps)
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert torch.is_tensor(loss) and calls == [opt] and opt.count == 1
    opt.zero_grad()
    assert all(p.grad is None for p in ps)
    twin = copy.deepcopy(opt)                               # a copy continues exactly as the original
    qs = [p for g in twin.param_groups for p in g['params']]
    for t in range(8): set_grads(ps, t); opt.step(); set_grads(qs, t); twin.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, qs)) and twin.count == 9


def test_trajectory_drives_it_with_a_closure():
    from fastnote.lab import trajectory
    t = trajectory(lambda ps, **h: Lookahead(SGD(ps, **h), k=4), 'canyon', n_steps=12, lr=0.1, mom=0.9)
    assert t.losses[-1] < t.losses[0] and torch.isfinite(t.points).all()


@pytest.mark.parametrize('name', ['NAdam', 'QHAdam', 'ranger', 'Lookahead(SGD)', 'Lookahead(torch AdamW)'])
def test_torch_scheduler_drives_lr_and_momentum(name):
    "OneCycleLR cycles the lr and the momentum (`betas` of fastnote's and torch's Adams, `momentum` of SGD), through the shared groups."
    ps = make_params()
    opt = MAKERS[name](ps)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=10)
    lrs, moms = [], []
    for t in range(10):
        set_grads(ps, t); opt.step(); sched.step()
        g = opt.opt.param_groups[0] if isinstance(opt, Lookahead) else opt.param_groups[0]
        lrs.append(g['lr'])
        moms.append(g['mom'] if 'mom' in dict(g) else g['betas'][0] if 'betas' in g else g['momentum'])
    ref = torch.optim.SGD([torch.zeros(1, requires_grad=True)], 0.1, momentum=0.9)
    ref_sched = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=0.05, total_steps=10)
    ref_lrs, ref_moms = [], []
    for _ in range(10): ref.step(); ref_sched.step(); ref_lrs.append(ref.param_groups[0]['lr']); ref_moms.append(ref.param_groups[0]['momentum'])
    assert lrs == ref_lrs and moms == ref_moms


def learner(opt_func, splitter=None):
    from fastnote import Learner, DataLoaders
    g = torch.Generator().manual_seed(1)
    batches = lambda n: [(torch.randn(8, 2, generator=g), torch.randn(8, 1, generator=g)) for _ in range(n)]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    kw = {} if splitter is None else dict(splitter=splitter)
    learn = Learner(DataLoaders(batches(6), batches(1)), model, torch.nn.MSELoss(), opt_func=opt_func, **kw)
    learn.progress.show_table = False
    return learn


def one_cycle_run(opt_func):
    "lr and mom (by fastnote's name, wherever the optimizer keeps it) after a fit_one_cycle of 2 epochs, and whether the parameters moved."
    from fastnote.optimizer import opt_hypers
    learn = learner(opt_func)
    before = [p.detach().clone() for p in learn.model.parameters()]
    learn.fit_one_cycle(2, lr_max=1e-2, moms=(0.95, 0.85, 0.95))
    moved = any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    inner = learn.opt.opt if isinstance(learn.opt, Lookahead) else learn.opt
    hypers = opt_hypers(inner)
    return type(learn.opt), hypers['lr'], hypers['mom'], moved


ONE_CYCLE = {'NAdam': NAdam, 'QHAdam': QHAdam, 'ranger': ranger,
             'Lookahead(Adam)': lambda ps, lr: Lookahead(Adam(ps, lr)),
             'Lookahead(torch AdamW)': lambda ps, lr: Lookahead(torch.optim.AdamW(ps, lr))}


@pytest.mark.parametrize('name', ONE_CYCLE)
def test_fit_one_cycle_drives_them(name):
    "fit_one_cycle schedules lr and mom of each exactly as it does Adam's: through the Lookahead, in the inner optimizer's groups."
    cls, lr, mom, moved = one_cycle_run(ONE_CYCLE[name])
    _, ref_lr, ref_mom, _ = one_cycle_run(Adam)
    assert moved and (lr, mom) == (ref_lr, ref_mom) and mom < 0.95
    assert cls is (Lookahead if name.startswith(('Lookahead', 'ranger')) else ONE_CYCLE[name])


def test_learners_freeze_starts_the_look_ahead_afresh():
    "The Learner's freeze_to clears `opt.state`: for a Lookahead that is fastai's clear_state, the inner state and the slow weights."
    learn = learner(lambda ps, lr: ranger(ps, lr), splitter=lambda m: [list(m[0].parameters()), list(m[2].parameters())])
    learn.fit(1, 1e-3)
    assert learn.opt.count == 6 and learn.opt.slow_weights is not None and len(learn.opt.state) > 0
    learn.freeze()
    assert learn.opt.count == 0 and learn.opt.slow_weights is None and len(learn.opt.state) == 0
    learn.fit(1, 1e-3)
    assert learn.opt.count == 6


def test_lr_find_puts_the_look_ahead_back():
    "lr_find restores the optimizer from a copy of its state dict: the step count and the slow weights come back too."
    learn = learner(lambda ps, lr: ranger(ps, lr))
    learn.fit(1, 1e-3)
    before = copy.deepcopy(learn.opt.state_dict()['lookahead'])
    params = [p.detach().clone() for p in learn.model.parameters()]
    learn.lr_find(num_it=10, show_plot=False, suggest_funcs=None)
    after = learn.opt.state_dict()['lookahead']
    assert (after['count'], after['k'], after['alpha']) == (before['count'], 6, 0.5) == (6, 6, 0.5)
    assert all(torch.equal(a, b) for a, b in zip(after['slow_weights'], before['slow_weights']))
    assert all(torch.equal(a, b) for a, b in zip(learn.model.parameters(), params))


BAD = [(NAdam, dict(momentum_decay=-1.), 'momentum_decay', ValueError), (NAdam, dict(betas=(0.9, 1.)), 'sqr_mom', ValueError),
       (NAdam, dict(lr=-1e-3), 'lr', ValueError), (NAdam, dict(decouple_wd='yes'), 'decouple_wd', TypeError),
       (NAdam, dict(decoupled_weight_decay=1), 'decoupled_weight_decay', TypeError),
       (NAdam, dict(momentum_decay='0.004'), 'momentum_decay', TypeError),
       (QHAdam, dict(lr=1e-3, nu_1=1.5), 'nu_1', ValueError), (QHAdam, dict(lr=1e-3, nu_2=-0.5), 'nu_2', ValueError),
       (QHAdam, dict(lr=1e-3, nu_1=float('nan')), 'nu_1', ValueError), (QHAdam, dict(lr=1e-3, mom=1.), 'mom', ValueError),
       (ranger, dict(lr=1e-3, k=0), 'k', ValueError), (ranger, dict(lr=1e-3, k=2.), 'k', TypeError),
       (ranger, dict(lr=1e-3, alpha=0.), 'alpha', ValueError), (ranger, dict(lr=1e-3, alpha=1.5), 'alpha', ValueError),
       (ranger, dict(lr=1e-3, beta=-1.), 'beta', ValueError), (ranger, dict(lr=1e-3, eps=-1e-6), 'eps', ValueError)]


@pytest.mark.parametrize('cls,kw,name,err', BAD)
def test_bad_hyper_parameters_are_refused_by_name(cls, kw, name, err):
    with pytest.raises(err) as e: cls(make_params(), **kw)
    value = kw.get(name, kw.get('betas', (None, None))[1] if name == 'sqr_mom' else None)
    assert name in str(e.value) and repr(value) in str(e.value)


def test_bad_values_in_groups_set_hyper_and_attributes_are_refused():
    ps = make_params()
    with pytest.raises(ValueError, match=r'nu_2 must be in \[0, 1\], got 2'): QHAdam([{'params': ps[:2], 'nu_2': 2}], 1e-3)
    with pytest.raises(ValueError, match='momentum_decay must be >= 0, got -1'): NAdam(ps).set_hyper('momentum_decay', -1)
    with pytest.raises(ValueError, match="no hyper-parameter 'nu'"): QHAdam(ps, 1e-3, nu=0.5)
    with pytest.raises(ValueError, match="does not do torch's maximize=True"): NAdam(ps, maximize=True)
    with pytest.raises(ValueError, match='give one'): NAdam(ps, decouple_wd=True, decoupled_weight_decay=False)
    with pytest.raises(ValueError, match='give one'): QHAdam(ps, 1e-3, decouple_wd=False, decoupled_weight_decay=True)
    with pytest.raises(ValueError, match='give one'): ranger(ps, 1e-3, mom=0.9, betas=(0.8, 0.99))
    opt = Lookahead(SGD(ps, 0.1))
    with pytest.raises(ValueError, match=r'alpha must be in \(0, 1\], got 2'): opt.alpha = 2
    with pytest.raises(TypeError, match='k must be an integer'): opt.k = 'six'
    with pytest.raises(TypeError, match='Lookahead wraps a torch.optim.Optimizer'): Lookahead(ps)
    with pytest.raises(TypeError, match='not a Lookahead already'): Lookahead(opt)
    with pytest.raises(AttributeError): opt.param_groups = []
    opt.k, opt.alpha = 3, 1
    assert (opt.k, opt.alpha) == (3, 1.) and type(opt.alpha) is float
    # NAdam's decoupled_weight_decay=True over its default decouple_wd=False is not a conflict: torch's switch wins
    assert NAdam(ps, decoupled_weight_decay=True).steppers[0].__name__ == 'weight_decay'
