"""Compiled steps (`compile=True`, and `torch.compile(opt.step)`): every optimizer class equals its eager steps within
1e-6 relative over 100 steps while a schedule changes `lr` and `mom` at every step; one graph per param group, never a
recompile as steps advance; state dicts load across compiled and eager; new groups, shapes and dtypes recompile once
and say so; a missing compiler falls back to eager with one warning; the Learner trains and resumes exactly with it.
Speed is `bench/compiled.py`'s business, never a test's."""
import copy, logging, pickle, warnings
from functools import partial
from unittest import mock
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from torch._dynamo.utils import counters

import fastnote as fn
from fastnote import (Optimizer, Adam, SGD, RMSProp, weight_decay, average_grad, sign_step, per_param, Learner,
                      DataLoaders, CheckpointCallback, Callback)
from problems import make_params, set_grads, max_rel_diff, one_cycle_fit

SHAPES = [(24, 16), (16,), (6, 3, 3, 3), (1,), (40,), (8, 8)]
SCALES = [1., 0.1, 3., 0.5, 1., 2.]

CLASSES = {
    'SGD': lambda ps, **kw: SGD(ps, 1e-2, mom=0.9, wd=1e-2, **kw),
    'SGD L2': lambda ps, **kw: SGD(ps, 1e-2, mom=0.9, wd=1e-2, decouple_wd=False, **kw),
    'RMSProp': lambda ps, **kw: RMSProp(ps, 1e-3, mom=0.5, **kw),
    'Adam': lambda ps, **kw: Adam(ps, 1e-2, **kw),
    'Adam L2': lambda ps, **kw: Adam(ps, 1e-2, wd=0.1, decouple_wd=False, **kw),
    'RAdam': lambda ps, **kw: fn.RAdam(ps, 1e-2, **kw),
    'Larc': lambda ps, **kw: fn.Larc(ps, 1e-2, **kw),
    'Lamb': lambda ps, **kw: fn.Lamb(ps, 1e-2, **kw),
    'NAdam': lambda ps, **kw: fn.NAdam(ps, **kw),
    'QHAdam': lambda ps, **kw: fn.QHAdam(ps, 1e-2, **kw),
    'Lion': lambda ps, **kw: fn.Lion(ps, **kw),
    'AdamWScheduleFree': lambda ps, **kw: fn.AdamWScheduleFree(ps, warmup_steps=5, **kw),
    'Adafactor': lambda ps, **kw: fn.Adafactor(ps, **kw),
    'Muon': lambda ps, **kw: fn.Muon([{'params': [p for p in ps if p.dim() == 2]},
                                      {'params': [p for p in ps if p.dim() != 2], 'muon': False}], **kw),
    'ranger': lambda ps, **kw: fn.ranger(ps, 1e-2, **kw),
    'signum': lambda ps, **kw: Optimizer(ps, [weight_decay, partial(average_grad, dampening=True), sign_step],
                                         lr=1e-3, mom=0.9, wd=1e-2, **kw),
}
# Muon's Newton-Schulz iterations run in bfloat16: the compiled matrix products round at other points
TOLERANCE = {'Muon': 1e-4}


def schedule(opt, i):
    "What a schedule does every batch: a new lr (and mom, where there is one) in every group."
    inner = getattr(opt, 'opt', opt)
    for pg in inner.param_groups:
        pg['lr'] = pg['lr'] * (1.01 if i % 2 else 1 / 1.01)
        if 'mom' in pg and isinstance(pg['mom'], float) and 0 < pg['mom'] < 0.99 and not isinstance(inner, fn.AdamWScheduleFree):
            pg['mom'] = pg['mom'] * (1.001 if i % 2 else 1 / 1.001)


def run(name, compile, n=100, none=(3,)):
    ps = make_params(SHAPES)
    opt = CLASSES[name](ps, compile=compile)
    if hasattr(opt, 'train'): opt.train()
    for i in range(n):
        set_grads(ps, i, SCALES, none=none)          # a frozen parameter: the set with gradients stays the same
        schedule(opt, i)
        opt.step()
    if hasattr(opt, 'eval'): opt.eval()
    return ps, opt


@pytest.mark.parametrize('name', CLASSES)
def test_compiled_steps_equal_eager_steps_with_no_recompile(name):
    counters.clear()
    with warnings.catch_warnings():
        warnings.simplefilter('error', UserWarning)       # a fallback to eager would warn
        warnings.filterwarnings('ignore', message='.*jit.script_method.*')
        compiled, opt = run(name, True)
    eager, _ = run(name, False)
    assert max_rel_diff(compiled, eager) <= TOLERANCE.get(name, 1e-6)
    inner = getattr(opt, 'opt', opt)
    chains = {(i, tuple(inner.steppers_for(g))) for i, g in enumerate(inner.param_groups)}
    assert counters['stats']['unique_graphs'] == len(chains)     # one graph per group, made at its first step, never again


def test_a_new_set_of_gradients_at_every_step_stops_compiling_with_one_warning():
    ps, twins = make_params(SHAPES), make_params(SHAPES)
    opt, eager = Adam(ps, 1e-2, compile=True), Adam(twins, 1e-2)
    counters.clear()
    with pytest.warns(UserWarning, match='has met 9 different sets of parameters with gradients') as record:
        for i in range(40):
            set_grads(ps, i, SCALES, drop=0.4); set_grads(twins, i, SCALES, drop=0.4); opt.step(); eager.step()
    assert len([w for w in record if 'different sets' in str(w.message)]) == 1
    assert counters['stats']['unique_graphs'] == opt.max_graphs
    assert max_rel_diff(ps, twins) <= 1e-6


def test_torch_compile_of_an_eager_step_never_recompiles():
    ps, ref = make_params(SHAPES), make_params(SHAPES)
    opt, eager = Adam(ps, 1e-2), Adam(ref, 1e-2)
    step = torch.compile(opt.step)
    counters.clear()
    for i in range(12):
        set_grads(ps, i, SCALES); set_grads(ref, i, SCALES)
        for o in (opt, eager): schedule(o, i)
        step(); eager.step()
        if i == 2: graphs = counters['stats']['unique_graphs']
    assert counters['stats']['unique_graphs'] == graphs > 0       # nothing compiled after the first steps
    assert max_rel_diff(ps, ref) <= 1e-6
    assert isinstance(opt.state[ps[0]]['step'], torch.Tensor)    # counts are tensors there, as in torch


@pytest.mark.parametrize('first', [True, False])
def test_state_dicts_load_across_compiled_and_eager(first):
    a = make_params(SHAPES)
    opt = Adam(a, 1e-2, compile=first)
    for i in range(10): set_grads(a, i, SCALES, none=(i % 2,)); opt.step()
    b = [p.detach().clone().requires_grad_() for p in a]
    other = Adam(b, 1e-2, compile=not first)
    other.load_state_dict(copy.deepcopy(opt.state_dict()))
    for i in range(10, 30):
        set_grads(a, i, SCALES, none=(i % 2,)); set_grads(b, i, SCALES, none=(i % 2,))
        opt.step(); other.step()
    assert isinstance(other.state[b[0]]['step'], torch.Tensor if not first else int)   # each path keeps counts its way
    assert max_rel_diff(b, a) <= 1e-6
    assert [float(opt.state[p]['step']) for p in a] == [float(other.state[p]['step']) for p in b]


def test_new_groups_shapes_and_dtypes_compile_once_and_say_so(caplog):
    ps, twins = make_params(SHAPES[:2]), make_params(SHAPES[:2])
    opt, eager = Adam(ps, 1e-2, compile=True), Adam(twins, 1e-2)
    def steps(n, start):
        for i in range(start, start + n):
            set_grads(ps, i, SCALES); set_grads(twins, i, SCALES); opt.step(); eager.step()
    steps(3, 0)
    counters.clear()
    extra, extra_twin = make_params([(5, 5)], seed=3), make_params([(5, 5)], seed=3)
    opt.add_param_group({'params': extra, 'lr': 1e-3}); eager.add_param_group({'params': extra_twin, 'lr': 1e-3})
    ps += extra; twins += extra_twin
    steps(5, 3)
    assert counters['stats']['unique_graphs'] == 1               # the new group's graph, once
    assert max_rel_diff(ps, twins) <= 1e-6
    counters.clear()
    with caplog.at_level(logging.DEBUG, logger='fastnote.optimizer'):
        for opt_, ts in ((opt, ps), (eager, twins)):             # the last parameter becomes float64 of another shape
            ts[-1].data = torch.zeros(7, 3, dtype=torch.float64); opt_.state.pop(ts[-1], None)
        steps(5, 8)
    assert counters['stats']['unique_graphs'] == 1
    assert [r for r in caplog.records if 'param group 1 changed shapes or dtypes' in r.getMessage()]
    assert len([r for r in caplog.records if 'compiling its chain again' in r.getMessage()]) == 1
    assert max_rel_diff(ps, twins) <= 1e-6


def test_without_a_compiler_it_warns_once_and_steps_eagerly():
    ps, twins = make_params(SHAPES), make_params(SHAPES)
    with mock.patch('torch.compile', side_effect=RuntimeError('Dynamo is not supported on this Python')):
        opt = Adam(ps, 1e-2, compile=True)
        eager = Adam(twins, 1e-2)
        with pytest.warns(UserWarning, match=r"Adam\(compile=True\) could not compile.*eager steps.*Dynamo is not supported") as record:
            for i in range(5): set_grads(ps, i, SCALES); set_grads(twins, i, SCALES); opt.step(); eager.step()
    assert len([w for w in record if 'could not compile' in str(w.message)]) == 1
    assert max_rel_diff(ps, twins) == 0                             # eager from the first step: the same steps
    assert type(opt.state[ps[0]]['step']) is int


def test_a_stepper_the_compiler_cannot_trace_falls_back_with_its_name():
    def item_step(p, g, lr, **_):                       # Python numbers from a tensor at every step, which dynamo cannot trace
        for x, y in zip(p, g): x.sub_(lr * max(y.abs().flatten().tolist()) * y)
    ps, twins = make_params(SHAPES[:2]), make_params(SHAPES[:2])
    opt, eager = Optimizer(ps, [item_step], lr=1e-2, compile=True), Optimizer(twins, [item_step], lr=1e-2)
    with pytest.warns(UserWarning, match=r"could not compile its steppers \['item_step'\]"):
        for i in range(3): set_grads(ps, i, SCALES); set_grads(twins, i, SCALES); opt.step(); eager.step()
    assert max_rel_diff(ps, twins) <= 1e-6


def test_compile_is_checked_and_refused_for_per_param_steppers():
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(TypeError, match="compile must be True or False, got 'yes'"): Adam([w], 1e-2, compile='yes')
    def book_step(p, lr, **_): p.data.add_(p.grad, alpha=-lr)
    with pytest.raises(ValueError, match='compile=True needs list steppers'): Optimizer([w], [per_param(book_step)], lr=0.1, compile=True)


def test_a_compiled_optimizer_copies_and_pickles_with_its_setting():
    ps = make_params(SHAPES[:2])
    opt = Adam(ps, 1e-2, compile=True)
    set_grads(ps, 0, SCALES); opt.step()
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert twin.compile is True and twin.state_dict()['state'][0]['step'] == 1


def test_the_learner_trains_with_a_compiled_optimizer_like_the_eager_one():
    compiled, before = one_cycle_fit(partial(Adam, compile=True))
    eager, _ = one_cycle_fit(Adam)
    assert max_rel_diff(list(compiled.model.parameters()), list(eager.model.parameters())) <= 1e-5
    assert compiled.recorder.values[-1][0] == pytest.approx(eager.recorder.values[-1][0], rel=1e-5)


class StopAt(Callback):
    def __init__(self, n): self.n = n
    def after_batch(self):
        if self.learn.training and self.learn.train_iter == self.n: raise RuntimeError('stop')


def make_learner(path, seed=0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g); y = (x[:, 0] > 0).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    dls = DataLoaders.from_dsets(TensorDataset(x[:96], y[:96]), TensorDataset(x[96:], y[96:]), bs=16, seed=3)
    learn = Learner(dls, model, F.cross_entropy, path=path, opt_func=partial(Adam, compile=True))
    learn.progress.show_table = False
    return learn


def test_a_compiled_fit_one_cycle_resumes_bit_identical(tmp_path):
    full = make_learner(tmp_path/'a')
    full.fit_one_cycle(3, lr_max=1e-2)
    stopped = make_learner(tmp_path/'b')
    with pytest.raises(RuntimeError): stopped.fit_one_cycle(3, lr_max=1e-2, cbs=[CheckpointCallback(every_n_batches=4), StopAt(10)])
    resumed = make_learner(tmp_path/'b', seed=5)
    resumed.fit_one_cycle(3, lr_max=1e-2, cbs=CheckpointCallback(every_n_batches=4), resume_from='checkpoint')
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()): assert torch.equal(a, b)
    assert full.recorder.losses == resumed.recorder.losses
