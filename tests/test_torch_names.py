"""fastnote's optimizers driven by torch's names, as torch users, their schedulers and the libraries written for torch
drive them: each of the silent cases of issue 15, what it does now, against torch.optim bit for bit where the
algorithms coincide."""
import copy, io, pickle
from functools import partial
import pytest, torch
from fastnote import Optimizer, SGD, RMSProp, Adam, sgd_step, opt_hypers

SHAPES = [(7, 3), (5,), (2, 3, 4), (300, 1000)]      # the last is cut into blocks on the CPU


def params(seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_() for s in SHAPES]


def set_grads(ps, t):
    g = torch.Generator().manual_seed(100 + t)
    for p in ps: p.grad = torch.randn(p.shape, generator=g) + 0.1 * p.detach()


def same(a, b): return all(torch.equal(x, y) for x, y in zip(a, b))


def run(opt_a, ps_a, opt_b, ps_b, n=20, between=None):
    for t in range(n):
        set_grads(ps_a, t); set_grads(ps_b, t)
        opt_a.step(); opt_b.step()
        if between: between(t)


def no_decay_groups(ps):
    "The usual recipe: weight decay on the matrices, none on biases and norms (written with torch's name)."
    return [{'params': [p for p in ps if p.ndim > 1]}, {'params': [p for p in ps if p.ndim <= 1], 'weight_decay': 0.0}]


# ---- torch's names mean what they mean in torch ----
def test_weight_decay_0_in_a_group_means_no_decay_as_in_torch():
    mine, ref = params(), params()
    opt = Adam(no_decay_groups(mine), 1e-3, sqr_mom=0.999, eps=1e-8, wd=0.1)
    ref_opt = torch.optim.AdamW(no_decay_groups(ref), 1e-3, weight_decay=0.1)
    assert opt.param_groups[1]['wd'] == 0. and opt.param_groups[1]['weight_decay'] == 0.
    run(opt, mine, ref_opt, ref)
    assert same(mine, ref)


def test_hugging_face_style_constructor_with_torch_names():
    "What the Hugging Face Trainer passes: grouped params with `weight_decay`, and torch's keyword names."
    mine, ref = params(), params()
    groups = lambda ps: [{'params': ps[:2], 'weight_decay': 0.1}, {'params': ps[2:], 'weight_decay': 0.0}]
    opt = Adam(groups(mine), lr=1e-3, betas=(0.8, 0.999), eps=1e-8)
    ref_opt = torch.optim.AdamW(groups(ref), lr=1e-3, betas=(0.8, 0.999), eps=1e-8)
    run(opt, mine, ref_opt, ref)
    assert same(mine, ref)
    assert Optimizer(params(), [partial(sgd_step)], lr=0.1).hyper_names == {'lr'}


def test_weight_decay_on_an_optimizer_without_decay_is_refused():
    with pytest.raises(ValueError, match=r"Optimizer has no hyper-parameter 'wd' \(torch's 'weight_decay'\): its steppers use \['lr'\]"):
        Optimizer(params(), [sgd_step], lr=0.1, weight_decay=0.1)
    with pytest.raises(ValueError, match=r"no hyper-parameter 'mom'"): Optimizer(params(), [sgd_step], lr=0.1, mom=0.9)
    with pytest.raises(ValueError, match=r"no hyper-parameter 'eps'"): SGD(params(), 0.1, eps=1e-8)
    with pytest.raises(ValueError, match=r"SGD has no hyper-parameter 'sqr_mom'"): SGD(params(), 0.1, betas=(0.9, 0.99))


def test_torch_switches_are_understood_or_refused():
    Adam(params(), 1e-3, amsgrad=False, foreach=True, maximize=False)        # what fastnote does: fine
    for k, v in [('amsgrad', True), ('nesterov', True), ('fused', True), ('maximize', True)]:
        with pytest.raises(ValueError, match=rf"does not do torch's {k}={v}"): Adam(params(), 1e-3, **{k: v})
    with pytest.raises(ValueError, match=r"dampening=0.1 is torch's"): SGD(params(), 0.1, mom=0.9, dampening=0.1)
    with pytest.raises(ValueError, match=r"got mom=0.8 and torch's betas=\(0.9, 0.99\)"): Adam(params(), 1e-3, mom=0.8, betas=(0.9, 0.99))


def test_editing_betas_in_param_groups_drives_mom_and_sqr_mom():
    mine, ref = params(), params()
    opt = Adam(mine, 1e-3, sqr_mom=0.999, eps=1e-8, wd=0.)
    ref_opt = torch.optim.Adam(ref, 1e-3)
    def edit(t):
        if t == 9:
            for o in (opt, ref_opt): o.param_groups[0]['betas'] = (0.7, 0.99)
    run(opt, mine, ref_opt, ref, between=edit)
    assert opt.param_groups[0]['mom'] == 0.7 and opt.param_groups[0]['sqr_mom'] == 0.99
    assert same(mine, ref)
    assert set(opt.param_groups[0]) == {'params', 'lr', 'mom', 'sqr_mom', 'eps', 'wd'}    # one value each
    with pytest.raises(ValueError, match=r"no hyper-parameter 'momentun'"): opt.param_groups[0]['momentun'] = 0.9


@pytest.mark.parametrize('make_sched', [
    lambda o: torch.optim.lr_scheduler.OneCycleLR(o, max_lr=1e-2, total_steps=20),
    lambda o: torch.optim.lr_scheduler.CyclicLR(o, base_lr=1e-3, max_lr=1e-2, step_size_up=5)],
    ids=['OneCycleLR', 'CyclicLR'])
@pytest.mark.parametrize('pair', [
    (lambda ps: Adam(ps, 1e-3, sqr_mom=0.999, eps=1e-8, wd=0.01), lambda ps: torch.optim.AdamW(ps, 1e-3, weight_decay=0.01)),
    (lambda ps: SGD(ps, 1e-3, mom=0.9, decouple_wd=False), lambda ps: torch.optim.SGD(ps, 1e-3, momentum=0.9))],
    ids=['Adam', 'SGD'])
def test_torch_schedulers_cycle_fastnote_momentum(make_sched, pair):
    "OneCycleLR and CyclicLR with their default cycle_momentum=True, on fastnote and on torch: the same weights, bit for bit."
    mine, ref = params(), params()
    opt, ref_opt = pair[0](mine), pair[1](ref)
    sched, ref_sched = make_sched(opt), make_sched(ref_opt)
    moms = []
    def both(t):
        sched.step(); ref_sched.step(); moms.append(opt.param_groups[0]['mom'])
    run(opt, mine, ref_opt, ref, n=19, between=both)
    assert len(set(moms)) > 3                                      # momentum moved
    assert same(mine, ref)


def test_momentum_schedule_on_sgd_without_momentum_is_not_a_no_op():
    mine, ref = params(), params()
    opt, ref_opt = SGD(mine, 1e-2), torch.optim.SGD(ref, 1e-2, momentum=0.9)
    ref_opt.param_groups[0]['momentum'] = 0.
    def turn_on(t):
        if t == 4: opt.set_hyper('mom', 0.9); ref_opt.param_groups[0]['momentum'] = 0.9
    run(opt, mine, ref_opt, ref, between=turn_on)
    assert same(mine, ref)


def test_a_group_with_its_own_momentum_uses_it_as_torch_does():
    mine, ref = params(), params()
    grouped = lambda ps, name: [{'params': ps[:2]}, {'params': ps[2:], name: 0.9}]
    opt, ref_opt = SGD(grouped(mine, 'mom'), 0.1), torch.optim.SGD(grouped(ref, 'momentum'), 0.1)
    run(opt, mine, ref_opt, ref)
    assert same(mine, ref)
    assert not opt.state.get(mine[0]) and 'grad_avg' in opt.state[mine[2]]   # a buffer only where momentum is on
    t_opt = SGD(grouped(params(), 'momentum'), 0.1)                           # torch's name in a group works too
    assert t_opt.param_groups[1]['mom'] == 0.9


def test_rmsprop_momentum_per_group():
    ps = params()
    opt = RMSProp([{'params': ps[:2]}, {'params': ps[2:], 'mom': 0.9}], 1e-3)
    set_grads(ps, 0); opt.step()
    assert 'grad_avg' not in opt.state[ps[0]] and 'grad_avg' in opt.state[ps[2]]


# ---- classes ----
@pytest.mark.parametrize('cls', [SGD, RMSProp, Adam])
def test_optimizers_are_classes_that_hf_style_code_can_build(cls):
    opt = cls(params(), **{'lr': 1e-3})                 # optimizer_cls(params, **optimizer_kwargs)
    assert isinstance(opt, cls) and isinstance(opt, Optimizer) and isinstance(opt, torch.optim.Optimizer)
    assert repr(opt).startswith(f'{cls.__name__}([') and type(opt).__name__ == cls.__name__
    assert 'References' in cls.__doc__ and '$$' in cls.__doc__
    twin = pickle.loads(pickle.dumps(opt))
    assert type(twin) is cls and twin.steppers_for(twin.param_groups[0])
    assert copy.deepcopy(opt).param_groups[0]['lr'] == 1e-3


# ---- smaller defects ----
def test_a_tensor_lr_works_as_in_torch_and_may_change_in_place():
    mine, ref = params(), params()
    lr_a, lr_b = torch.tensor(0.01), torch.tensor(0.01)
    opt, ref_opt = SGD(mine, lr_a, mom=0.9, decouple_wd=False), torch.optim.SGD(ref, lr_b, momentum=0.9)
    def lower(t):
        if t == 5: lr_a.fill_(0.002); lr_b.fill_(0.002)
    run(opt, mine, ref_opt, ref, between=lower)
    assert opt.param_groups[0]['lr'] is lr_a
    assert same(mine, ref)
    with pytest.raises(ValueError, match='lr must be >= 0'): SGD(params(), torch.tensor(-1.))


def test_an_extra_state_entry_does_not_break_the_next_step():
    ps = params()
    opt = Adam(ps, 1e-3)
    set_grads(ps, 0); opt.step()
    for p in ps: opt.state[p]['seen_by_a_hook'] = True
    fresh = params()[0].requires_grad_()
    opt.add_param_group({'params': [fresh]}); opt.state[fresh]['seen_by_a_hook'] = True
    set_grads(ps + [fresh], 1); opt.step()
    assert opt.state[fresh]['step'] == 1


def test_a_complex_parameter_is_refused_and_no_group_is_kept():
    opt = SGD(params(), 0.1)
    with pytest.raises(TypeError, match='complex64'):
        opt.add_param_group({'params': [torch.zeros(2, dtype=torch.complex64, requires_grad=True)]})
    assert len(opt.param_groups) == 1


def test_a_stepper_may_return_new_state_whatever_the_size():
    "The book's style of state, new tensors returned, works for a parameter cut into blocks as for a small one."
    def average(g, grad_avg, **_): return {'grad_avg': [0.9 * a + x for a, x in zip(grad_avg, g)]}   # new tensors
    average.init_state = dict(grad_avg=torch.zeros_like)
    def step(p, lr, grad_avg, **_): torch._foreach_add_(p, grad_avg, alpha=-lr)
    mine, ref = params(), params()
    opt = Optimizer(mine, [average, step], lr=1e-2)
    ref_opt = torch.optim.SGD(ref, 1e-2, momentum=0.9)
    run(opt, mine, ref_opt, ref, n=5)
    assert mine[-1].numel() > Optimizer.block_size
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(mine, ref))


def test_plain_sgd_keeps_no_state_as_torch():
    ps = params()
    opt = SGD(ps, 0.1)
    set_grads(ps, 0); opt.step()
    assert opt.state_dict()['state'] == {} == torch.optim.SGD(params(), 0.1).state_dict()['state']


def test_state_dicts_say_what_they_belong_to():
    ps = params()
    adam_l2, adamw = Adam(ps, 1e-3, decouple_wd=False), Adam(ps, 1e-3)
    set_grads(ps, 0); adam_l2.step()
    buf = io.BytesIO(); torch.save(adam_l2.state_dict(), buf); buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    with pytest.raises(ValueError, match=r"made of \['l2_reg'.*Adam is made of \['weight_decay'"): adamw.load_state_dict(saved)
    with pytest.raises(ValueError, match=r"belongs to an optimizer made of"): SGD(ps, 0.1).load_state_dict(saved)
    Adam(ps, 1e-3, decouple_wd=False).load_state_dict(saved)             # its own kind loads
    torch_state = torch.optim.AdamW(ps, 1e-3); torch_state.step()
    with pytest.raises(ValueError, match=r"holds state \['exp_avg', 'exp_avg_sq'\]"): adamw.load_state_dict(torch_state.state_dict())
    torch.optim.Optimizer.load_state_dict(Adam(ps, 1e-3, decouple_wd=False), saved)   # torch's own loader reads it


def test_opt_hypers_leave_out_what_schedulers_keep():
    opt = Adam(params(), 1e-3)
    torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=10)
    assert set(opt_hypers(opt)) == {'lr', 'mom', 'sqr_mom', 'eps', 'wd'}
    assert {'initial_lr', 'max_lr', 'min_lr', 'max_momentum', 'base_momentum'} <= set(opt.param_groups[0])


# ---- fastbook's chapter 16: callbacks that take one parameter at a time, typed as the book prints them ----
def sgd_cb(p, lr, **kwargs): p.data.add_(p.grad.data, alpha=-lr)

def average_grad(p, mom, grad_avg=None, **kwargs):
    if grad_avg is None: grad_avg = torch.zeros_like(p.grad.data)
    return {'grad_avg': grad_avg*mom + p.grad.data}

def momentum_step(p, lr, grad_avg, **kwargs): p.data.add_(grad_avg, alpha=-lr)

def average_sqr_grad(p, sqr_mom, sqr_avg=None, **kwargs):
    if sqr_avg is None: sqr_avg = torch.zeros_like(p.grad.data)
    return {'sqr_avg': sqr_mom*sqr_avg + (1-sqr_mom)*p.grad.data**2}

def rms_prop_step(p, lr, sqr_avg, eps, grad_avg=None, **kwargs):
    denom = sqr_avg.sqrt().add_(eps)
    p.data.addcdiv_(grad_avg, denom, value=-lr)

def weight_decay(p, lr, wd, **kwargs): p.data.mul_(1 - lr*wd)

def l2_reg(p, lr, wd, **kwargs): p.grad.data.add_(p.data, alpha=wd)

# Adam from them, the way fastai writes its own (the book's average_grad with fastai's dampening)
def average_grad_damp(p, mom, dampening=False, grad_avg=None, **kwargs):
    if grad_avg is None: grad_avg = torch.zeros_like(p.grad.data)
    damp = 1-mom if dampening else 1.
    return {'grad_avg': grad_avg*mom + damp*p.grad.data}

def step_stat(p, step=0, **kwargs):
    step += 1
    return {'step' : step}

def debias(mom, damp, step): return damp * (1 - mom**step) / (1-mom)

def adam_step(p, lr, mom, step, sqr_mom, grad_avg, sqr_avg, eps, **kwargs):
    debias1 = debias(mom,     1-mom,     step)
    debias2 = debias(sqr_mom, 1-sqr_mom, step)
    p.data.addcdiv_(grad_avg, (sqr_avg/debias2).sqrt() + eps, value = -lr / debias1)
    return p


def book(*cbs): return [per_param(cb) for cb in cbs]
from fastnote import per_param

@pytest.mark.parametrize('name,book_opt,mine,exact', [
    ('sgd', partial(Optimizer, cbs=book(sgd_cb), lr=0.1), partial(SGD, lr=0.1), True),
    ('momentum', partial(Optimizer, cbs=book(average_grad, momentum_step), lr=0.05, mom=0.9), partial(SGD, lr=0.05, mom=0.9), True),
    ('rmsprop', partial(Optimizer, cbs=book(average_grad, average_sqr_grad, rms_prop_step), lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-7),
     partial(RMSProp, lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-7), False),
    ('weight decay', partial(Optimizer, cbs=book(weight_decay, sgd_cb), lr=0.1, wd=0.01), partial(SGD, lr=0.1, wd=0.01), True),
    ('l2', partial(Optimizer, cbs=book(l2_reg, sgd_cb), lr=0.1, wd=0.01), partial(SGD, lr=0.1, wd=0.01, decouple_wd=False), True),
    ('adam', partial(Optimizer, cbs=book(weight_decay, partial(average_grad_damp, dampening=True), average_sqr_grad, step_stat, adam_step),
                     lr=1e-3, mom=0.9, sqr_mom=0.99, eps=1e-5, wd=0.01), partial(Adam, lr=1e-3), False)])
def test_the_books_callbacks_train_to_the_same_weights(name, book_opt, mine, exact):
    a, b = params(), params()
    run(book_opt(a), a, mine(b), b, n=20)
    if exact: assert same(a, b), name
    else: assert all(torch.allclose(x, y, rtol=1e-5, atol=1e-7) for x, y in zip(a, b)), name


def test_a_book_callback_without_the_marker_says_which_convention_it_expected():
    ps = params(); set_grads(ps, 0)
    with pytest.raises(AttributeError, match="'list' object has no attribute 'data'") as info: Optimizer(ps, cbs=[sgd_cb], lr=0.1).step()
    assert "give it as per_param(sgd_cb)" in info.value.__notes__[0]
    with pytest.raises(TypeError) as info: Optimizer(ps, [per_param(partial(sgd_step))], lr=0.1).step()
    assert "marked per_param" in info.value.__notes__[0]
    with pytest.raises(ValueError, match='one optimizer takes one kind'): Optimizer(ps, [per_param(sgd_cb), sgd_step], lr=0.1)
