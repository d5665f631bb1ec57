"""fastnote's optimizers against torch.optim: the same numbers (bit for bit where the algorithms coincide), the same
behaviour as a `torch.optim.Optimizer` (param groups, state_dict, schedulers, GradScaler), and clear errors."""
import functools, io, math
import pytest, torch
from hypothesis import given, settings, strategies as st
from fastnote import (Optimizer, stepper_name, SGD, RMSProp, Adam, sgd_step, weight_decay, l2_reg, average_grad, momentum_step,
                      average_sqr_grad, rms_prop_step, step_stat, adam_step)

# mixed shapes; with the small block size below, (100, 120) is cut into blocks and the others are grouped into blocks
SHAPES = [(7, 3), (5,), (2, 3, 4), (1,), (100, 120), (16, 3, 3, 3)]


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    "Blocks of 4,096 values, so that small test problems exercise the cutting of tensors into blocks."
    monkeypatch.setattr(Optimizer, 'block_size', 4096)


def make_params(seed=0, shapes=SHAPES, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def set_grads(ps, t, drop=0.):
    "Deterministic gradients for step `t`, depending on the parameters; a fraction `drop` of them is None."
    g = torch.Generator().manual_seed(10_000 + t)
    for p in ps:
        skip = torch.rand(1, generator=g).item() < drop
        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
        p.grad = None if skip else noise + 0.1 * p.detach()


def groups(ps):
    "Three param groups, the second with its own learning rate."
    return [{'params': ps[:2]}, {'params': ps[2:4], 'lr': 3e-3}, {'params': ps[4:]}]


def train(make_opt, n=100, seed=0, drop=0., grouped=True, **kw):
    "The parameters after `n` steps of `make_opt` (over the three `groups`, or one group if not `grouped`)."
    ps = make_params(seed, **kw)
    opt = make_opt(groups(ps) if grouped else ps)
    for t in range(n):
        set_grads(ps, t, drop)
        opt.step()
    return [p.detach() for p in ps]


def max_rel_diff(a, b):
    return max(((x - y).abs().max() / y.abs().max()).item() for x, y in zip(a, b))


# (fastnote optimizer, torch.optim equivalent): where the algorithms coincide
PAIRS = {
    'sgd':         (lambda g: SGD(g, 1e-2),                                        lambda g, **kw: torch.optim.SGD(g, 1e-2, **kw)),
    'sgd_mom_l2':  (lambda g: SGD(g, 1e-2, mom=0.9, wd=1e-2, decouple_wd=False),   lambda g, **kw: torch.optim.SGD(g, 1e-2, momentum=0.9, weight_decay=1e-2, **kw)),
    'rmsprop_l2':  (lambda g: RMSProp(g, 1e-3, sqr_mom=0.95, wd=1e-2, decouple_wd=False),
                    lambda g, **kw: torch.optim.RMSprop(g, 1e-3, alpha=0.95, eps=1e-8, weight_decay=1e-2, **kw)),
    'adam_l2':     (lambda g: Adam(g, 1e-3, wd=1e-2, decouple_wd=False),           lambda g, **kw: torch.optim.Adam(g, 1e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=1e-2, **kw)),
    'adamw':       (lambda g: Adam(g, 1e-3, mom=0.8, sqr_mom=0.999, eps=1e-8, wd=0.1),
                    lambda g, **kw: torch.optim.AdamW(g, 1e-3, betas=(0.8, 0.999), eps=1e-8, weight_decay=0.1, **kw)),
}


@pytest.mark.parametrize('name', PAIRS)
@pytest.mark.parametrize('foreach', [True, False])
def test_matches_torch_over_100_steps(name, foreach):
    "Within 1e-6 (relative) of torch.optim over 100 steps, three groups, mixed shapes; in fact bit for bit."
    mine, theirs = PAIRS[name]
    a, b = train(mine), train(functools.partial(theirs, foreach=foreach))
    assert max_rel_diff(a, b) < 1e-6
    assert all(torch.equal(x, y) for x, y in zip(a, b)), f"{name}: within 1e-6 but not bit for bit"


@pytest.mark.parametrize('name', PAIRS)
def test_matches_torch_when_some_gradients_are_missing(name):
    "Parameters without a gradient are skipped (Adam's step counts then differ per parameter, as in torch)."
    mine, theirs = PAIRS[name]
    a, b = train(mine, n=40, drop=0.3), train(functools.partial(theirs, foreach=True), n=40, drop=0.3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize('name', ['sgd_mom_l2', 'adamw'])
def test_matches_torch_in_float64(name):
    mine, theirs = PAIRS[name]
    a = train(mine, n=30, dtype=torch.float64)
    b = train(functools.partial(theirs, foreach=True), n=30, dtype=torch.float64)
    assert all(x.dtype == torch.float64 and torch.equal(x, y) for x, y in zip(a, b))


COMPOSED = {
    'sgd': (lambda g: SGD(g, 1e-2, mom=0.9, wd=1e-2),
            lambda g: Optimizer(g, [weight_decay, average_grad, momentum_step], lr=1e-2, mom=0.9, wd=1e-2)),
    'rmsprop': (lambda g: RMSProp(g, 1e-3, mom=0.9, wd=1e-2, decouple_wd=False),
                lambda g: Optimizer(g, [l2_reg, average_grad, average_sqr_grad, rms_prop_step], lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-8, wd=1e-2)),
    'adam': (lambda g: Adam(g, 1e-3),
             lambda g: Optimizer(g, [weight_decay, functools.partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step],
                                 lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01)),
}


@pytest.mark.parametrize('name', COMPOSED)
def test_each_optimizer_is_exactly_its_composition(name):
    cls, composed = COMPOSED[name]
    assert all(torch.equal(x, y) for x, y in zip(train(cls, n=30), train(composed, n=30)))


@pytest.mark.parametrize('block_size', [None, 1000, 2**18])
def test_blocks_do_not_change_the_result(monkeypatch, block_size):
    "Cutting groups into cache-sized blocks is invisible: any block size gives the same bits as none."
    shapes = [(600, 500), (3, 5), (1000,)]                       # 300K values: more than the default 2**18
    ref = train(PAIRS['adamw'][0], n=5, grouped=False, shapes=shapes)
    monkeypatch.setattr(Optimizer, 'block_size', block_size)
    assert all(torch.equal(x, y) for x, y in zip(ref, train(PAIRS['adamw'][0], n=5, grouped=False, shapes=shapes)))


@pytest.mark.parametrize('name', PAIRS)
def test_state_dict_resume_is_bit_identical(name):
    "Save mid-run with torch.save, load into a new optimizer over new tensors, and continue: the same bits."
    make = PAIRS[name][0]
    ref = train(make, n=60)
    ps = make_params()
    opt = make(groups(ps))
    for t in range(25): set_grads(ps, t); opt.step()
    buf = io.BytesIO()
    torch.save({'params': [p.detach() for p in ps], 'opt': opt.state_dict()}, buf)
    del opt, ps
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)                # plain tensors and numbers: no code runs on load
    ps = [p.clone().requires_grad_() for p in saved['params']]
    opt = make(groups(ps))
    opt.load_state_dict(saved['opt'])
    for t in range(25, 60): set_grads(ps, t); opt.step()
    assert all(torch.equal(x, y) for x, y in zip(ps, ref))


def test_state_dict_has_torch_format():
    ps = make_params()
    opt = Adam(groups(ps), 1e-3)
    set_grads(ps, 0); opt.step()
    sd = opt.state_dict()
    assert set(sd) == {'state', 'param_groups', 'steppers'}            # torch's format, and the steppers' names
    assert [g['params'] for g in sd['param_groups']] == [[0, 1], [2, 3], [4, 5]]
    assert sd['param_groups'][1]['lr'] == 3e-3 and sd['param_groups'][0]['lr'] == 1e-3
    assert set(sd['state'][4]) == {'grad_avg', 'sqr_avg', 'step'} and sd['state'][4]['step'] == 1
    assert sd['state'][4]['grad_avg'].shape == SHAPES[4]


def test_torch_lr_scheduler_drives_the_lr():
    "A torch scheduler changes fastnote's lr exactly as it changes torch's, and the steps follow it."
    runs = []
    for make in (lambda g: SGD(g, 0.1, mom=0.9), lambda g: torch.optim.SGD(g, 0.1, momentum=0.9)):
        ps = make_params(shapes=[(10,)])
        opt = make(ps)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=20, cycle_momentum=False)
        lrs = []
        for t in range(20):
            set_grads(ps, t); opt.step(); sched.step(); lrs.append(opt.param_groups[0]['lr'])
        runs.append((lrs, ps[0].detach()))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])


def test_grad_scaler_unscales_and_skips_inf_steps():
    "torch.amp.GradScaler: the same step as without scaling, and no step when a gradient is infinite."
    x = torch.randn(32, 4, generator=torch.Generator().manual_seed(0))
    def run(use_scaler, inf_at=None):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        opt = Adam(model.parameters(), 1e-2)
        scaler = torch.amp.GradScaler('cpu', init_scale=2.**10, enabled=use_scaler)
        for t in range(5):
            loss = model(x).pow(2).mean()
            scaler.scale(loss).backward()
            if t == inf_at: model.bias.grad.fill_(float('inf'))
            scaler.step(opt); scaler.update(); opt.zero_grad()
        return [p.detach().clone() for p in model.parameters()], opt
    plain, _ = run(False)
    scaled, _ = run(True)
    assert all(torch.equal(a, b) for a, b in zip(plain, scaled))
    skipped, opt = run(True, inf_at=2)
    assert all(s['step'] == 4 for s in opt.state.values())           # the step with inf gradients was skipped
    assert all(torch.isfinite(p).all() for p in skipped)


def test_zero_grad_and_closure():
    "As in torch: `step(closure)` runs the closure with gradients enabled and returns its loss; zero_grad clears."
    w = torch.ones(3, requires_grad=True)
    opt = SGD([w], 0.1)
    def closure():
        opt.zero_grad()
        loss = w.pow(2).sum()
        loss.backward()
        return loss
    loss = opt.step(closure)
    assert loss.item() == 3. and torch.equal(w.grad, torch.full((3,), 2.))
    assert torch.allclose(w, torch.full((3,), 0.8))
    opt.zero_grad()
    assert w.grad is None


def test_parameters_without_gradients_get_no_state_and_do_not_move():
    a, b = make_params(shapes=[(3,), (2,)])
    opt = Adam([a, b], 1e-2)
    before = b.detach().clone()
    a.grad = torch.ones(3)
    opt.step()
    assert b not in opt.state and torch.equal(b, before)
    assert opt.state[a]['step'] == 1


def test_set_hyper_discriminative_lr_matches_torch_groups():
    "Per-group learning rates set with set_hyper give the same result as torch with those groups."
    lrs = [1e-3, 2e-3, 5e-3]
    a = train(lambda g: _with_lrs(Adam(g, 1e-3), lrs), n=10)
    b = train(lambda g: torch.optim.AdamW([{**gr, 'lr': lr} for gr, lr in zip(g, lrs)], 1e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, foreach=True), n=10)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


def _with_lrs(opt, lrs):
    opt.set_hyper('lr', lrs)
    return opt


BAD_HYPERS = [(SGD, dict(lr=-0.1), 'lr'), (SGD, dict(lr=0.1, mom=1.0), 'mom'), (SGD, dict(lr=0.1, wd=-1e-4), 'wd'),
              (RMSProp, dict(lr=0.1, sqr_mom=1.5), 'sqr_mom'), (RMSProp, dict(lr=0.1, eps=-1e-8), 'eps'),
              (Adam, dict(lr=1e-3, mom=-0.1), 'mom'), (Adam, dict(lr=1e-3, sqr_mom=1.0), 'sqr_mom'),
              (Adam, dict(lr=float('nan')), 'lr'), (SGD, dict(lr=float('inf')), 'lr')]


@pytest.mark.parametrize('make,kw,name', BAD_HYPERS)
def test_bad_hyper_parameters_are_refused_by_name(make, kw, name):
    with pytest.raises(ValueError) as e: make(make_params(shapes=[(2,)]), **kw)
    assert name in str(e.value) and repr(kw[name]) in str(e.value)


def test_set_hyper_errors_name_the_problem():
    opt = Adam(groups(make_params()), 1e-3)
    with pytest.raises(ValueError, match="unknown hyper-parameter 'beta1'"): opt.set_hyper('beta1', 0.9)
    with pytest.raises(ValueError, match=r"betas must be a pair \(mom, sqr_mom\), got 0.9"): opt.set_hyper('betas', 0.9)
    with pytest.raises(ValueError, match=r"lr: got 2 values \[0.1, 0.2\] for 3 param groups"): opt.set_hyper('lr', [0.1, 0.2])
    with pytest.raises(ValueError, match=r"mom must be in \[0, 1\), got 1.2"): opt.set_hyper('mom', [0.9, 1.2, 0.9])
    with pytest.raises(TypeError, match="lr must be a real number, got '1e-3'"): opt.set_hyper('lr', '1e-3')
    assert [g['lr'] for g in opt.param_groups] == [1e-3, 3e-3, 1e-3]   # nothing changed by the refused calls


def test_unsupported_parameters_get_clear_errors():
    with pytest.raises(TypeError, match='complex64'): Adam([torch.zeros(2, dtype=torch.complex64, requires_grad=True)], 1e-3)
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match='sparse'): Adam(emb.parameters(), 1e-3).step()
    with pytest.raises(ValueError, match='empty'): Optimizer(make_params(shapes=[(2,)]), [], lr=0.1)


SHAPE_LISTS = st.lists(st.lists(st.integers(1, 9), min_size=0, max_size=3).map(tuple), min_size=1, max_size=5)   # 1 to 5 tensors of 0 to 3 dims


@settings(max_examples=25, deadline=None)
@given(lr=st.floats(1e-5, 0.1), mom=st.floats(0., 0.99), sqr_mom=st.floats(0.5, 0.9999), eps=st.floats(1e-10, 1e-3),
       wd=st.floats(0., 0.5), decouple=st.booleans(),
       shapes=SHAPE_LISTS)
def test_adam_matches_torch_for_any_hypers_and_shapes(lr, mom, sqr_mom, eps, wd, decouple, shapes):
    theirs = torch.optim.AdamW if decouple else torch.optim.Adam
    a = train(lambda ps: Adam(ps, lr, mom, sqr_mom, eps, wd, decouple), n=5, seed=1, grouped=False, shapes=shapes)
    b = train(lambda ps: theirs(ps, lr, betas=(mom, sqr_mom), eps=eps, weight_decay=wd, foreach=True), n=5, seed=1, grouped=False, shapes=shapes)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@settings(max_examples=25, deadline=None)
@given(lr=st.floats(1e-5, 0.1), mom=st.floats(0., 0.99), wd=st.floats(0., 0.5),
       shapes=SHAPE_LISTS)
def test_sgd_matches_torch_for_any_hypers_and_shapes(lr, mom, wd, shapes):
    a = train(lambda ps: SGD(ps, lr, mom, wd, decouple_wd=False), n=5, seed=1, grouped=False, shapes=shapes)
    b = train(lambda ps: torch.optim.SGD(ps, lr, momentum=mom, weight_decay=wd, foreach=True), n=5, seed=1, grouped=False, shapes=shapes)
    assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize('name', PAIRS)
def test_a_copy_continues_like_the_original(name):
    "`copy.deepcopy` and `pickle` keep the steppers (torch's __getstate__ alone would drop them) and the state."
    import copy, pickle
    ps = make_params()
    opt = PAIRS[name][0](groups(ps))
    for t in range(5): set_grads(ps, t); opt.step()
    for twin in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        twin_ps = [p for g in twin.param_groups for p in g['params']]
        assert [stepper_name(cb) for cb in twin.cbs] == [stepper_name(cb) for cb in opt.cbs] and all(torch.equal(a, b) for a, b in zip(twin_ps, ps))
        for t in range(5, 10): set_grads(twin_ps, t); twin.step()
        ref = train(PAIRS[name][0], n=10)
        assert all(torch.equal(a, b) for a, b in zip(twin_ps, ref))


def test_a_stepper_missing_an_argument_is_refused_at_construction():
    with pytest.raises(ValueError, match="sgd_step needs 'lr'"): Optimizer(make_params(shapes=[(2,)]), [sgd_step])
    with pytest.raises(ValueError, match="adam_step needs 'step'"):       # no step_stat to count the steps
        Optimizer(make_params(shapes=[(2,)]), [functools.partial(average_grad, dampening=True), average_sqr_grad, adam_step], lr=1e-3)


def test_a_stepper_that_replaces_tensor_state_works_whatever_the_size():
    "State tensors are cut into views for blocks; a stepper that returns new tensors still gets them stored, pieces in place."
    def replace_avg(g, avg, **_): return {'avg': [a * 0.5 + x for a, x in zip(avg, g)]}   # new tensors, not in place
    replace_avg.init_state = dict(avg=torch.zeros_like)
    for shape in [(10,), (10_000,)]:                              # whole, and cut into three blocks of 4,096
        ps = make_params(shapes=[shape]); set_grads(ps, 0)
        opt = Optimizer(ps, [replace_avg, sgd_step], lr=0.1)
        opt.step(); opt.step()
        assert torch.equal(opt.state[ps[0]]['avg'], ps[0].grad * 1.5), shape