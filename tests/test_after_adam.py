"""Lion and AdamWScheduleFree (fastnote.after_adam) against their references, lion-pytorch's `Lion` and schedulefree's
`AdamWScheduleFree` (both installed in the dev environment, run here): 100 steps, three param groups, mixed shapes, a
tensor cut into blocks, missing gradients; for schedule-free also the eval()/train() switching and the weights in
eval mode. State dicts, torch's schedulers, fit_one_cycle, and the errors for bad hyper-parameters."""
import io, warnings
import pytest, torch
import problems
from problems import max_rel_diff
from fastnote.optimizer import Optimizer
from fastnote.after_adam import Lion, AdamWScheduleFree, advance_average

lion_pytorch = pytest.importorskip('lion_pytorch')
schedulefree = pytest.importorskip('schedulefree')

SHAPES = [(20, 30), (30,), (5, 3, 3), (7,), (4, 6), (3,)]   # (20, 30) is cut into blocks of 256 below
SCALES = [1., 0.1, 3., 0.01, 1., 10.]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    "Blocks of 256 values, so that the steppers see cut tensors."
    monkeypatch.setattr(Optimizer, 'block_size', 256)


def make_params(seed=0): return problems.make_params(SHAPES, seed)
def set_grads(ps, t, drop=0., drop_group=None):
    "The shared problem's gradients; `drop_group` (a slice) all None."
    problems.set_grads(ps, t, SCALES, drop, none=() if drop_group is None else range(6)[drop_group])
groups = problems.three_groups


def train(make, lr, n=100, drop=0., ps=None, start=0, modes=False, switch_at=(), drop_group_at=()):
    "Run `n` steps; with `modes`, train() first, eval() then train() again at each step of `switch_at`."
    ps = make_params() if ps is None else ps
    opt = make(groups(ps, lr))
    if modes: opt.train()
    for t in range(start, n):
        if t in switch_at: opt.eval(); opt.train()
        set_grads(ps, t, drop, slice(2, 4) if t in drop_group_at else None)
        opt.step()
    return ps, opt


# ---- Lion ----
LION_CASES = {'defaults': ({}, 0.), 'wd and betas': (dict(weight_decay=0.1, betas=(0.95, 0.98)), 0.),
              'defaults, drop': ({}, 0.3), 'wd, drop': (dict(weight_decay=0.3), 0.3)}


@pytest.mark.parametrize('name', LION_CASES)
def test_lion_matches_lion_pytorch_over_100_steps(name):
    kw, drop = LION_CASES[name]
    theirs, _ = train(lambda g: lion_pytorch.Lion(g, 1e-3, **kw), 1e-3, drop=drop)
    mine, _ = train(lambda g: Lion(g, 1e-3, **kw), 1e-3, drop=drop)
    assert max_rel_diff(mine, theirs) < 1e-6
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))        # the same operations in the same order


def test_lion_defaults_are_lion_pytorchs():
    ref = lion_pytorch.Lion(make_params())
    opt = Lion(make_params())
    assert opt.defaults['lr'] == ref.defaults['lr'] == 1e-4
    assert (opt.defaults['mom'], opt.defaults['sqr_mom']) == ref.defaults['betas'] == (0.9, 0.99)
    assert opt.defaults['wd'] == ref.defaults['weight_decay'] == 0.
    theirs, _ = train(lambda g: lion_pytorch.Lion(g), 1e-4)
    mine, _ = train(lambda g: Lion(g), 1e-4)
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))


def test_lion_moves_every_coordinate_by_lr():
    p = torch.tensor([1., -2., 3., 0.5], requires_grad=True)
    p.grad = torch.tensor([1e-6, -5., 100., -1e-3])
    Lion([p], lr=0.1).step()
    assert torch.allclose(p.detach(), torch.tensor([0.9, -1.9, 2.9, 0.6]))


# ---- AdamWScheduleFree ----
SF_CASES = {'defaults': ({}, 0.), 'defaults, drop': ({}, 0.3),
            'wd, warmup': (dict(weight_decay=0.1, warmup_steps=20), 0.3),
            'r, weight_lr_power, betas': (dict(r=1., weight_lr_power=1., betas=(0.95, 0.99), eps=1e-6), 0.3),
            'no weighting': (dict(weight_lr_power=0., warmup_steps=5), 0.)}


@pytest.mark.parametrize('foreach', [True, False])
@pytest.mark.parametrize('name', SF_CASES)
def test_schedule_free_matches_schedulefree_over_100_steps(name, foreach):
    "y in train mode after 100 steps (with eval()/train() at steps 30 and 70, a whole group without gradients at 40-49), then x in eval mode."
    kw, drop = SF_CASES[name]
    common = dict(lr=1e-2, drop=drop, modes=True, switch_at=(30, 70), drop_group_at=range(40, 50))
    theirs, ref = train(lambda g: schedulefree.AdamWScheduleFree(g, 1e-2, foreach=foreach, **kw), **common)
    mine, opt = train(lambda g: AdamWScheduleFree(g, 1e-2, **kw), **common)
    assert max_rel_diff(mine, theirs) < 1e-6
    assert [g['k'] for g in opt.param_groups] == [g['k'] for g in ref.param_groups] == [100] * 3
    assert [g['weight_sum'] for g in opt.param_groups] == pytest.approx([g['weight_sum'] for g in ref.param_groups], rel=1e-12)
    opt.eval(); ref.eval()
    assert max_rel_diff(mine, theirs) < 1e-6
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))


def test_schedule_free_defaults_are_schedulefrees():
    ref, opt = schedulefree.AdamWScheduleFree(make_params()), AdamWScheduleFree(make_params())
    d, r = opt.defaults, ref.defaults
    assert (d['lr'], (d['mom'], d['sqr_mom']), d['eps'], d['wd']) == (r['lr'], r['betas'], r['eps'], r['weight_decay'])
    assert [d[k] for k in ('warmup_steps', 'r', 'weight_lr_power', 'k', 'weight_sum', 'lr_max', 'train_mode')] == \
           [r[k] for k in ('warmup_steps', 'r', 'weight_lr_power', 'k', 'weight_sum', 'lr_max', 'train_mode')]


def test_modes_are_idempotent_and_a_step_in_eval_mode_is_refused():
    ps, opt = train(lambda g: AdamWScheduleFree(g, 1e-2), 1e-2, n=5, modes=True)
    y = [p.detach().clone() for p in ps]
    opt.train()                                             # already in train mode: nothing
    assert all(torch.equal(a, b) for a, b in zip(ps, y))
    opt.eval(); x = [p.detach().clone() for p in ps]; opt.eval()
    assert all(torch.equal(a, b) for a, b in zip(ps, x)) and not all(torch.equal(a, b) for a, b in zip(x, y))
    with pytest.raises(RuntimeError, match=r'step\(\) in eval mode.*opt.train\(\)'): opt.step()
    opt.train()
    assert max_rel_diff(ps, y) < 1e-6
    with pytest.raises(RuntimeError, match='eval mode'): AdamWScheduleFree(make_params()).step()   # a new one is in eval mode


def test_a_group_added_later_takes_the_optimizers_mode():
    ps = make_params()
    opt = AdamWScheduleFree(ps[:3], 1e-2)
    opt.train()
    opt.add_param_group({'params': ps[3:], 'lr': 1e-3})
    assert [g['train_mode'] for g in opt.param_groups] == [True, True]
    for t in range(3): set_grads(ps, t); opt.step()
    with pytest.raises(ValueError, match=r"keeps \['k', 'train_mode'\] itself"): opt.add_param_group({'params': [torch.zeros(2, requires_grad=True)], 'k': 3, 'train_mode': True})


def test_advance_average_counts_steps_of_groups_without_gradients():
    "A group none of whose parameters has a gradient still advances k and weight_sum, as schedulefree's does."
    ps, opt = train(lambda g: AdamWScheduleFree(g, 1e-2), 1e-2, n=10, modes=True, drop_group_at=range(0, 10))
    assert [g['k'] for g in opt.param_groups] == [10, 10, 10]
    assert not any('z' in opt.state[p] for p in ps[2:4])
    group = dict(lr=0.1, k=0, warmup_steps=0, r=0., weight_lr_power=2., lr_max=-1., weight_sum=0., scheduled_lr=0.)
    advance_average(group)
    assert group == dict(lr=0.1, k=1, warmup_steps=0, r=0., weight_lr_power=2., lr_max=0.1, weight_sum=0.1**2, scheduled_lr=0.1)


# ---- state dicts ----
def round_trip(make, lr, n_before, n_total, modes=False, save_in_eval=False):
    "Train, save params and optimizer (in eval mode if `save_in_eval`), load into fresh ones, go on; return the params."
    ps, opt = train(make, lr, n=n_before, modes=modes)
    if save_in_eval: opt.eval()
    buf = io.BytesIO()
    torch.save({'params': [p.detach() for p in ps], 'opt': opt.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    ps = [p.clone().requires_grad_() for p in saved['params']]
    opt = make(groups(ps, lr))
    opt.load_state_dict(saved['opt'])
    if modes: opt.train()
    for t in range(n_before, n_total): set_grads(ps, t); opt.step()
    return ps, opt


def test_lion_state_dict_round_trips_and_continues_bit_for_bit():
    make = lambda g: Lion(g, 1e-3, wd=0.1)
    ref, _ = train(make, 1e-3, n=40)
    ps, _ = round_trip(make, 1e-3, 15, 40)
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))


@pytest.mark.parametrize('save_in_eval', [False, True])
def test_schedule_free_state_dict_round_trips_and_continues_bit_for_bit(save_in_eval):
    "Saved in train mode (params are y) or eval mode (params are x): the mode travels in the groups; train() after loading."
    make = lambda g: AdamWScheduleFree(g, 1e-2, weight_decay=0.01, warmup_steps=10)
    ref, ref_opt = train(make, 1e-2, n=40, modes=True, switch_at=(15,) if save_in_eval else ())
    ps, opt = round_trip(make, 1e-2, 15, 40, modes=True, save_in_eval=save_in_eval)
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))
    assert [g['k'] for g in opt.param_groups] == [40] * 3 and opt.param_groups[0]['weight_sum'] == ref_opt.param_groups[0]['weight_sum']
    opt.eval(); ref_opt.eval()
    assert all(torch.equal(a, b) for a, b in zip(ps, ref))


def test_the_mode_is_in_the_state_dict():
    _, opt = train(lambda g: AdamWScheduleFree(g, 1e-2), 1e-2, n=3, modes=True)
    assert [g['train_mode'] for g in opt.state_dict()['param_groups']] == [True] * 3
    opt.eval()
    sd = opt.state_dict()
    assert [g['train_mode'] for g in sd['param_groups']] == [False] * 3 and [g['k'] for g in sd['param_groups']] == [3] * 3
    assert set(sd['state'][0]) == {'z', 'sqr_avg'}


def test_a_state_dict_of_another_optimizer_is_refused():
    _, opt = train(lambda g: Lion(g, 1e-3), 1e-3, n=2)
    with pytest.raises(ValueError, match='belongs to an optimizer made of'): AdamWScheduleFree(groups(make_params(), 1e-3)).load_state_dict(opt.state_dict())


# ---- schedules ----
def test_torch_scheduler_drives_lion_lr_and_momentum():
    "OneCycleLR cycles lr and betas[0] (fastnote's mom) as it does torch's AdamW's."
    ps = make_params()
    opt = Lion(ps, 1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=10)
    ref = torch.optim.AdamW([torch.zeros(1, requires_grad=True)], 1e-4)
    ref_sched = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=1e-3, total_steps=10)
    seen, ref_seen = [], []
    for t in range(10):
        set_grads(ps, t); opt.step(); sched.step(); ref.step(); ref_sched.step()
        seen.append((opt.param_groups[0]['lr'], opt.param_groups[0]['mom'])); ref_seen.append((ref.param_groups[0]['lr'], ref.param_groups[0]['betas'][0]))
    assert seen == ref_seen and len({m for _, m in seen}) > 5


def test_torch_scheduler_drives_schedule_free_as_it_drives_schedulefree():
    "OneCycleLR on the lr only: the same lr sequence, the same parameters as schedulefree's, bit for bit, and no warning."
    out = []
    for cls in (schedulefree.AdamWScheduleFree, AdamWScheduleFree):
        ps = make_params()
        opt = cls(groups(ps, 1e-2), 1e-2)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[1e-2, 3e-2, 1e-2], total_steps=30, cycle_momentum=False)
        opt.train()
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            for t in range(30): set_grads(ps, t); opt.step(); sched.step()
        opt.eval()
        out.append((ps, [g['lr_max'] for g in opt.param_groups]))
    (theirs, ref_max), (mine, my_max) = out
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs)) and my_max == ref_max


def test_a_changing_mom_warns_once():
    ps = make_params()
    opt = AdamWScheduleFree(ps, 1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=20)     # cycles betas[0] too
    opt.train()
    with pytest.warns(UserWarning, match=r'mom \(beta1\) changed from .* keep mom constant|Keep mom constant') as rec:
        for t in range(20): set_grads(ps, t); opt.step(); sched.step()
    assert len([w for w in rec if 'mom (beta1) changed' in str(w.message)]) == 1


def one_cycle_run(opt_func, moms=(0.95, 0.85, 0.95)):
    "The optimizer after a fit_one_cycle of 2 epochs, its lr and mom, and whether the parameters moved."
    learn, before = problems.one_cycle_fit(opt_func, moms)
    moved = any(not torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))
    return learn, learn.opt.param_groups[0]['lr'], learn.opt.param_groups[0]['mom'], moved


def test_fit_one_cycle_drives_lion():
    from fastnote import Adam
    learn, lr, mom, moved = one_cycle_run(Lion)
    _, ref_lr, ref_mom, _ = one_cycle_run(Adam)
    assert type(learn.opt) is Lion and moved and (lr, mom) == (ref_lr, ref_mom) and mom < 0.95


def test_fit_one_cycle_drives_schedule_free_and_leaves_it_in_eval_mode():
    "The Learner calls train() and eval(); the lr follows the one-cycle schedule; with a constant mom, no warning."
    from fastnote import Adam
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        learn, lr, mom, moved = one_cycle_run(AdamWScheduleFree, moms=(0.9, 0.9, 0.9))
    _, ref_lr, _, _ = one_cycle_run(Adam)
    opt = learn.opt
    assert type(opt) is AdamWScheduleFree and moved and lr == ref_lr and mom == 0.9
    assert not opt.param_groups[0]['train_mode'] and opt.param_groups[0]['k'] == 12
    assert opt.param_groups[0]['lr_max'] == pytest.approx(1e-2, rel=1e-2)          # the peak of the cycle
    with pytest.warns(UserWarning, match='mom'): one_cycle_run(AdamWScheduleFree)   # fastai's moms cycle: warned


# ---- bad input ----
P = lambda: make_params()[:2]
BAD = [(Lion, dict(lr=-1e-3), 'lr', ValueError), (Lion, dict(mom=1.5), 'mom', ValueError),
       (Lion, dict(sqr_mom=1.), 'sqr_mom', ValueError), (Lion, dict(wd=-0.1), 'wd', ValueError),
       (Lion, dict(lr='1e-3'), 'lr', TypeError), (Lion, dict(use_triton=True), 'use_triton', ValueError),
       (Lion, dict(decoupled_weight_decay=True), 'decoupled_weight_decay', ValueError),
       (Lion, dict(use_triton='no'), 'use_triton', ValueError),
       (AdamWScheduleFree, dict(mom=0.), 'mom', ValueError), (AdamWScheduleFree, dict(warmup_steps=-1), 'warmup_steps', ValueError),
       (AdamWScheduleFree, dict(warmup_steps=2.5), 'warmup_steps', TypeError), (AdamWScheduleFree, dict(r=-1.), 'r', ValueError),
       (AdamWScheduleFree, dict(weight_lr_power=float('nan')), 'weight_lr_power', ValueError),
       (AdamWScheduleFree, dict(eps=-1e-8), 'eps', ValueError), (AdamWScheduleFree, dict(sqr_mom=1.), 'sqr_mom', ValueError)]


@pytest.mark.parametrize('cls,kw,name,err', BAD)
def test_bad_hyper_parameters_are_refused_by_name(cls, kw, name, err):
    with pytest.raises(err) as e: cls(P(), **kw)
    assert name in str(e.value) and repr(kw[name]) in str(e.value)


def test_bad_values_in_groups_set_hyper_and_schedules_are_refused():
    with pytest.raises(ValueError, match='warmup_steps must be >= 0, got -3'): AdamWScheduleFree([{'params': P(), 'warmup_steps': -3}])
    with pytest.raises(ValueError, match='mom must be > 0, got 0'): AdamWScheduleFree(P()).set_hyper('mom', 0)
    with pytest.raises(ValueError, match='r must be >= 0, got -1'): AdamWScheduleFree(P()).param_groups[0].update(r=-1)
    with pytest.raises(ValueError, match="keeps 'k' itself"): AdamWScheduleFree(P()).set_hyper('k', 3)
    with pytest.raises(TypeError, match=r"keeps \['weight_sum'\] itself"): AdamWScheduleFree(P(), weight_sum=1.)
    with pytest.raises(ValueError, match="does not do torch's amsgrad=True"): AdamWScheduleFree(P(), amsgrad=True)
    with pytest.raises(ValueError, match="Lion has no hyper-parameter 'eps'"): Lion(P(), eps=1e-8)
    with pytest.raises(ValueError, match="no hyper-parameter 'beta1'"): AdamWScheduleFree(P(), beta1=0.9)
    with pytest.raises(ValueError, match='give one'): Lion(P(), mom=0.8, betas=(0.9, 0.99))
    from fastnote.optimizer import hyper_setter
    with pytest.raises(ValueError, match='mom must be > 0'): hyper_setter(AdamWScheduleFree(P()), 'mom')([0.])
    opt = AdamWScheduleFree(P(), warmup_steps=5)
    opt.set_hyper('weight_lr_power', 1.)
    assert opt.param_groups[0]['weight_lr_power'] == 1. and opt.param_groups[0]['warmup_steps'] == 5


def test_schedule_free_pickles_and_deep_copies():
    import copy, pickle
    ps, opt = train(lambda g: AdamWScheduleFree(g, 1e-2), 1e-2, n=5, modes=True)
    for other in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        other.eval(); other.train()
        for p in (q for g in other.param_groups for q in g['params']): p.grad = torch.ones_like(p)
        other.step()
        assert other.param_groups[0]['k'] == 6 and opt.param_groups[0]['k'] == 5


def test_schedule_free_takes_a_tensor_lr():
    "torch lets lr be a one-value tensor; schedulefree computes with it as a number."
    theirs, _ = train(lambda g: schedulefree.AdamWScheduleFree(g, torch.tensor(1e-2)), 1e-2, n=20, modes=True)
    mine, opt = train(lambda g: AdamWScheduleFree(g, torch.tensor(1e-2)), 1e-2, n=20, modes=True)
    assert max_rel_diff(mine, theirs) < 1e-6 and isinstance(opt.param_groups[0]['lr_max'], float)


@pytest.mark.parametrize('every', [4, None])
def test_learner_resumes_schedule_free_bit_for_bit(tmp_path, every):
    "A fit stopped mid-epoch and resumed from its checkpoint, taken mid-epoch (train mode: y) or after an epoch (eval mode: x)."
    from functools import partial
    from torch.utils.data import TensorDataset
    from fastnote import Learner, DataLoaders, Callback, CheckpointCallback

    class StopAt(Callback):
        def after_batch(self):
            if self.learn.training and self.learn.train_iter == 10: raise RuntimeError('stop')

    def make(path):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(72, 6, generator=g); y = x[:, :2].sum(1, keepdim=True)
        dls = DataLoaders.from_dsets(TensorDataset(x[:48], y[:48]), TensorDataset(x[48:], y[48:]), bs=8, seed=3)
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
        learn = Learner(dls, model, torch.nn.MSELoss(), opt_func=partial(AdamWScheduleFree, warmup_steps=5), path=path)
        learn.progress.show_table = False
        return learn

    ckpt = lambda: CheckpointCallback(every_n_batches=every) if every else CheckpointCallback()
    full = make(tmp_path/'a')
    full.fit(3, lr=1e-2)
    stopped = make(tmp_path/'b')
    with pytest.raises(RuntimeError): stopped.fit(3, lr=1e-2, cbs=[ckpt(), StopAt()])
    resumed = make(tmp_path/'b')
    resumed.fit(3, lr=1e-2, cbs=ckpt(), resume_from='checkpoint')
    assert all(torch.equal(a, b) for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()))
    assert full.recorder.values == resumed.recorder.values
    assert [g['k'] for g in resumed.opt.param_groups] == [18] and not resumed.opt.param_groups[0]['train_mode']


def test_lion_pytorchs_decoupled_weight_decay_is_wd_over_lr():
    "What the refusal of decoupled_weight_decay=True says: wd=weight_decay/lr computes the same, under a schedule too."
    lr, wd = 1e-3, 0.5
    sched = lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=100, cycle_momentum=False)
    def run(make):
        ps, opt = make_params(), None
        opt = make(groups(ps, lr)); s = sched(opt)
        for t in range(100): set_grads(ps, t); opt.step(); s.step()
        return ps
    theirs = run(lambda g: lion_pytorch.Lion(g, lr, weight_decay=wd, decoupled_weight_decay=True))
    mine = run(lambda g: Lion(g, lr, wd=wd / lr))
    assert all(torch.equal(a, b) for a, b in zip(mine, theirs))
    with pytest.raises(ValueError, match=r'wd=weight_decay/lr \(that lr\) computes the same'): Lion(P(), lr, decoupled_weight_decay=True)
