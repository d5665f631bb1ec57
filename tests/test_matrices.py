"""Adafactor and Muon (fastnote.matrices) against torch.optim.Adafactor (both paths) and torch.optim.Muon, with Muon's
AdamW groups against torch.optim.AdamW: 100 steps, three param groups, mixed shapes, missing gradients; state dicts,
torch's schedulers, fit_one_cycle, and the errors for bad hyper-parameters. torch 2.13's Muon runs on matrices only."""
import io
import pytest, torch
import problems
from problems import max_rel_diff
from fastnote.optimizer import Optimizer
from fastnote.matrices import Adafactor, Muon, muon_groups, orthogonalize, NS_COEFFICIENTS

# Adafactor: every kind of shape torch distinguishes (a matrix, vectors, a scalar, a stack of matrices, a conv weight);
# (20, 30) and (600,) are more than a block of 256 values, which Adafactor must not cut
ADAFACTOR_SHAPES = [(20, 30), (30,), (600,), (), (5, 3, 4), (2, 3, 4, 5), (7, 1), (1, 9)]
MUON_SHAPES = [(20, 30), (30, 20), (5, 40), (40, 5), (1, 6), (16, 16)]
# Muon with AdamW groups: the vectors (one of 600 values, cut into blocks by AdamW's steppers) and the conv weight go to AdamW
MIXED_SHAPES = [(20, 30), (30,), (600,), (30, 20), (4, 3, 3, 3), (16, 16)]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    "Blocks of 256 values: AdamW's steppers cut big tensors into pieces, Adafactor's and Muon's declare whole tensors."
    monkeypatch.setattr(Optimizer, 'block_size', 256)


make_params = problems.make_params
def set_grads(ps, t, drop=0.): problems.set_grads(ps, t, [0.1 + i for i in range(len(ps))], drop)   # noise 0.1, 1.1, 2.1...


def groups(ps, lr):
    "Three groups: the second with its own learning rate, the third with its own weight decay."
    n = len(ps) // 3
    return [{'params': ps[:n]}, {'params': ps[n:2 * n], 'lr': 3 * lr}, {'params': ps[2 * n:], 'weight_decay': 0.05}]


def train(make, shapes, lr, n=100, drop=0., ps=None, start=0, sched=None):
    ps = make_params(shapes) if ps is None else ps
    opt = make(groups(ps, lr))
    s = sched(opt) if sched else None
    for t in range(start, n):
        set_grads(ps, t, drop); opt.step()
        if s: s.step()
    return ps, opt




@pytest.mark.parametrize('foreach,drop', [(f, d) for f in (True, False) for d in (0., 0.3)])
def test_adafactor_matches_torch_over_100_steps(foreach, drop):
    """torch's multi-tensor path bit for bit on matrices, vectors and scalars; its for-loop path rounds a few operations
    differently, and so do fastnote's column means of tensors of more than 2 dims (on a transposed copy: faster)."""
    lr = 2e-2
    theirs, ref = train(lambda g: torch.optim.Adafactor(g, lr, weight_decay=0.1, foreach=foreach), ADAFACTOR_SHAPES, lr, drop=drop)
    mine, opt = train(lambda g: Adafactor(g, lr, wd=0.1), ADAFACTOR_SHAPES, lr, drop=drop)
    assert max_rel_diff(mine, theirs) < 1e-6
    if foreach: assert all(torch.equal(a, b) for a, b in zip(mine, theirs) if a.dim() <= 2)
    steps = [opt.state[p]['step'] for p in mine]
    assert steps == [int(ref.state[q]['step']) for q in theirs] and (drop == 0) == (steps == [100] * len(mine))


def test_adafactor_torch_names_and_defaults():
    "Adafactor(params) is torch's Adafactor(params); torch's names and positions give the same bits as fastnote's names."
    theirs, _ = train(lambda g: torch.optim.Adafactor(g, foreach=True), ADAFACTOR_SHAPES, 1e-2)
    mine, opt = train(lambda g: Adafactor(g), ADAFACTOR_SHAPES, 1e-2)
    assert max_rel_diff(mine, theirs) < 1e-6 and all(torch.equal(a, b) for a, b in zip(mine, theirs) if a.dim() <= 2)
    assert {k: opt.defaults[k] for k in ('lr', 'beta2_decay', 'eps1', 'eps2', 'd', 'wd')} == dict(lr=1e-2, beta2_decay=-0.8, eps1=None, eps2=1e-3, d=1., wd=0.)
    kw = dict(beta2_decay=-0.6, d=2.)
    theirs, _ = train(lambda g: torch.optim.Adafactor(g, 3e-2, eps=(1e-20, 1e-2), weight_decay=0.2, foreach=True, **kw), ADAFACTOR_SHAPES, 3e-2)
    positional, _ = train(lambda g: Adafactor(g, 3e-2, -0.6, (1e-20, 1e-2), 2., weight_decay=0.2), ADAFACTOR_SHAPES, 3e-2)
    named, _ = train(lambda g: Adafactor(g, lr=3e-2, eps1=1e-20, eps2=1e-2, wd=0.2, **kw), ADAFACTOR_SHAPES, 3e-2)
    assert max_rel_diff(positional, theirs) < 1e-6 and all(torch.equal(a, b) for a, b in zip(positional, named))


def test_adafactor_state_is_torchs():
    "Row and column factors over the last two dims for 2 dims or more, the full average for fewer; None for the rest."
    ps, opt = train(lambda g: Adafactor(g), ADAFACTOR_SHAPES, 1e-2, n=3)
    _, ref = train(lambda g: torch.optim.Adafactor(g, foreach=True), ADAFACTOR_SHAPES, 1e-2, n=3)
    for p, q in zip(ps, [q for g in ref.param_groups for q in g['params']]):
        mine, theirs = opt.state[p], ref.state[q]
        assert mine['step'] == int(theirs['step']) == 3
        for k in ('row_var', 'col_var', 'variance'):
            assert (mine[k] is None) == (k not in theirs)
            if k in theirs: assert torch.equal(mine[k], theirs[k]) if p.dim() <= 2 else torch.allclose(mine[k], theirs[k], rtol=1e-6, atol=0)


def test_adafactor_sees_whole_tensors():
    "The RMS of each parameter and of each update, and the factors, are of whole tensors: any block size gives the same bits."
    a, _ = train(lambda g: Adafactor(g), ADAFACTOR_SHAPES, 1e-2, n=10)
    b, _ = train(lambda g: type('Unblocked', (Adafactor,), {'block_size': None})(g), ADAFACTOR_SHAPES, 1e-2, n=10)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize('kw,drop', [(dict(), 0.), (dict(), 0.3), (dict(nesterov=False, adjust_lr_fn='match_rms_adamw', momentum=0.9), 0.3),
                                     (dict(adjust_lr_fn='original', weight_decay=0.), 0.)])
def test_muon_matches_torch_over_100_steps(kw, drop):
    "On matrices, torch's Muon bit for bit: the same bfloat16 Newton-Schulz, the same momentum and decay."
    lr = 2e-2
    theirs, _ = train(lambda g: torch.optim.Muon(g, lr, **kw), MUON_SHAPES, lr, drop=drop)
    mine, _ = train(lambda g: Muon(g, lr, **kw), MUON_SHAPES, lr, drop=drop)
    assert max_rel_diff(mine, theirs) < 1e-6
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))


class TorchPair(torch.optim.Optimizer):
    "torch's Muon on each group's matrices, torch's AdamW on the rest (with torch AdamW's defaults), stepped together."
    def __init__(self, groups, lr):
        split = lambda keep: [{**g, 'params': [p for p in g['params'] if keep(p)]} for g in groups]
        self.opts = [torch.optim.Muon([g for g in split(lambda p: p.dim() == 2) if g['params']], lr),
                     torch.optim.AdamW([g for g in split(lambda p: p.dim() != 2) if g['params']], lr)]
    def step(self): [o.step() for o in self.opts]


def fastnote_pair(groups, lr):
    "The same with fastnote's Muon: each group split by `muon_groups`, AdamW's half keeping the group's lr and weight decay."
    res = []
    for g in groups:
        extra = {k: v for k, v in g.items() if k != 'params'}
        for sub in muon_groups(g['params']):
            res.append({**sub, **extra} if sub.get('muon') is False else {**sub, **extra})
    return Muon(res, lr)


@pytest.mark.parametrize('drop', [0., 0.3])
def test_muon_with_adamw_groups_matches_torch_muon_and_adamw(drop):
    lr = 1e-2
    theirs, _ = train(lambda g: TorchPair(g, lr), MIXED_SHAPES, lr, drop=drop)
    mine, opt = train(lambda g: fastnote_pair(g, lr), MIXED_SHAPES, lr, drop=drop)
    assert [g['muon'] for g in opt.param_groups] == [True, False, True, False, True, False]
    assert max_rel_diff(mine, theirs) < 1e-6
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))


def test_muon_defaults_are_torchs():
    opt = Muon(make_params(MUON_SHAPES))
    assert {k: opt.defaults[k] for k in ('lr', 'wd', 'mom', 'nesterov', 'ns_coefficients', 'eps', 'ns_steps', 'adjust_lr_fn', 'muon')} == \
        dict(lr=1e-3, wd=0.1, mom=0.95, nesterov=True, ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None, muon=True)
    theirs, _ = train(lambda g: torch.optim.Muon(g), MUON_SHAPES, 1e-3)
    mine, _ = train(lambda g: Muon(g), MUON_SHAPES, 1e-3)
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))


def test_orthogonalize_is_torchs_newton_schulz():
    from torch.optim._muon import _zeropower_via_newtonschulz
    g = torch.Generator().manual_seed(0)
    for shape, steps, coeffs in [((20, 30), 5, NS_COEFFICIENTS), ((30, 20), 3, NS_COEFFICIENTS), ((8, 8), 5, (2., -1.5, 0.5))]:
        x = torch.randn(shape, generator=g)
        assert torch.equal(orthogonalize(x, coeffs, steps, 1e-7), _zeropower_via_newtonschulz(x, coeffs, steps, 1e-7))
    sv = torch.linalg.svdvals(orthogonalize(torch.randn(32, 64, generator=g), ns_steps=10).float())
    assert 0.6 < sv.min() and sv.max() < 1.25


def test_muon_groups():
    model = torch.nn.Sequential(torch.nn.Embedding(10, 8), torch.nn.Linear(8, 16), torch.nn.Conv1d(16, 4, 3), torch.nn.Linear(2, 3))
    gs = muon_groups(model, exclude=model[0])
    assert [[tuple(p.shape) for p in g['params']] for g in gs] == [[(16, 8), (3, 2)], [(10, 8), (16,), (4, 16, 3), (4,), (3,)]]
    assert {k: v for k, v in gs[1].items() if k != 'params'} == dict(muon=False, mom=0.9, sqr_mom=0.999, eps=1e-8, wd=0.01)
    gs = muon_groups(model.parameters(), betas=(0.8, 0.9), weight_decay=0., lr=1e-4)
    assert {k: v for k, v in gs[1].items() if k != 'params'} == dict(muon=False, eps=1e-8, betas=(0.8, 0.9), weight_decay=0., lr=1e-4)
    opt = Muon(gs, lr=0.02)
    assert [(g['lr'], g['mom'], g['sqr_mom'], g['wd']) for g in opt.param_groups] == [(0.02, 0.95, 0.999, 0.1), (1e-4, 0.8, 0.9, 0.)]
    assert len(muon_groups([torch.zeros(3, 3)])) == 1 and len(muon_groups([torch.zeros(3)])) == 1


MAKERS = {'Adafactor': (lambda g: Adafactor(g, wd=0.1), ADAFACTOR_SHAPES),
          'Muon': (lambda g: Muon(g, 2e-2), MUON_SHAPES),
          'Muon+AdamW': (lambda g: fastnote_pair(g, 2e-2), MIXED_SHAPES)}


@pytest.mark.parametrize('name', MAKERS)
def test_state_dict_round_trips_and_continues_bit_for_bit(name):
    make, shapes = MAKERS[name]
    ref, _ = train(make, shapes, 1e-2, n=30, drop=0.2)
    ps, opt = train(make, shapes, 1e-2, n=12, drop=0.2)
    buf = io.BytesIO()
    torch.save({'params': [p.detach() for p in ps], 'opt': opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    ps = [p.clone().requires_grad_() for p in saved['params']]
    opt = make(groups(ps, 1e-2))
    opt.load_state_dict(saved['opt'])
    for t in range(12, 30): set_grads(ps, t, 0.2); opt.step()
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))


def test_a_state_dict_of_another_optimizer_is_refused():
    _, opt = train(MAKERS['Adafactor'][0], MUON_SHAPES, 1e-2, n=2)
    with pytest.raises(ValueError, match='belongs to an optimizer made of'): Muon(groups(make_params(MUON_SHAPES), 1e-2)).load_state_dict(opt.state_dict())


def one_cycle(total=12):
    return lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=total, cycle_momentum=isinstance(opt, (Muon, torch.optim.Muon)))


def test_torch_scheduler_drives_adafactor():
    "OneCycleLR drives the learning rate (Adafactor has no momentum, as torch's has none) exactly as it drives torch's."
    mine, opt = train(lambda g: Adafactor(g), ADAFACTOR_SHAPES, 1e-2, n=12, sched=one_cycle())
    theirs, ref = train(lambda g: torch.optim.Adafactor(g, foreach=True), ADAFACTOR_SHAPES, 1e-2, n=12, sched=one_cycle())
    assert [g['lr'] for g in opt.param_groups] == [g['lr'] for g in ref.param_groups]
    assert max_rel_diff(mine, theirs) < 1e-6 and all(torch.equal(a, b) for a, b in zip(mine, theirs) if a.dim() <= 2)
    with pytest.raises(ValueError, match='momentum'): torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.05, total_steps=5)


def test_torch_scheduler_drives_muon():
    "OneCycleLR cycles Muon's lr and momentum (through torch's names) exactly as it does torch's Muon's."
    mine, opt = train(lambda g: Muon(g), MUON_SHAPES, 1e-2, n=12, sched=one_cycle())
    theirs, ref = train(lambda g: torch.optim.Muon(g), MUON_SHAPES, 1e-2, n=12, sched=one_cycle())
    assert [(g['lr'], g['mom']) for g in opt.param_groups] == [(g['lr'], g['momentum']) for g in ref.param_groups]
    assert opt.param_groups[0]['mom'] != 0.95
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))


def one_cycle_run(opt_func):
    "lr and mom after a fit_one_cycle of 2 epochs (None for an optimizer without mom), and whether the parameters moved."
    learn, before = problems.one_cycle_fit(opt_func)
    moved = all(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    pg = learn.opt.param_groups[0]
    return type(learn.opt), pg['lr'], pg.get('mom'), moved


def test_fit_one_cycle_drives_them():
    "fit_one_cycle schedules lr (and Muon's mom) exactly as it does Adam's; Muon takes its groups from muon_groups."
    from fastnote import Adam
    _, ref_lr, ref_mom, _ = one_cycle_run(Adam)
    assert one_cycle_run(Adafactor) == (Adafactor, ref_lr, None, True)
    # the AdamW group at Muon's momentum: ParamScheduler keeps each group's mom in proportion to the last group's
    assert one_cycle_run(lambda ps, lr: Muon(muon_groups(ps, mom=0.95), lr)) == (Muon, ref_lr, ref_mom, True) and ref_mom < 0.95


BAD = [(Adafactor, dict(lr=-1.), 'lr must be >= 0, got -1.0', ValueError),
       (Adafactor, dict(beta2_decay=0.5), 'beta2_decay must be <= 0, got 0.5', ValueError),
       (Adafactor, dict(d=0.9), 'd must be >= 1, got 0.9', ValueError),
       (Adafactor, dict(eps=(-1e-30, 1e-3)), 'eps1 must be >= 0, got -1e-30', ValueError),
       (Adafactor, dict(eps=(None, float('nan'))), 'eps2 must be a finite number, got nan', ValueError),
       (Adafactor, dict(eps=1e-8), "Adafactor's eps is torch's pair (eps1, eps2)", ValueError),
       (Adafactor, dict(eps=(None, 1e-3, 1.)), 'got (None, 0.001, 1.0)', ValueError),
       (Adafactor, dict(wd=-0.1), 'wd must be >= 0, got -0.1', ValueError),
       (Adafactor, dict(eps1='tiny'), "eps1 must be a real number, got 'tiny'", TypeError),
       (Adafactor, dict(maximize=True), "does not do torch's maximize=True", ValueError),
       (Muon, dict(lr=-1.), 'lr must be >= 0, got -1.0', ValueError),
       (Muon, dict(mom=1.), 'mom must be in [0, 1), got 1.0', ValueError),
       (Muon, dict(momentum=-0.1), 'mom must be in [0, 1), got -0.1', ValueError),
       (Muon, dict(ns_steps=100), 'ns_steps must be in [0, 100), got 100', ValueError),
       (Muon, dict(ns_steps=2.), 'ns_steps must be an integer, got 2.0', TypeError),
       (Muon, dict(ns_coefficients=(1., 2.)), 'ns_coefficients must be three numbers (a, b, c), got (1.0, 2.0)', ValueError),
       (Muon, dict(ns_coefficients=(1., 2., 'c')), "ns_coefficients must be a real number, got 'c'", TypeError),
       (Muon, dict(adjust_lr_fn='adamw'), "adjust_lr_fn must be one of (None, 'original', 'match_rms_adamw'), got 'adamw'", ValueError),
       (Muon, dict(nesterov=1), 'nesterov must be True or False, got 1', TypeError),
       (Muon, dict(muon='yes'), "muon must be True or False, got 'yes'", TypeError),
       (Muon, dict(eps=-1.), 'eps must be >= 0, got -1.0', ValueError),
       (Muon, dict(weight_decay=-1.), 'wd must be >= 0, got -1.0', ValueError),
       (Muon, dict(foreach=False), "does not do torch's foreach=False", ValueError)]


@pytest.mark.parametrize('cls,kw,message,err', BAD)
def test_bad_hyper_parameters_are_refused_by_name(cls, kw, message, err):
    with pytest.raises(err) as e: cls(make_params(MUON_SHAPES), **kw)
    assert message in str(e.value)


def test_bad_values_in_groups_set_hyper_and_params_are_refused():
    mats, vec = make_params([(3, 4)]), make_params([(4,)])
    with pytest.raises(ValueError, match=r"muon=True got a parameter of shape \(4,\).*muon_groups"): Muon(mats + vec)
    with pytest.raises(ValueError, match=r"shape \(2, 3, 3, 3\)"): Muon(make_params([(2, 3, 3, 3)]))
    opt = Muon([{'params': mats}])
    with pytest.raises(ValueError, match=r"shape \(4,\)"): opt.add_param_group({'params': vec})
    assert len(opt.param_groups) == 1
    opt.add_param_group({'params': vec, 'muon': False, 'betas': (0.9, 0.99)})
    assert opt.param_groups[1]['sqr_mom'] == 0.99
    with pytest.raises(ValueError, match='ns_steps must be in'): opt.set_hyper('ns_steps', -1)
    opt.set_hyper('muon', [True, 'no'])
    set_grads(mats + vec, 0)
    with pytest.raises(TypeError, match="muon must be True .* got 'no'"): opt.step()
    opt.param_groups[1]['muon'] = True
    with pytest.raises(ValueError, match=r'muon_step runs on matrices|orthogonalises matrices'): opt.step()
    with pytest.raises(ValueError, match="has no hyper-parameter 'beta1'"): Muon(mats, beta1=0.9)
    with pytest.raises(ValueError, match='d must be >= 1, got 0.5'): Adafactor(mats).set_hyper('d', 0.5)
    with pytest.raises(ValueError, match="eps is torch's pair"): Adafactor([{'params': mats, 'eps': 1e-3}])
    with pytest.raises(ValueError, match='give one'): Adafactor(mats, eps=(None, 1e-2), eps2=1e-3)
    with pytest.raises(ValueError, match="Adafactor has no hyper-parameter 'mom'"): Adafactor(mats, betas=(0.9, 0.99))
    opt = Adafactor([{'params': mats, 'eps': (1e-20, 0.1)}])
    assert (opt.param_groups[0]['eps1'], opt.param_groups[0]['eps2']) == (1e-20, 0.1)


def test_adafactor_eps1_none_is_each_dtypes_machine_epsilon():
    "A group mixing float64 and float32: each parameter floors its estimate with its own dtype's epsilon, as torch's per-dtype groups do."
    g = torch.Generator().manual_seed(0)
    a = [torch.randn(4, 3, generator=g, dtype=torch.float64).requires_grad_(), torch.randn(5, generator=g).requires_grad_()]
    b = [x.detach().clone().requires_grad_() for x in a]
    mine, theirs = Adafactor(a), [torch.optim.Adafactor([x], foreach=True) for x in b]
    for _ in range(5):
        for x, y in zip(a, b): x.grad = 1e-9 * torch.randn(x.shape, generator=g, dtype=x.dtype); y.grad = x.grad.clone()
        mine.step(); [o.step() for o in theirs]
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_fit_one_cycle_drives_muon_groups_of_different_momenta():
    "muon_groups gives Muon's group mom 0.95 and AdamW's 0.9: one-cycle's momentum schedule sets both alike, as fastai does."
    import torch.nn.functional as F
    from fastnote import Learner, DataLoaders
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(16, 8, generator=g), torch.randint(0, 3, (16,), generator=g)) for _ in range(4)]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    learn = Learner(DataLoaders(data, data[:1]), model, F.cross_entropy, opt_func=lambda ps, lr: Muon(muon_groups(ps), lr), lr=1e-2)
    assert [g['mom'] for g in learn.create_opt().param_groups] == [0.95, 0.9]
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1)
    moms = learn.recorder.hps['mom']
    assert 0.85 <= min(moms) < max(moms) <= 0.95 and len({g['mom'] for g in learn.opt.param_groups}) == 1
