"""The Learner as users rely on it: fastai 2.8's event order (from a fixture recorded with fastai itself), the same
numbers as a hand-written loop, callbacks that change the state, errors that leave a usable Learner, save/load, and
metrics equal to the ones computed by hand."""
import json, warnings
from functools import partial
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastnote.learner as learner_module
from fastnote import (SGD, Adam, Learner, DataLoaders, Callback, TrainEvalCallback, EVENTS, accuracy, error_rate,
                      CancelBatchException, CancelTrainException, CancelValidException, CancelEpochException,
                      CancelFitException, CancelBackwardException, CancelStepException)

FIXTURE = json.loads((Path(__file__).parent/'data'/'fastai_events.json').read_text())
SUFFIXED = set(FIXTURE['meta']['suffixed_events'])


# ---------------------------------------------------------------- event order, against fastai 2.8.12 itself
class EventRecorder(Callback):
    "Every event it receives, with ':train'/':valid' on batch-level ones, as the fixture's recorder wrote them."
    order = 100
    def __init__(self): self.trace = []
for _name in EVENTS:
    def _record(self, name=_name):
        self.trace.append(name + ((':train' if self.learn.training else ':valid') if name in SUFFIXED else ''))
    setattr(EventRecorder, _name, _record)


class RaiseOnce(Callback):
    "Raise `exc` the first time `event` fires."
    order = 50
    def __init__(self, exc, event):
        self.exc, self.event, self.done = exc, event, False
    def _raise(self):
        if not self.done:
            self.done = True
            raise self.exc()


def fixture_learner(*cbs):
    "The fixture's setup: Linear(2,1), MSE, SGD lr 0.1, 2 training batches and 1 validation batch of 4 from seed 1."
    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 2, generator=g), torch.randn(4, 1, generator=g)) for _ in range(3)]
    torch.manual_seed(0)
    learn = Learner(DataLoaders(batches[:2], batches[2:]), nn.Linear(2, 1), nn.MSELoss(), opt_func=SGD, lr=0.1, cbs=list(cbs))
    return learn


def run_case(exc=None, event=None):
    recorder = EventRecorder()
    cbs = [recorder]
    if exc is not None:   # an instance attribute named after the event: the Learner looks methods up on the class
        cls = type(f'Raise_{event}', (RaiseOnce,), {event: lambda self: self._raise()})
        cbs.insert(0, cls(exc, event))
    learn = fixture_learner(*cbs)
    escaped = None
    with learn.no_bar(), learn.no_logging():
        try: learn.fit(2)
        except Exception as e: escaped = type(e).__name__
    return recorder.trace, escaped, learn


def test_full_fit_event_order_matches_fastai():
    trace, escaped, _ = run_case()
    assert escaped is None
    assert trace == FIXTURE['full']


CANCELS = {c.__name__: c for c in (CancelBatchException, CancelTrainException, CancelValidException, CancelEpochException,
                                   CancelFitException, CancelBackwardException, CancelStepException)}

@pytest.mark.parametrize('case', sorted(FIXTURE['cases']))
def test_cancel_event_order_matches_fastai(case):
    exc_name, event = case.split('@')
    trace, escaped, learn = run_case(CANCELS[exc_name], event)
    expected = FIXTURE['cases'][case]
    assert escaped == expected['escaped'], f"{case}: escaped {escaped}, fastai {expected['escaped']}"
    assert trace == expected['trace'], f"{case}: first difference at event {next(i for i, (a, b) in enumerate(zip(trace + [None], expected['trace'] + [None])) if a != b)}"


@pytest.mark.parametrize('case', sorted(FIXTURE['cases']))
def test_cancel_before_the_built_in_callbacks_leaves_them_consistent(case):
    "The same cases raised by a callback that runs before every built-in one: the Recorder, the bars and the counters cope."
    exc_name, event = case.split('@')
    recorder = EventRecorder()
    cls = type(f'Raise_{event}', (RaiseOnce,), {event: lambda self: self._raise(), 'order': -100})
    learn = fixture_learner(cls(CANCELS[exc_name], event), recorder)
    escaped = None
    with learn.no_bar(), learn.no_logging():
        try: learn.fit(2)
        except Exception as e: escaped = type(e).__name__
    expected = FIXTURE['cases'][case]
    assert escaped == expected['escaped'], f"{case}: escaped {escaped}, fastai {expected['escaped']}"
    assert recorder.trace == expected['trace']
    rec = learn.recorder
    assert len(rec.values) == len(rec.iters) == len(rec.epoch_times) == expected['trace'].count('after_epoch')
    assert len(rec.losses) == len(rec.hps.get('lr', rec.losses))
    if escaped is None:                        # and the Learner trains again, recording a whole new fit
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        assert len(learn.recorder.values) == 1 and len(learn.recorder.losses) == 2


def test_fixture_covers_every_exception_at_every_event():
    assert len(FIXTURE['cases']) == len(CANCELS) * (len(EVENTS) - 1)
    assert FIXTURE['meta']['events'] == EVENTS


# ---------------------------------------------------------------- the same numbers as a hand-written loop
def regression_data(n=96, bs=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 5, generator=g)
    y = x @ torch.randn(5, 1, generator=g) + 0.1 * torch.randn(n, 1, generator=g)
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, n, bs)]


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 1))


@pytest.mark.parametrize('opt_func', [partial(torch.optim.SGD, momentum=0.9), torch.optim.AdamW, Adam],
                         ids=['torch SGD', 'torch AdamW', 'fastnote Adam'])
def test_learner_matches_hand_written_loop(opt_func):
    batches = regression_data()
    model = make_model()
    opt = opt_func(list(model.parameters()), lr=0.01)
    hand_losses = []
    for epoch in range(3):
        model.train()
        for xb, yb in batches[:4]:
            loss = F.mse_loss(model(xb), yb)
            loss.backward(); opt.step(); opt.zero_grad()
            hand_losses.append(loss.item())
    learn = Learner(DataLoaders(batches[:4], batches[4:]), make_model(), F.mse_loss, opt_func=opt_func, lr=0.01)
    with learn.no_bar(), learn.no_logging(): learn.fit(3)
    for a, b in zip(model.parameters(), learn.model.parameters()): assert torch.equal(a, b)
    assert learn.recorder.losses == hand_losses


# ---------------------------------------------------------------- callbacks change what the loop uses
def quiet_fit(learn, n=1, **kw):
    with learn.no_bar(), learn.no_logging(): learn.fit(n, **kw)
    return learn


def test_callback_changing_xb_pred_loss_and_grads():
    class ZeroInputs(Callback):
        def before_batch(self): self.learn.xb = (torch.zeros_like(self.learn.xb[0]),)
        def after_pred(self): self.preds = getattr(self, 'preds', []) + [self.learn.pred]
    learn = quiet_fit(Learner(DataLoaders(regression_data()[:2]), make_model(), F.mse_loss, cbs=ZeroInputs()))
    first = learn.zero_inputs.preds[0]
    assert torch.allclose(first, first[:1].expand_as(first))      # zero inputs: the same prediction for every row

    class ReplacePred(Callback):
        def after_pred(self): self.learn.pred = torch.zeros_like(self.learn.pred) + self.learn.pred.sum() * 0
    learn = quiet_fit(Learner(DataLoaders(regression_data()[:1]), make_model(), F.mse_loss, cbs=ReplacePred()))
    assert learn.recorder.losses == [F.mse_loss(torch.zeros(16, 1), regression_data()[0][1]).item()]

    class NoGrad(Callback):
        def after_backward(self):
            for p in self.learn.model.parameters(): p.grad.zero_()
    learn = Learner(DataLoaders(regression_data()[:3]), make_model(), F.mse_loss, opt_func=SGD, lr=0.1, cbs=NoGrad())
    before = [p.detach().clone() for p in learn.model.parameters()]
    quiet_fit(learn, 2)
    for a, b in zip(before, learn.model.parameters()): assert torch.equal(a, b)

    class NewTarget(Callback):
        def before_batch(self): self.learn.yb = (torch.zeros_like(self.learn.yb[0]),)
    learn = Learner(DataLoaders(regression_data()[:1]), make_model(), F.mse_loss, cbs=NewTarget())
    quiet_fit(learn)
    with torch.no_grad(): pred = make_model()(regression_data()[0][0])
    assert learn.recorder.losses == [F.mse_loss(pred, torch.zeros_like(pred)).item()]


def test_cancel_step_skips_the_update_but_zero_grad_still_runs():
    class SkipStep(Callback):
        def before_step(self): raise CancelStepException()
        def after_step(self): self.grads = [p.grad is None or not p.grad.any() for p in self.learn.model.parameters()]
    learn = Learner(DataLoaders(regression_data()[:2]), make_model(), F.mse_loss, opt_func=SGD, lr=0.1, cbs=SkipStep())
    before = [p.detach().clone() for p in learn.model.parameters()]
    quiet_fit(learn)
    for a, b in zip(before, learn.model.parameters()): assert torch.equal(a, b)
    assert all(p.grad is None for p in learn.model.parameters())


def test_callback_order_run_train_run_valid():
    log = []
    class Tag(Callback):
        def __init__(self, tag, order): self.tag, self.order = tag, order
        @property
        def name(self): return f'tag_{self.tag}'
        def after_pred(self): log.append((self.tag, self.learn.training))
    late, early, mid = Tag('late', 70), Tag('early', -30), Tag('mid', 0)
    mid.run_valid, early.run_train = False, False
    learn = Learner(DataLoaders(regression_data()[:1], regression_data()[1:2]), make_model(), F.mse_loss, cbs=[late, early, mid])
    quiet_fit(learn)
    assert log == [('mid', True), ('late', True), ('early', False), ('late', False)]
    assert [type(cb).__name__ for cb in sorted(learn.cbs, key=lambda c: c.order)][:3] == ['Tag', 'DeviceCallback', 'TrainEvalCallback']


def test_callback_reads_learner_attributes_and_warns_on_shadowing():
    class Reader(Callback):
        def after_loss(self): self.seen = (self.epoch, self.iter, self.n_epoch, self.training)
        def before_fit(self): self.n_epoch = 5
    learn = Learner(DataLoaders(regression_data()[:2]), make_model(), F.mse_loss, cbs=Reader())
    with pytest.warns(UserWarning, match=r"self.learn.n_epoch"): quiet_fit(learn, 2)
    assert learn.reader.seen == (1, 1, 5, True)      # the callback's own n_epoch, the Learner's others
    assert learn.n_epoch == 2
    with pytest.raises(AttributeError, match="neither 'Reader' nor its Learner has an attribute 'nope'"): learn.reader.nope
    with pytest.raises(ValueError, match="unknown event 'after_lunch'"): learn('after_lunch')


def test_default_callbacks_and_add_remove():
    learn = Learner(DataLoaders(regression_data()[:2]), make_model(), F.mse_loss)
    assert [type(cb).__name__ for cb in learn.cbs] == ['TrainEvalCallback', 'DeviceCallback', 'Recorder', 'ProgressCallback']
    assert learn.recorder is learn.cbs[2] and learn.train_eval is learn.cbs[0]
    learn.remove_cb(learner_module.ProgressCallback)
    assert not hasattr(learn, 'progress') and len(learn.cbs) == 3
    with learn.added_cbs(learner_module.ProgressCallback) as l: assert hasattr(l, 'progress')
    assert not hasattr(learn, 'progress')
    with pytest.raises(TypeError, match='callbacks must be Callback instances or classes'): learn.add_cb(print)
    class Model(Callback): pass
    with pytest.raises(ValueError, match="would hide the Learner's attribute 'model'"): learn.add_cb(Model())
    quiet = learner_module.ProgressCallback(show_bars=False)
    learn = Learner(DataLoaders(regression_data()[:2]), make_model(), F.mse_loss, cbs=quiet)   # replaces the default one
    assert learn.progress is quiet and sum(isinstance(cb, learner_module.ProgressCallback) for cb in learn.cbs) == 1


# ---------------------------------------------------------------- errors reach the caller, and the Learner still works
class SpyBars:
    "Stands in for tqdm and remembers every bar, to check they are all closed."
    def __init__(self, real): self.real, self.bars = real, []
    def __call__(self, *a, **kw):
        bar = self.real(*a, **kw); self.bars.append(bar); return bar
    def write(self, *a, **kw): return self.real.write(*a, **kw)


@pytest.mark.parametrize('where', ['callback', 'model', 'loss', 'data', 'interrupt'])
def test_errors_keep_their_type_close_bars_and_fit_again(where, monkeypatch):
    spy = SpyBars(learner_module.tqdm)
    monkeypatch.setattr(learner_module, 'tqdm', spy)
    batches = regression_data()[:3]
    class Fail(Callback):
        def after_loss(self):
            if self.learn.iter == 1: raise (KeyboardInterrupt if where == 'interrupt' else KeyError)('bad column')
    class BadModel(nn.Module):
        def __init__(self): super().__init__(); self.inner = make_model()
        def forward(self, x):
            if self.fail: raise ZeroDivisionError('model says no')
            return self.inner(x)
    def bad_loss(pred, y):
        if fail['now']: raise FloatingPointError('loss says no')
        return F.mse_loss(pred, y)
    class BadData:
        def __len__(self): return 3
        def __iter__(self):
            yield batches[0]
            if fail['now']: raise OSError('disk gone')
            yield from batches[1:]
    fail = {'now': True}
    model = BadModel(); model.fail = where == 'model'
    learn = Learner(DataLoaders(BadData() if where == 'data' else batches), model, bad_loss if where == 'loss' else F.mse_loss,
                    cbs=Fail() if where in ('callback', 'interrupt') else None, opt_func=SGD, lr=0.1)
    learn.progress.show_bars = True
    expected = {'callback': (KeyError, 'in callback Fail at event after_loss (epoch 0, training batch 1)'),
                'interrupt': (KeyboardInterrupt, None),
                'model': (ZeroDivisionError, "in the model's forward pass (epoch 0, training batch 0)"),
                'loss': (FloatingPointError, 'in the loss function (epoch 0, training batch 0)'),
                'data': (OSError, 'while reading the next batch (epoch 0, training batch 1)')}[where]
    with pytest.raises(expected[0]) as info: learn.fit(2)
    if expected[1]: assert any(expected[1] in n for n in info.value.__notes__), info.value.__notes__
    assert spy.bars and all(bar.disable for bar in spy.bars), "a progress bar was left open"
    assert learn.dl is None and all(cb.run for cb in learn.cbs)
    # a second fit, with the fault gone, gives what a fresh Learner gives: no gradient of the failed batch is left over
    fail['now'] = model.fail = False
    learn.remove_cb(Fail)
    learn.model = make_model(); learn.opt = None
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    fresh = quiet_fit(Learner(DataLoaders(batches), make_model(), F.mse_loss, opt_func=SGD, lr=0.1))
    for a, b in zip(learn.model.parameters(), fresh.model.parameters()): assert torch.equal(a, b)


def test_failed_batch_leaves_no_gradient_behind():
    batches = regression_data()[:2]
    class FailAfterBackward(Callback):
        def after_backward(self): raise RuntimeError('stop here')
    learn = Learner(DataLoaders(batches), make_model(), F.mse_loss, opt_func=SGD, lr=0.1, cbs=FailAfterBackward())
    with pytest.raises(RuntimeError, match='stop here'), learn.no_bar(): learn.fit(1)
    assert all(p.grad is None for p in learn.model.parameters())


def test_bad_input_is_named():
    good = DataLoaders(regression_data()[:2])
    with pytest.raises(TypeError, match=r"a batch must be a non-empty tuple or list .* got Tensor"):
        quiet_fit(Learner(DataLoaders([torch.zeros(3, 5)]), make_model(), F.mse_loss))
    with pytest.raises(ValueError, match=r"the training data has no batches"): quiet_fit(Learner(DataLoaders([]), make_model(), F.mse_loss))
    with pytest.raises(TypeError, match=r"n_epoch must be an integer, got 1.5"): Learner(good, make_model(), F.mse_loss).fit(1.5)
    with pytest.raises(ValueError, match=r"n_epoch must be >= 0, got -1"): Learner(good, make_model(), F.mse_loss).fit(-1)
    with pytest.raises(ValueError, match=r"lr must be >= 0, got -0.1"): Learner(good, make_model(), F.mse_loss, lr=-0.1)
    with pytest.raises(TypeError, match=r"lr must be a real number, got 'fast'"): quiet_fit(Learner(good, make_model(), F.mse_loss), lr='fast')
    with pytest.raises(TypeError, match=r"model must be a torch.nn.Module, got function"): Learner(good, make_model, F.mse_loss)
    with pytest.raises(TypeError, match=r"dls must have .train and .valid"): Learner(regression_data(), make_model(), F.mse_loss)
    with pytest.raises(TypeError, match=r"opt_func must return a torch.optim.Optimizer, .* returned a list"):
        quiet_fit(Learner(good, make_model(), F.mse_loss, opt_func=lambda ps, lr: list(ps)))


# ---------------------------------------------------------------- torch optimizers, hyper-parameters, the Recorder
def test_torch_optimizers_get_lr_and_wd_by_fastnote_names():
    learn = Learner(DataLoaders(regression_data()[:2]), make_model(), F.mse_loss, opt_func=torch.optim.AdamW, lr=0.01, wd=0.05)
    quiet_fit(learn, 2)
    pg = learn.opt.param_groups[0]
    assert (pg['lr'], pg['weight_decay']) == (0.01, 0.05)
    hps = learn.recorder.hps
    assert hps['lr'] == [0.01] * 4 and hps['mom'] == [0.9] * 4 and hps['sqr_mom'] == [0.999] * 4 and hps['wd'] == [0.05] * 4
    quiet_fit(learn, 1, lr=0.002, wd=0.)
    assert (learn.opt.param_groups[0]['lr'], learn.opt.param_groups[0]['weight_decay']) == (0.002, 0.)


def test_recorder_losses_smoothing_and_epoch_values():
    batches = regression_data(n=100, bs=16)        # 7 batches, the last of 4 items
    learn = Learner(DataLoaders(batches[:5], batches[5:]), make_model(), F.mse_loss, opt_func=SGD, lr=0.05)
    quiet_fit(learn, 2)
    rec, beta = learn.recorder, 0.98
    s, smooth = 0., []
    for t, l in enumerate(rec.losses, 1):
        s = beta * s + (1 - beta) * l
        smooth.append(s / (1 - beta ** t))
    assert rec.smooth_losses == pytest.approx(smooth, rel=1e-12)
    assert rec.values[0][0] == pytest.approx(sum(rec.losses[:5]) / 5, rel=1e-12)   # equal batches: the plain mean
    assert rec.iters == [5, 10]
    valid = quiet_fit(Learner(DataLoaders(batches[:5]), make_model(), F.mse_loss), 1).recorder.values
    assert valid == [[pytest.approx(valid[0][0]), None]]             # no validation data: no validation loss


def test_metrics_equal_hand_computation_with_a_short_last_batch():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(203, 6, generator=g), torch.randint(0, 4, (203,), generator=g)
    torch.manual_seed(0)
    model = nn.Linear(6, 4)
    dls = DataLoaders(DataLoader(TensorDataset(x[:100], y[:100]), batch_size=32),
                      DataLoader(TensorDataset(x[100:], y[100:]), batch_size=10))    # 103 items: a last batch of 3
    learn = Learner(dls, model, F.cross_entropy, metrics=[accuracy, error_rate], opt_func=SGD, lr=0.1)
    quiet_fit(learn, 1)
    with torch.no_grad(): logits = model(x[100:])
    acc = (logits.argmax(1) == y[100:]).double().mean().item()
    valid_loss, got_acc, got_err = learn.recorder.values[-1][1:]
    assert got_acc == pytest.approx(acc, abs=1e-7) and got_err == pytest.approx(1 - acc, abs=1e-7)   # float32 batch means
    assert valid_loss == pytest.approx(F.cross_entropy(logits, y[100:]).item(), rel=1e-6)
    assert learn.validate() == [valid_loss, got_acc, got_err]
    preds, targs = learn.get_preds()
    assert torch.equal(targs, y[100:]) and torch.allclose(preds, logits)
    assert torch.allclose(learn.model_output(x[150]), logits[50])
    assert torch.allclose(learn.predict(x[150])[2], torch.softmax(logits[50], -1))


# ---------------------------------------------------------------- save and load
@pytest.mark.parametrize('opt_func', [Adam, torch.optim.AdamW], ids=['fastnote Adam', 'torch AdamW'])
def test_save_load_round_trip_continues_exactly(tmp_path, opt_func):
    batches = regression_data()
    def new(seed): return Learner(DataLoaders(batches[:4], batches[4:]), make_model(seed), F.mse_loss, opt_func=opt_func,
                                  lr=0.01, path=tmp_path)
    learn = quiet_fit(new(0), 2)
    file = learn.save('run')
    assert file == tmp_path/'models'/'run.pth' and [p.name for p in file.parent.iterdir()] == ['run.pth']
    other = new(1).load('run')
    for a, b in zip(learn.model.state_dict().values(), other.model.state_dict().values()): assert torch.equal(a, b)
    quiet_fit(learn, 1); quiet_fit(other, 1)
    for a, b in zip(learn.model.parameters(), other.model.parameters()): assert torch.equal(a, b)


def test_load_refuses_what_save_did_not_write(tmp_path):
    learn = Learner(DataLoaders(regression_data()[:2]), make_model(), F.mse_loss, path=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no saved model at .*models/nothing.pth"): learn.load('nothing')
    (tmp_path/'models').mkdir()
    torch.save({'weights': 1}, tmp_path/'models'/'other.pth')
    with pytest.raises(ValueError, match=r"other.pth was not written by Learner.save: it has no 'model' entry"): learn.load('other')
    learn.save('model_only', with_opt=False)
    with pytest.warns(UserWarning, match='has no optimizer state'): learn.load('model_only')


# ---------------------------------------------------------------- progress output
def test_table_and_bars(capsys):
    learn = Learner(DataLoaders(regression_data()[:3], regression_data()[3:]), make_model(), F.mse_loss)
    learn.fit(1)
    assert capsys.readouterr().err == ''                         # not a terminal: no bars, by default
    learn.progress.show_bars = True
    learn.fit(2)
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].split() == ['epoch', 'train_loss', 'valid_loss', 'time'] and len(lines) == 3
    assert lines[2].split()[0] == '1' and float(lines[2].split()[2]) == pytest.approx(learn.recorder.values[1][1], abs=1e-6)
    assert 'epoch' in err and '2/2' in err                       # tqdm's bar, on stderr
    with learn.no_bar(): learn.fit(1)
    out, err = capsys.readouterr()
    assert err == '' and len(out.strip().splitlines()) == 2
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert capsys.readouterr() == ('', '')


# ---------------------------------------------------------------- the loop shown: every event with its callbacks
def test_show_training_loop_lists_every_event_with_the_callbacks_that_run_there(capsys):
    class TrainOnly(Callback):
        run_valid = False
        def before_batch(self): pass
        def after_cancel_step(self): pass
    learn = fixture_learner(TrainOnly())
    learn.show_training_loop()
    rows = [line.strip().split(' ', 1) for line in capsys.readouterr().out.splitlines()]
    events = [e for e, _ in rows]
    assert set(events) == set(EVENTS[1:]) and len(events) == len(EVENTS) - 1 + 5   # and a validation batch's 5 events
    cbs = [eval(c) for _, c in rows]
    train_batch, valid_batch = events.index('before_batch'), events.index('before_batch', events.index('before_validate'))
    assert cbs[train_batch] == ['DeviceCallback', 'TrainOnly'] and cbs[valid_batch] == ['DeviceCallback']
    assert cbs[events.index('after_cancel_step')] == ['TrainOnly']     # not an inner event: it runs whatever the mode
    assert cbs[events.index('after_fit')] == ['ProgressCallback']
    learn.show_training_loop(); out = capsys.readouterr().out.splitlines()
    depth = {line.split()[0]: (len(line) - len(line.lstrip())) // 2 for line in out[:20]}
    assert depth['before_fit'] == 0 and depth['before_epoch'] == 1 and depth['before_train'] == 2 and depth['before_batch'] == 3
    assert depth['after_cancel_batch'] == depth['after_batch'] == 3 and depth['after_pred'] == 4 and depth['after_cancel_step'] == depth['before_step'] == 4


def test_optimizer_steppers_have_their_own_name():
    from fastnote import Optimizer, sgd_step
    w = torch.zeros(2, requires_grad=True)
    opt = Optimizer([w], [sgd_step], lr=0.1)
    assert opt.steppers == [sgd_step] and opt.cbs is opt.steppers
    assert Optimizer([w], cbs=[sgd_step], lr=0.1).steppers == [sgd_step]
    with pytest.raises(TypeError, match='give the steppers once'): Optimizer([w], [sgd_step], cbs=[sgd_step], lr=0.1)
    import pickle
    assert pickle.loads(pickle.dumps(opt)).steppers[0].__name__ == 'sgd_step'


# ---------------------------------------------------------------- optimizers with modes (schedule-free)
class ModalSGD(torch.optim.SGD):
    "SGD with schedule-free's two methods, recording each call and whether the model was training when it stepped."
    def __init__(self, params, lr):
        super().__init__(params, lr=lr)
        self.calls, self.mode = [], 'eval'
    def train(self): self.calls.append('train'); self.mode = 'train'
    def eval(self): self.calls.append('eval'); self.mode = 'eval'
    def step(self, closure=None):
        assert self.mode == 'train', "a step in eval mode"
        return super().step(closure)


def test_the_learner_switches_an_optimizer_that_has_modes():
    "opt.train() before each training epoch, opt.eval() before validation, when fit ends and while predicting; a validation inside training puts train back."
    batches = regression_data()
    class ValidateMidEpoch(Callback):
        def after_batch(self):
            if self.training and self.iter == 1: self.learn.validate()
    learn = Learner(DataLoaders(batches[:4], batches[4:]), make_model(), F.mse_loss, opt_func=ModalSGD, lr=0.01)
    quiet_fit(learn, 2)
    assert learn.opt.calls == ['train', 'eval'] * 2 + ['eval']
    learn.opt.calls.clear()
    quiet_fit(learn, 1, cbs=ValidateMidEpoch())                     # steps after the inner validation: in train mode again
    assert learn.opt.calls == ['train', 'eval', 'train', 'eval', 'eval'] and learn.opt.mode == 'eval'
    learn.opt.calls.clear(); learn.model.train(); learn.opt.train()
    learn.model_output(batches[0][0][0])
    assert learn.opt.calls == ['train', 'eval', 'train']          # predicting borrows eval mode and gives train back
