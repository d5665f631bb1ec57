"""What a first day with fastai uses, checked against fastai 2.8.12 itself (a fixture it recorded:
tests/data/make_fastai_finetune.py): freezing, `fine_tune`'s per-batch hyper-parameters of every param group and its
final weights, `predict`, callback ordering by `run_before`/`run_after`, fastai 1's callback names, the smoothed loss
and `learn.x`/`learn.y`; then the rest of the API around them: `DataLoaders.from_dsets`, the data's loss, `summary`,
mixed precision switches, and clear errors for bad input.

fastnote differs from fastai on purpose in a few places, which the tests below spell out: frozen parameters get no
gradient, so no decoupled weight decay either; `freeze()` with one param group and an out-of-range `freeze_to` raise
instead of freezing nothing or everything; `run_before`/`run_after` are honoured (fastai 2.8 ignores them)."""
import json, warnings
from pathlib import Path
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastnote import *
from fastnote import MixedPrecision, DeviceCallback, sort_callbacks
from fastnote.optimizer import opt_hypers

FIXTURE = json.loads((Path(__file__).parent/'data'/'fastai_finetune.json').read_text())
META = FIXTURE['meta']
NAMES = META['param_names']     # ['0.0.weight', '0.0.bias', '0.1.weight', '0.1.bias', '1.weight', '1.bias']
# what fastai's Learner(wd_bn_bias=False) exempts from weight decay: biases and norm-layer parameters (do_wd=False)
NO_WD = [n for n, keys in META['opt_state_after_create_opt']['keys'].items() if 'do_wd' in keys]
ADAM_STATE = {'grad_avg', 'sqr_avg', 'step'}


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest's: tiny models run fastest on one thread


def close(a, b, tol=1e-7) -> bool: return abs(a - b) <= tol * max(1e-12, abs(b))


# ---------------------------------------------------------------- the fixture's setup, in plain torch
def make_data():
    "The fixture's data: 64 training and 32 validation items, 4 features, 3 classes, from DATA_SEED."
    g = torch.Generator().manual_seed(META['seeds']['DATA_SEED'])
    xt, nt = torch.randn(64, 4, generator=g), torch.randn(64, 3, generator=g)
    xv, nv = torch.randn(32, 4, generator=g), torch.randn(32, 3, generator=g)
    return xt, (xt[:, :3] + 0.5 * nt).argmax(1), xv, (xv[:, :3] + 0.5 * nv).argmax(1)

DATA = make_data()


def make_model():
    torch.manual_seed(META['seeds']['MODEL_SEED'])
    return nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU()), nn.Linear(8, 3))


def make_dls(**kw):
    xt, yt, xv, yv = DATA
    bs = META['sizes']['bs']
    return DataLoaders(DataLoader(TensorDataset(xt, yt), batch_size=bs, shuffle=False),
                       DataLoader(TensorDataset(xv, yv), batch_size=bs, shuffle=False), **kw)


def make_learner(*cbs, two_groups=True, fastai_wd=False, **kw):
    "The fixture's Learner: 2 param groups (body, head), cross-entropy, everything else default; on the CPU, quiet."
    cbs = [DeviceCallback('cpu'), *cbs] + ([FastaiWeightDecay()] if fastai_wd else [])
    kw = {'splitter': body_head_splitter, **kw} if two_groups else kw
    learn = Learner(make_dls(), make_model(), nn.CrossEntropyLoss(), cbs=cbs, **kw)
    learn.progress.show_table = learn.progress.show_bars = False
    return learn


class FastaiWeightDecay(Callback):
    """fastai's default `wd_bn_bias=False`, emulated: undo the decoupled weight decay fastnote's Adam applied to biases and
    norm-layer parameters (p1 = p0*(1 - lr*wd) - u, so p1 + p0*lr*wd is the undecayed step). fastnote has no such option
    (see `test_fine_tune_final_weights_match_fastai`); with this, fastnote's training is fastai's to float32 rounding."""
    order = 99
    def before_step(self):
        named = dict(self.learn.model.named_parameters())
        lr_wd = {id(p): g['lr'] * g['wd'] for g in self.learn.opt.param_groups for p in g['params']}
        self.saved = [(p, p.detach().clone(), lr_wd[id(p)]) for p in map(named.get, NO_WD) if p.grad is not None]
    def after_step(self):
        with torch.no_grad():
            for p, p0, s in self.saved: p.add_(p0 * s)


def params_of(learn) -> dict: return {n: p.detach().clone() for n, p in learn.model.named_parameters()}
def buffers_of(learn) -> dict: return {n: b.detach().clone() for n, b in learn.model.named_buffers()}


def fit_diff(learn, lr=1e-2):
    "fit(1, lr) and return, per parameter and buffer, the largest change: what the fixture's freeze cases record."
    ps, bs = params_of(learn), buffers_of(learn)
    learn.fit(1, lr)
    ps2, bs2 = params_of(learn), buffers_of(learn)
    return ({n: float((ps2[n] - ps[n]).abs().max()) for n in ps},
            {n: float((bs2[n].double() - bs[n].double()).abs().max()) for n in bs})


def state_keys(learn) -> dict:
    "Optimizer state per parameter name: the Adam entries it holds."
    names = {p: n for n, p in learn.model.named_parameters()}
    return {names[p]: set(s) for p, s in learn.opt.state.items() if s}


def test_the_fixture_setup_is_rebuilt_exactly():
    xt, yt, xv, yv = DATA
    values = META['data_values']
    assert xt.tolist() == values['x_train'] and xv.tolist() == values['x_valid']
    assert yt.tolist() == values['y_train'] and yv.tolist() == values['y_valid']
    model = make_model()
    assert [n for n, _ in model.named_parameters()] == NAMES
    for n, p in model.named_parameters(): assert p.detach().reshape(-1).tolist() == META['initial_weights'][n], n
    assert NO_WD == ['0.0.bias', '0.1.weight', '0.1.bias', '1.bias']
    # fastnote's Adam defaults are fastai's
    learn = make_learner()
    learn.create_opt()
    for i, e in enumerate(META['default_adam_hypers']): assert opt_hypers(learn.opt, i) == e


# ---------------------------------------------------------------- splitters
def test_body_head_splitter_and_norm_params():
    model = make_model()
    body, head = body_head_splitter(model)
    assert [id(p) for p in body] == [id(p) for p in model[0].parameters()]
    assert [id(p) for p in head] == [id(p) for p in model[1].parameters()]
    three = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert [len(g) for g in body_head_splitter(three)] == [2, 2]            # model[0], then everything after it
    class BodyHead(nn.Module):
        def __init__(self): super().__init__(); self.head, self.body = nn.Linear(3, 1), nn.Linear(2, 3)
    m = BodyHead()
    assert [[p.shape for p in g] for g in body_head_splitter(m)] == [[(3, 2), (3,)], [(1, 3), (1,)]]
    assert [id(p) for p in norm_params(model)] == [id(model[0][1].weight), id(model[0][1].bias)]
    assert nn.BatchNorm2d in norm_types and nn.LayerNorm in norm_types and nn.Linear not in norm_types
    with pytest.raises(TypeError, match=r'body_head_splitter needs a model with .body and .head.*got Linear'):
        body_head_splitter(nn.Linear(2, 2))
    with pytest.raises(TypeError, match='body_head_splitter'): body_head_splitter(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match='the body of Sequential has no parameters'):
        body_head_splitter(nn.Sequential(nn.ReLU(), nn.Linear(2, 2)))


# ---------------------------------------------------------------- freezing, against the fixture's cases
FREEZE = FIXTURE['freeze']

@pytest.mark.parametrize('case, call', [('a_freeze', lambda l: l.freeze()), ('b_freeze_to_1', lambda l: l.freeze_to(1))])
def test_freeze_matches_fastai(case, call):
    e = FREEZE[case]
    learn = make_learner(fastai_wd=True)
    assert learn.opt is None
    assert call(learn) is learn
    assert learn.frozen_idx == e['frozen_idx'] == 1
    assert {n: p.requires_grad for n, p in learn.model.named_parameters()} == e['requires_grad']
    assert {n: p.grad is None for n, p in learn.model.named_parameters()} == e['grad_is_none']
    assert len(learn.opt.state) == 0 and not any(ADAM_STATE & set(k) for k in e['opt_state_after']['keys'].values())
    diff, bdiff = fit_diff(learn)
    assert {n for n, d in diff.items() if d > 0} == set(e['changed'])     # the body's Linear does not move; BN does
    for n in NAMES: assert abs(diff[n] - e['max_abs_diff'][n]) <= 1e-6, (n, diff[n], e['max_abs_diff'][n])
    for n in bdiff: assert abs(bdiff[n] - e['bn_buffers_max_abs_diff'][n]) <= 1e-6, n   # running stats still update
    assert {n: p.requires_grad for n, p in learn.model.named_parameters()} == e['requires_grad_after_fit']
    trained = {n for n, keys in e['opt_state_after_fit']['keys'].items() if 'step' in keys}
    assert state_keys(learn) == {n: ADAM_STATE for n in trained}           # no Adam state for the frozen ones


def test_unfreeze_after_a_frozen_fit_matches_fastai():
    e = FREEZE['c_unfreeze_after_freeze_fit']
    learn = make_learner(fastai_wd=True)
    learn.freeze()
    learn.fit(1, 1e-2)
    assert set(state_keys(learn)) == {n for n, k in e['opt_state_before']['keys'].items() if 'step' in k}
    learn.unfreeze()
    assert learn.frozen_idx == e['frozen_idx'] == 0 and len(learn.opt.state) == 0
    assert {n: p.requires_grad for n, p in learn.model.named_parameters()} == e['requires_grad']
    # fastai's zero_grad zeroes the gradients in place, fastnote's (torch's) sets them to None
    assert all(p.grad is None for p in learn.model.parameters()) and not all(e['grad_is_none'].values())
    diff, bdiff = fit_diff(learn)
    for n in NAMES:
        if n == '0.0.bias': continue   # a bias before BatchNorm: its gradient is rounding noise, so is Adam's step
        assert abs(diff[n] - e['max_abs_diff'][n]) <= 1e-6, (n, diff[n], e['max_abs_diff'][n])
    assert 0 < diff['0.0.bias'] < 1e-3 and 0 < e['max_abs_diff']['0.0.bias'] < 1e-3
    for n in bdiff: assert abs(bdiff[n] - e['bn_buffers_max_abs_diff'][n]) <= 1e-5, n
    assert set(state_keys(learn)) == set(NAMES)


def test_frozen_params_get_no_weight_decay_unlike_fastai():
    e = FREEZE['d_freeze_to_-1']
    learn = make_learner(fastai_wd=True)
    learn.fit(1, 1e-2)
    assert len(learn.opt.state) == len(NAMES)
    learn.freeze_to(-1)
    assert learn.frozen_idx == e['frozen_idx'] == 1 and len(learn.opt.state) == 0
    assert {n: p.requires_grad for n, p in learn.model.named_parameters()} == e['requires_grad']
    diff, _ = fit_diff(learn)
    # fastai still steps its frozen params, whose stale zeroed grads are not None: decoupled weight decay moves
    # '0.0.weight' (do_wd) by lr*wd*|w| per step; fastnote's frozen params have no grad, so they do not move at all
    assert e['max_abs_diff']['0.0.weight'] > 1e-4 and diff['0.0.weight'] == 0 and diff['0.0.bias'] == 0
    for n in ('0.1.weight', '0.1.bias', '1.weight', '1.bias'):
        assert abs(diff[n] - e['max_abs_diff'][n]) <= 1e-6, (n, diff[n], e['max_abs_diff'][n])


def test_freeze_drops_the_grads_of_frozen_params():
    learn = make_learner()
    xb, yb = next(iter(learn.dls.train))
    learn.loss_func(learn.model(xb), yb).backward()
    assert all(p.grad is not None for p in learn.model.parameters())
    learn.freeze()
    assert {n: p.grad is None for n, p in learn.model.named_parameters()} == {n: n.startswith('0.0.') for n in NAMES}


def test_train_bn_false_freezes_the_norm_layers_too():
    learn = make_learner(train_bn=False)
    learn.freeze()
    assert {n: p.requires_grad for n, p in learn.model.named_parameters()} == {n: n.startswith('1.') for n in NAMES}
    diff, _ = fit_diff(learn)
    assert {n for n, d in diff.items() if d > 0} == {'1.weight', '1.bias'}
    learn.unfreeze()
    assert all(p.requires_grad for p in learn.model.parameters()) and learn.frozen_idx == 0


def test_deliberate_differences_out_of_range_and_one_group():
    e5 = FREEZE['d_freeze_to_5']            # fastai warns and freezes every group (norm layers aside)
    assert e5['frozen_idx'] == 5
    assert e5['warnings'] == ['UserWarning: Freezing 5 groups; model has 2; whole model is frozen.']
    learn = make_learner()
    learn.fit(1, 1e-2)
    before = params_of(learn)
    for n in (5, 2, -3):
        with pytest.raises(ValueError, match=rf'freeze_to\({n}\): the optimizer has 2 parameter group'): learn.freeze_to(n)
    assert learn.frozen_idx == 0 and all(p.requires_grad for p in learn.model.parameters())
    assert len(learn.opt.state) == len(NAMES)                          # a refused call changes nothing
    assert learn.freeze_to(-2).frozen_idx == 0                          # len + n = 0, as fastai: nothing frozen
    for n, p in learn.model.named_parameters(): assert torch.equal(p, before[n])

    e = FREEZE['e_one_group_freeze']        # fastai freezes nothing, silently
    assert e['n_param_groups'] == 1 and e['frozen_idx'] == 0 and all(e['requires_grad'].values()) and not e['warnings']
    learn = make_learner(two_groups=False)
    with pytest.raises(ValueError, match=r'freeze\(\) trains only the last parameter group.*one group.*body_head_splitter'):
        learn.freeze()
    assert learn.frozen_idx == 0 and all(p.requires_grad for p in learn.model.parameters())
    with pytest.raises(ValueError, match=r'freeze_to\(1\): the optimizer has 1 parameter group'): learn.freeze_to(1)


@pytest.mark.parametrize('n', ['1', 1.0, True, None])
def test_freeze_to_refuses_a_non_int(n):
    learn = make_learner()
    with pytest.raises(TypeError, match=r'freeze_to: n must be an int, got'): learn.freeze_to(n)
    assert learn.frozen_idx == 0 and all(p.requires_grad for p in learn.model.parameters())


# ---------------------------------------------------------------- fine_tune, batch by batch
class HyperRec(Callback):
    "At every before_step: which fit, epoch, iter, frozen_idx, every param group's hypers (fastnote's names), the loss."
    order = 100
    def __init__(self): self.rows, self.fit_idx, self.n_epochs, self.valid = [], -1, [], []
    def before_fit(self):
        self.fit_idx += 1
        self.n_epochs.append(self.learn.n_epoch)
    def before_step(self):
        l = self.learn
        self.rows.append({'fit_idx': self.fit_idx, 'epoch': l.epoch, 'iter': l.iter, 'frozen_idx': l.frozen_idx,
                          'hypers': [{k: v for k, v in dict(g).items() if k != 'params'} for g in l.opt.param_groups],
                          'loss': float(l.loss.detach())})
    def after_fit(self): self.valid.append([v[1] for v in self.learn.recorder.values])


FINE_TUNE = {'a_defaults': lambda l: l.fine_tune(2),
             'b_custom': lambda l: l.fine_tune(3, base_lr=1e-2, freeze_epochs=2, lr_mult=10, pct_start=0.5, div=10.)}

@pytest.mark.parametrize('case', FINE_TUNE)
def test_fine_tune_hypers_match_fastai(case):
    e = FIXTURE['fine_tune'][case]
    rec = HyperRec()
    learn = make_learner(rec, fastai_wd=True)
    FINE_TUNE[case](learn)
    assert len(rec.rows) == e['n_batches'] and rec.n_epochs == e['n_epoch_per_fit']
    for i, (g, x) in enumerate(zip(rec.rows, e['batches'], strict=True)):
        where = ('fit_idx', 'epoch', 'iter', 'frozen_idx')
        assert [g[k] for k in where] == [x[k] for k in where], i
        assert len(g['hypers']) == len(x['hypers']) == 2
        for j, (gh, xh) in enumerate(zip(g['hypers'], x['hypers'])):
            assert set(gh) == set(xh) == {'lr', 'mom', 'sqr_mom', 'wd', 'eps'}, (i, j)
            for k in xh: assert close(gh[k], xh[k]), f"{case}, batch {i}, group {j}, {k}: {gh[k]!r}, fastai {xh[k]!r}"
        assert abs(g['loss'] - x['loss']) <= 1e-5, (i, g['loss'], x['loss'])
    # the validation loss of every epoch of both fits (fastnote's train_loss is the epoch's mean, fastai's the smoothed one)
    for got, exp in zip(rec.valid, e['recorder_values_per_fit'], strict=True):
        assert [round(v, 5) for v in got] == [round(v[1], 5) for v in exp]
    assert learn.frozen_idx == 0
    assert {n: p.requires_grad for n, p in learn.model.named_parameters()} == e['requires_grad_end']


def test_fine_tune_without_frozen_epochs_runs_fastais_second_fit():
    e = FIXTURE['fine_tune']['a_defaults']
    rec = HyperRec()
    learn = make_learner(rec)
    learn.fine_tune(2, freeze_epochs=0)
    second = [x for x in e['batches'] if x['fit_idx'] == 1]
    assert rec.n_epochs == [2] and len(rec.rows) == len(second) == 8
    for g, x in zip(rec.rows, second):
        for gh, xh in zip(g['hypers'], x['hypers'], strict=True):
            for k in xh: assert close(gh[k], xh[k]), (k, gh[k], xh[k])


def test_fine_tune_passes_wd_and_moms_on_to_both_fits():
    e = FIXTURE['fine_tune']['a_defaults']
    rec = HyperRec()
    learn = make_learner(rec)
    learn.fine_tune(2, wd=0.1, moms=(0.9, 0.8, 0.9))
    assert rec.n_epochs == e['n_epoch_per_fit'] and len(rec.rows) == e['n_batches']
    for i, (g, x) in enumerate(zip(rec.rows, e['batches'], strict=True)):
        for gh, xh in zip(g['hypers'], x['hypers'], strict=True):
            # the fixture's moms are (0.95, 0.85, 0.95): the same cosine, 0.05 lower; the learning rates are unchanged
            assert gh['wd'] == 0.1 and close(gh['lr'], xh['lr']) and abs(gh['mom'] - (xh['mom'] - 0.05)) <= 1e-7, (i, gh, xh)


def _final_weight_gaps(fastai_wd:bool) -> dict:
    e = FIXTURE['fine_tune']['a_defaults']
    learn = make_learner(fastai_wd=fastai_wd)
    learn.fine_tune(2)
    gaps = {n: float((p.detach().reshape(-1) - torch.tensor(e['final_weights'][n])).abs().max())
            for n, p in learn.model.named_parameters()}
    gaps |= {n: float((b.reshape(-1).double() - torch.tensor(e['final_buffers'][n]).double()).abs().max())
             for n, b in learn.model.named_buffers()}
    return gaps


@pytest.mark.xfail(strict=True, reason="fastnote's Learner decays biases and norm-layer parameters (no wd_bn_bias "
                   "option); fastai's default wd_bn_bias=False exempts them: '1.bias' ends 1.5e-5 and '0.1.weight' "
                   "3.8e-6 away from fastai's after fine_tune(2)")
def test_fine_tune_final_weights_match_fastai():
    gaps = _final_weight_gaps(fastai_wd=False)
    assert all(g <= 1e-6 for g in gaps.values()), gaps


def test_fine_tune_final_weights_match_fastai_without_weight_decay_on_biases_and_norms():
    gaps = _final_weight_gaps(fastai_wd=True)
    assert all(g <= 1e-6 for g in gaps.values()), gaps
    assert gaps['0.0.weight'] <= 1e-7 and gaps['1.weight'] <= 1e-7       # the decayed weights: to float32 rounding
    assert gaps['0.1.num_batches_tracked'] == 0


def test_fine_tune_refuses_what_it_sets_itself():
    learn = make_learner()
    for kw in ({'lr_max': 1e-3}, {'n_epoch': 2}, {'resume_from': 'x'}):
        with pytest.raises(TypeError, match=rf"fine_tune sets '{next(iter(kw))}'"): learn.fine_tune(1, **kw)
    with pytest.raises(TypeError, match='epochs must be an integer'): learn.fine_tune(1.5)
    with pytest.raises(TypeError, match='lr must be a'): learn.fine_tune(1, base_lr='1e-3')
    assert learn.opt is None and learn.frozen_idx == 0           # refused before anything was frozen or trained
    with pytest.raises(TypeError, match='bogus'): learn.fine_tune(1, bogus=1)   # fit_one_cycle has no such argument


# ---------------------------------------------------------------- predict
PREDICT = FIXTURE['predict']
LOSSES = {'classification': nn.CrossEntropyLoss(), 'multilabel': nn.BCEWithLogitsLoss(), 'regression': nn.MSELoss()}

def predict_learner(case, vocab=('a', 'b', 'c')):
    e = PREDICT[case]
    model = nn.Linear(4, e['n_out'])
    with torch.no_grad():
        model.weight.copy_(torch.tensor(e['weights']['weight']).view_as(model.weight))
        model.bias.copy_(torch.tensor(e['weights']['bias']))
    y = torch.zeros(2, dtype=torch.long) if case == 'classification' else torch.zeros(2, e['n_out'])
    dls = DataLoaders([(torch.zeros(2, 4), y)], [], vocab=None if vocab is None else list(vocab))
    return Learner(dls, model, LOSSES[case], cbs=DeviceCallback('cpu'))


@pytest.mark.parametrize('case', ['classification', 'multilabel', 'regression'])
def test_predict_matches_fastai(case):
    e = PREDICT[case]
    learn = predict_learner(case, None if case == 'regression' else ('a', 'b', 'c'))
    learn.model.train()
    for x, exp, raw in zip(e['inputs'], e['predict'], e['raw_model_output'], strict=True):
        res = learn.predict(torch.tensor(x))
        assert len(res) == exp['n_returned'] == 3
        decoded, index, probs = res
        assert learn.model.training                                      # predict evaluates, then puts the mode back
        if case == 'classification':
            assert isinstance(decoded, str) and decoded == exp['decoded']['str']
        elif case == 'multilabel':
            assert isinstance(decoded, list) and str(decoded) == exp['decoded']['str']
        else:
            assert torch.is_tensor(decoded) and decoded.tolist() == pytest.approx(exp['decoded']['value'], abs=1e-6)
            assert decoded.tolist() == pytest.approx(raw, abs=1e-6)
        for got, want in ((index, exp['decoded_preds']), (probs, exp['probs'])):
            assert str(got.dtype) == want['dtype'] and list(got.shape) == want['shape']
            if got.dtype == torch.float32: assert got.tolist() == pytest.approx(want['value'], abs=1e-6)
            else: assert got.tolist() == want['value']


def test_predict_without_vocab_and_bad_vocab():
    learn = predict_learner('classification', vocab=None)
    decoded, index, probs = learn.predict(torch.tensor(PREDICT['classification']['inputs'][0]))
    assert decoded == 2 and isinstance(decoded, int) and index.item() == 2
    assert torch.allclose(probs, torch.softmax(learn.model(torch.tensor([PREDICT['classification']['inputs'][0]]))[0], -1))
    decoded = predict_learner('multilabel', vocab=None).predict(torch.tensor([1., -2., .5, 1.5]))[0]
    assert decoded.dtype == torch.bool and decoded.tolist() == [True, False, True]
    with pytest.raises(ValueError, match=r"the model has 3 outputs, but vocab has 2 names"):
        predict_learner('multilabel', vocab=('a', 'b')).predict(torch.zeros(4))
    with pytest.raises(ValueError, match=r"the model predicts class 2, but vocab has 2 names"):
        predict_learner('classification', vocab=('a', 'b')).predict(torch.tensor(PREDICT['classification']['inputs'][0]))
    with pytest.raises(TypeError, match='vocab must be a list of class names'): DataLoaders([], [], vocab='abc')


# ---------------------------------------------------------------- callback order: run_before and run_after
ORDER = FIXTURE['callback_order']
# fastnote's order of the fixture's own callbacks, case by case (fastai's is the fixture's: sorted by `order` alone)
EXPECTED_ORDER = {'1_same_order_run_before': ['A', 'B'], '2_same_order_run_after': ['B', 'A'],
                  '3_run_after_higher_order': ['C', 'A'], '4_run_before_lower_order': ['A', 'B'],
                  '5_lists': ['C', 'D', 'B', 'A'], '8_mixed_orders': ['B', 'C', 'D', 'A']}


def order_classes(case, with_rules=True):
    "The fixture's callback classes of `case`, each recording its name at before_fit into the returned list."
    spec, trace, classes = ORDER[case]['callbacks'], [], {}
    for name, s in spec.items():
        classes[name] = type(name, (Callback,), {'order': s['order'], 'before_fit': lambda self, _n=name: trace.append(_n)})
    if with_rules:
        for name, s in spec.items():
            for attr in ('run_before', 'run_after'):
                if s[attr] is not None:
                    setattr(classes[name], attr, [classes[c] for c in s[attr]] if s['as_list'] else classes[s[attr]])
    return classes, trace


def broken_rules(order:list, spec:dict) -> list:
    "The run_before/run_after rules of `spec` that `order` (callback names) breaks."
    pos, bad = {n: i for i, n in enumerate(order)}, []
    for name, s in spec.items():
        for attr, sign in (('run_before', 1), ('run_after', -1)):
            others = [] if s[attr] is None else s[attr] if s['as_list'] else [s[attr]]
            bad += [f"{name}.{attr} {o}" for o in others if o in pos and (pos[o] - pos[name]) * sign < 0]
    return bad


@pytest.mark.parametrize('case', EXPECTED_ORDER)
def test_run_before_and_run_after_are_honoured_where_fastai_ignores_them(case):
    e = ORDER[case]
    assert e['escaped'] is None and e['before_fit_ran'] == [n for n in e['ordered_cbs_before_fit'] if n in e['callbacks']]
    assert broken_rules(e['before_fit_ran'], e['callbacks'])            # fastai 2.8 breaks a rule in every case
    classes, trace = order_classes(case)
    learn = make_learner()
    for n in e['add_order']: learn.add_cb(classes[n]())
    ours = [type(cb).__name__ for cb in sort_callbacks(learn.cbs)]
    learn.fit(1)
    assert trace == EXPECTED_ORDER[case] == [n for n in ours if n in e['callbacks']]
    assert not broken_rules(trace, e['callbacks']) and trace != e['before_fit_ran']
    assert sorted(trace) == sorted(e['before_fit_ran'])
    # the same list on its own gives the same order
    assert [type(cb).__name__ for cb in sort_callbacks([classes[n]() for n in e['add_order']])] == EXPECTED_ORDER[case]


@pytest.mark.parametrize('case', [c for c in ORDER if c[0].isdigit()])
def test_without_rules_the_order_is_fastais(case):
    e = ORDER[case]
    classes, trace = order_classes(case, with_rules=False)
    learn = make_learner()
    for n in e['add_order']: learn.add_cb(classes[n]())
    ours = [type(cb).__name__ for cb in sort_callbacks(learn.cbs)]
    learn.fit(1)
    assert trace == e['before_fit_ran']
    # with the defaults both have (TrainEvalCallback, Recorder): the same order as fastai's ordered_cbs('before_fit')
    assert [n for n in ours if n in e['ordered_cbs_before_fit']] == e['ordered_cbs_before_fit']


@pytest.mark.parametrize('case', ['6_cycle', '7_cycle_reverse_add'])
def test_a_cycle_is_refused_at_add_cb(case):
    e = ORDER[case]
    assert e['escaped'] is None and e['before_fit_ran'] == e['add_order']   # fastai runs them as added
    classes, trace = order_classes(case)
    learn = make_learner()
    learn.add_cb(classes[e['add_order'][0]]())
    n_cbs = len(learn.cbs)
    with pytest.raises(ValueError, match=r"callbacks \['[AB]', '[AB]'\] cannot be ordered: their run_before and run_after "
                                         r"form a cycle \(.*A.run_after = \['B'\]") as err:
        learn.add_cb(classes[e['add_order'][1]]())
    assert "B.run_after = ['A']" in str(err.value)
    assert len(learn.cbs) == n_cbs and not hasattr(learn, 'b' if e['add_order'][1] == 'B' else 'a')
    learn.fit(1)                                                          # the Learner is still usable
    assert trace == e['add_order'][:1]
    with pytest.raises(ValueError, match='cycle'): sort_callbacks([classes['A'](), classes['B']()])
    class Bad(Callback): run_after = 'Recorder'
    with pytest.raises(TypeError, match=r"Bad.run_after must be a Callback class or a list of them, got 'Recorder'"):
        learn.add_cb(Bad())


# ---------------------------------------------------------------- fastai 1's callback names
def test_legacy_callback_names_run_or_warn():
    e = ORDER['legacy_names']
    calls = []
    class Legacy(Callback):
        def begin_train(self): calls.append('begin_train')
        def begin_fit(self): calls.append('begin_fit')
        def after_batchh(self): calls.append('after_batchh')
        def on_epoch_end(self): calls.append('on_epoch_end')
        def after_epoch(self): calls.append('after_epoch')
    assert sorted(e['methods_defined']) == sorted(n for n in vars(Legacy) if not n.startswith('_'))
    assert e['called'] == ['after_epoch'] and e['warnings'] == []        # fastai calls only the real event, silently
    learn = make_learner()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        learn.add_cb(Legacy())
    got = sorted((x.category.__name__, str(x.message).split(' ')[0]) for x in w)
    assert got == [('FutureWarning', 'Legacy.begin_fit'), ('FutureWarning', 'Legacy.begin_train'),
                   ('UserWarning', 'Legacy.after_batchh'), ('UserWarning', 'Legacy.on_epoch_end')]
    msgs = {str(x.message).split(' ')[0]: str(x.message) for x in w}
    assert "runs at 'before_train'" in msgs['Legacy.begin_train']
    assert "rename it 'before_train'" in msgs['Legacy.begin_train']
    assert "'after_batchh' is not an event" in msgs['Legacy.after_batchh']
    assert "did you mean 'after_batch'" in msgs['Legacy.after_batchh']
    assert "'on_epoch_end' is not an event" in msgs['Legacy.on_epoch_end'] and "'after_epoch'" in msgs['Legacy.on_epoch_end']
    learn.fit(1)
    assert calls == ['begin_fit', 'begin_train', 'after_epoch']          # fastai: ['after_epoch']
    assert [c for c in calls if not c.startswith('begin_')] == e['called']
    class Both(Callback):
        def begin_fit(self): pass
        def before_fit(self): pass
    with pytest.raises(ValueError, match=r"Both has both 'before_fit' and 'begin_fit'"), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        learn.add_cb(Both())


def test_legacy_name_warning_points_at_the_line_that_adds_the_callback():
    class Legacy(Callback):
        def begin_train(self): pass
    learn = make_learner()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        line = _lineno() + 1
        learn.add_cb(Legacy())
    assert [(Path(x.filename).name, x.lineno) for x in w] == [(Path(__file__).name, line)]


def _lineno() -> int:
    import inspect
    return inspect.currentframe().f_back.f_lineno


# ---------------------------------------------------------------- smooth_loss, x and y
def test_smooth_loss_matches_fastai():
    e = FIXTURE['smooth_loss_xy']
    seen, losses = {}, []
    class Probe(Callback):
        order = 100
        def after_pred(self):
            if not self.learn.training or seen: return
            l = self.learn
            seen.update(x_is_xb0=l.x is l.xb[0], y_is_yb0=l.y is l.yb[0], len_xb=len(l.xb), len_yb=len(l.yb),
                        xb0_shape=list(l.xb[0].shape), yb0_shape=list(l.yb[0].shape))
        def after_loss(self):
            if self.learn.training: losses.append(float(self.learn.loss.detach()))
    learn = make_learner(Probe(), fastai_wd=True)
    assert learn.smooth_loss is None
    learn.fit(1)
    xy = e['xy_at_after_pred']
    assert seen == {'x_is_xb0': xy['learn_x_is_xb0'], 'y_is_yb0': xy['learn_y_is_yb0'], 'len_xb': xy['len_xb'],
                    'len_yb': xy['len_yb'], 'xb0_shape': xy['xb0_shape'], 'yb0_shape': xy['yb0_shape']}
    assert seen['x_is_xb0'] is True and seen['y_is_yb0'] is True
    assert losses == pytest.approx(e['train_batch_losses'], rel=1e-6)
    sl = learn.smooth_loss
    assert isinstance(sl, float) and sl == learn.recorder.smooth_losses[-1]
    assert close(sl, e['smooth_loss'], 2e-6), (sl, e['smooth_loss'])     # fastai's float32 EMA, ours float64
    assert learn.recorder.smooth_losses == pytest.approx(e['recorder_losses'], rel=2e-6)
    beta, val = e['recorder_beta'], 0.
    for l in learn.recorder.losses: val = beta * val + (1 - beta) * l
    assert learn.recorder.beta == beta and sl == pytest.approx(val / (1 - beta ** len(losses)), rel=1e-12)
    assert learn.x is None and learn.y is None                            # between fits there is no batch


def test_x_and_y_with_several_inputs():
    seen = {}
    class Probe(Callback):
        def after_pred(self): seen.update(x=self.learn.x, xb=self.learn.xb, y=self.learn.y, yb=self.learn.yb)
    class Two(nn.Module):
        def __init__(self): super().__init__(); self.lin = nn.Linear(4, 3)
        def forward(self, a, b): return self.lin(a + b)
    xt, yt = DATA[0][:8], DATA[1][:8]
    learn = Learner(DataLoaders([(xt, xt, yt)]), Two(), nn.CrossEntropyLoss(), cbs=[DeviceCallback('cpu'), Probe()])
    learn.progress.show_table = False
    learn.fit(1)
    assert seen['x'] is seen['xb'] and len(seen['x']) == 2 and seen['y'] is seen['yb'][0]
    assert detuplify((1,)) == 1 and detuplify([1, 2]) == [1, 2] and detuplify(5) == 5


# ---------------------------------------------------------------- the data, the loss they carry, summary, precision
def test_dataloaders_from_dsets_and_the_datas_loss():
    xt, yt, xv, yv = DATA
    lf = nn.CrossEntropyLoss()
    dls = DataLoaders.from_dsets(TensorDataset(xt, yt), TensorDataset(xv, yv), bs=16, seed=3, loss_func=lf,
                                 vocab=('a', 'b', 'c'))
    assert dls.loss_func is lf and dls.vocab == ['a', 'b', 'c'] and len(dls) == 2
    first = [y for _, y in dls.train]
    assert [len(y) for y in first] == [16] * 4 and sorted(torch.cat(first).tolist()) == sorted(yt.tolist())
    assert torch.cat(first).tolist() != yt.tolist()                       # shuffled...
    again = DataLoaders.from_dsets(TensorDataset(xt, yt), TensorDataset(xv, yv), bs=16, seed=3)
    assert [y.tolist() for _, y in again.train] == [y.tolist() for y in first]   # ...reproducibly, by the seed
    assert torch.cat([y for _, y in dls.valid]).tolist() == yv.tolist()  # validation in order
    plain = DataLoaders.from_dsets(TensorDataset(xt, yt), bs=10, shuffle=False)
    assert plain.valid == () and [len(y) for _, y in plain.train] == [10] * 6 + [4]
    assert torch.cat([y for _, y in plain.train]).tolist() == yt.tolist()
    learn = Learner(dls, make_model(), cbs=DeviceCallback('cpu'))
    assert learn.loss_func is lf                                          # the data's loss, as fastai takes it
    other = nn.CrossEntropyLoss(label_smoothing=0.1)
    assert Learner(dls, make_model(), loss_func=other).loss_func is other  # a given one wins
    assert learn.predict(xv[0])[0] in ('a', 'b', 'c')
    with pytest.raises(TypeError, match=r'Learner needs a loss_func'): Learner(make_dls(), make_model())
    with pytest.raises(TypeError, match=r'DataLoaders: loss_func must be callable'): DataLoaders([], [], loss_func='ce')


def test_summary_shows_layers_totals_and_freezing():
    learn = make_learner()
    model = learn.model
    total = sum(p.numel() for p in model.parameters())
    assert total == 4 * 8 + 8 + 2 * 8 + 8 * 3 + 3 == 83
    s = learn.summary()
    assert isinstance(s, str) and repr(s) == str(s)
    for layer in ('Linear (0.0)', 'BatchNorm1d (0.1)', 'ReLU (0.2)', 'Linear (1)'): assert layer in s
    assert 'Input shape: 16 x 4' in s and '16 x 8' in s and '16 x 3' in s
    assert f"Total params: {total}" in s and f"Total trainable params: {total}" in s and 'Total non-trainable params: 0' in s
    assert 'Model frozen' not in s
    learn.freeze()
    s = learn.summary()
    frozen = sum(p.numel() for p in model[0][0].parameters())
    assert frozen == 40
    assert f"Total params: {total}" in s and f"Total trainable params: {total - frozen}" in s
    assert f"Total non-trainable params: {frozen}" in s and 'Model frozen up to parameter group #1' in s
    row = next(line for line in s.splitlines() if line.startswith('Linear (0.0)'))
    assert row.split()[-1] == 'False' and row.split()[-2] == '40'
    assert next(line for line in s.splitlines() if line.startswith('BatchNorm1d')).split()[-1] == 'True'   # train_bn
    learn.unfreeze()
    s = learn.summary()
    assert f"Total trainable params: {total}" in s and 'Model frozen' not in s


def test_to_fp16_bf16_fp32_switch_the_mixed_precision_callback():
    learn = make_learner()
    mp = lambda: [cb for cb in learn.cbs if isinstance(cb, MixedPrecision)]
    assert mp() == []
    assert learn.to_fp16() is learn and [cb.dtype for cb in mp()] == [torch.float16]
    learn.to_fp16()
    assert len(mp()) == 1                                                 # replaced, not added twice
    learn.to_bf16()
    assert [cb.dtype for cb in mp()] == [torch.bfloat16] and learn.mixed_precision is mp()[0]
    before = params_of(learn)
    learn.fit(1)                                                          # bfloat16 autocast on the CPU
    assert not torch.is_autocast_enabled('cpu') and all(torch.isfinite(torch.tensor(learn.recorder.losses)))
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())
    assert any(not torch.equal(p, before[n]) for n, p in learn.model.named_parameters())
    assert learn.to_fp32() is learn and mp() == [] and not hasattr(learn, 'mixed_precision')
    learn.to_fp32()                                                       # no callback to remove: fine
    assert mp() == []
