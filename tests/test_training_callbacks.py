"""The training callbacks, each against what it promises, with tests that fail if the callback does nothing: mixed
precision (the dtype inside, float32 weights, autocast always left, the scaler's skipped steps and unscaled
gradients), gradient clipping, gradient accumulation equal to the large batch, early stopping and best-model saving
on scripted values, the CSV log, and stopping on a NaN loss."""
import csv, math, warnings
from functools import partial
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from fastnote import (Learner, DataLoaders, Callback, Metric, SGD, accuracy, CancelBatchException, CancelFitException,
                      MixedPrecision, GradientClip, GradientAccumulation, TrackerCallback, EarlyStoppingCallback,
                      SaveModelCallback, CSVLogger, TerminateOnNaNCallback)
from fastnote.training_callbacks import _default_amp_dtype, _make_scaler


pytestmark = pytest.mark.usefixtures('one_thread')   # conftest's: tiny models run fastest on one thread


@pytest.fixture(scope='module')
def digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).flatten(1) / 16
    y = torch.tensor(d.target)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(42))
    return TensorDataset(x[idx[:1400]], y[idx[:1400]]), TensorDataset(x[idx[1400:]], y[idx[1400:]])


def mlp(): return nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))

def digits_learner(digits, path, bs=64, metrics=accuracy, seed=0, **kwargs):
    torch.manual_seed(seed)
    return Learner(DataLoaders.from_dsets(*digits, bs=bs, seed=seed), mlp(), F.cross_entropy, metrics=metrics,
                   path=path, **kwargs)

def quiet_fit(learn, *args, **kwargs):
    with learn.no_bar(), learn.no_logging(): learn.fit(*args, **kwargs)


def probe(event, f, order=100, train_only=True):
    "A callback recording `f(learn)` at `event` in `.seen` (the Learner finds event methods on the class)."
    cls = type(f'Probe_{event}', (Callback,), {event: lambda self: self.seen.append(f(self.learn)),
                                               'order': order, 'run_valid': not train_only})
    cb = cls()
    cb.seen = []
    return cb

def grad_norm(learn):
    grads = [p.grad for pg in learn.opt.param_groups for p in pg['params'] if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])))

def params(learn): return [p.detach().clone() for p in learn.model.parameters()]


# ---------------------------------------------------------------- MixedPrecision
def test_mixed_precision_runs_forward_in_bfloat16_on_cpu(digits, tmp_path):
    learn = digits_learner(digits, tmp_path, cbs=MixedPrecision())
    seen = probe('after_pred', lambda l: (l.pred.dtype, torch.is_autocast_enabled('cpu')), train_only=False)
    after_loss = probe('after_loss', lambda l: torch.is_autocast_enabled('cpu'), order=20)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 1e-2, cbs=[seen, after_loss])
    assert set(seen.seen) == {(torch.bfloat16, True)}                       # training and validation
    assert set(after_loss.seen) == {False}                                  # left once the loss is computed
    assert all(p.dtype == torch.float32 for p in learn.model.parameters())
    assert not torch.is_autocast_enabled('cpu')
    assert learn.recorder.values[-1][2] > 0.9
    assert all(math.isfinite(l) for l in learn.recorder.losses)


def test_mixed_precision_leaves_autocast_when_a_batch_is_cancelled_or_fails(digits, tmp_path):
    class CancelSome(Callback):
        def after_pred(self):
            if self.learn.training and self.learn.iter % 2 == 0: raise CancelBatchException()
    learn = digits_learner(digits, tmp_path, cbs=[MixedPrecision(), CancelSome()])
    seen = probe('after_batch', lambda l: torch.is_autocast_enabled('cpu'))
    inside = probe('after_pred', lambda l: torch.is_autocast_enabled('cpu'), order=-50)
    quiet_fit(learn, 1, cbs=[seen, inside])
    assert set(inside.seen) == {True}                                   # it was on during the forward pass
    assert seen.seen and set(seen.seen) == {False}                       # and off after every batch, cancelled or not

    class Fails(nn.Module):
        def __init__(self): super().__init__(); self.lin, self.calls = nn.Linear(64, 10), 0
        def forward(self, x):
            self.calls += 1
            if self.calls == 3: raise RuntimeError('broken model')
            return self.lin(x)
    learn = Learner(DataLoaders.from_dsets(*digits), Fails(), F.cross_entropy, cbs=MixedPrecision(), path=tmp_path)
    with pytest.raises(RuntimeError, match='broken model'): quiet_fit(learn, 1)
    assert not torch.is_autocast_enabled('cpu')
    assert '_loss_as_computed' not in learn.__dict__


def test_mixed_precision_decides_from_the_device():
    assert _default_amp_dtype('cuda') == torch.float16 and _default_amp_dtype('cpu') == torch.bfloat16
    assert isinstance(_make_scaler(None, torch.float16, 'cpu'), torch.amp.GradScaler)
    assert _make_scaler(None, torch.bfloat16, 'cpu') is None
    assert _make_scaler(False, torch.float16, 'cpu') is None
    assert isinstance(_make_scaler(True, torch.bfloat16, 'cpu'), torch.amp.GradScaler)
    with pytest.raises(ValueError, match='torch.float16 or torch.bfloat16'): MixedPrecision(dtype=torch.float64)
    with pytest.raises(TypeError, match='scaler must be'): MixedPrecision(scaler='yes')


def test_scaler_skips_overflowing_steps_and_logs_unscaled_losses(digits, tmp_path):
    "The CUDA path (float16 and a GradScaler), run on the CPU: an absurd first scale overflows and is halved."
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**40, growth_interval=10**6)
    learn = digits_learner(digits, tmp_path, cbs=MixedPrecision(torch.float16, scaler=scaler))
    w0 = params(learn)
    after_first = probe('after_batch', params)
    dtypes = probe('after_pred', lambda l: l.pred.dtype)
    quiet_fit(learn, 4, lr=3e-3, cbs=[after_first, dtypes])
    assert set(dtypes.seen) == {torch.float16}
    assert all(torch.equal(a, b) for a, b in zip(after_first.seen[0], w0))     # the first step was skipped
    assert scaler.get_scale() <= 2.**22                                        # and the scale came down
    assert max(learn.recorder.losses) < 5                                     # the Recorder logged L, not s*L
    assert learn.recorder.values[-1][2] > 0.9


def test_scaler_unscales_before_gradient_clip(digits, tmp_path):
    "GradientClip must see the true gradients: each step then moves the weights by lr * (a norm of at most max_norm)."
    scaler = torch.amp.GradScaler('cpu', init_scale=2.**12)
    learn = digits_learner(digits, tmp_path, opt_func=SGD, cbs=[MixedPrecision(torch.float16, scaler=scaler), GradientClip(0.1)])
    norms = probe('after_backward', grad_norm, order=30)
    before, after = probe('before_batch', params), probe('after_batch', params)
    dtypes = probe('after_pred', lambda l: l.pred.dtype)
    quiet_fit(learn, 1, lr=0.5, cbs=[norms, before, after, dtypes])
    assert set(dtypes.seen) == {torch.float16}
    assert norms.seen and max(norms.seen) <= 0.1 + 1e-6
    moves = [float(torch.linalg.vector_norm(torch.stack([(a - b).norm() for a, b in zip(wa, wb)])))
             for wb, wa in zip(before.seen, after.seen)]
    assert max(moves) == pytest.approx(0.5 * 0.1, rel=1e-3)                 # clipped in true units, not in scaled ones


# ---------------------------------------------------------------- GradientClip
def test_gradient_clip_caps_the_norm_at_the_step(digits, tmp_path):
    raw = tuple(TensorDataset(ds.tensors[0] * 16, ds.tensors[1]) for ds in digits)     # unscaled pixels: big gradients
    norms = {}
    for clip in (None, 5.):
        learn = digits_learner(raw, tmp_path, opt_func=SGD, cbs=[GradientClip(clip)] if clip else [])
        seen = probe('before_step', grad_norm)
        quiet_fit(learn, 1, lr=0.1, cbs=seen)
        norms[clip] = seen.seen
    assert max(norms[None]) > 5                          # it was above max_norm without the callback
    assert max(norms[5.]) <= 5 + 1e-6                     # and never is with it
    with pytest.raises(ValueError, match='max_norm'): GradientClip(-1)
    with pytest.raises(ValueError, match='norm_type'): GradientClip(1, norm_type=0)


def test_gradient_clip_infinity_norm(digits, tmp_path):
    learn = digits_learner(digits, tmp_path, opt_func=SGD, cbs=GradientClip(1e-3, norm_type=math.inf))
    seen = probe('before_step', lambda l: max(float(p.grad.abs().max()) for p in l.model.parameters()))
    quiet_fit(learn, 1, lr=0.1, cbs=seen)
    assert max(seen.seen) <= 1e-3 + 1e-9


# ---------------------------------------------------------------- GradientAccumulation
def small_data(n=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)

def batches(x, y, bs): return [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)]

def accumulation_pair(opt_func, n_epoch=1, extra=(), bs=8, n_acc=4):
    "The same model trained on 100 items: batches of `bs * n_acc`, and batches of `bs` accumulated by `n_acc`."
    x, y = small_data()
    res = []
    for bs, cbs in ((bs * n_acc, []), (bs, [GradientAccumulation(n_acc)])):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
        learn = Learner(DataLoaders(batches(x, y, bs)), model, F.cross_entropy, opt_func=opt_func, lr=0.3,
                        cbs=cbs + [e() for e in extra])
        losses = probe('after_loss', lambda l: l.loss.item(), order=-100)
        steps = probe('after_step', lambda l: l.iter)
        quiet_fit(learn, n_epoch, cbs=[losses, steps])
        res.append((learn, losses.seen, steps.seen))
    return res

@pytest.mark.parametrize('opt_func', [SGD, partial(SGD, mom=0.9), torch.optim.SGD, partial(torch.optim.SGD, momentum=0.9)],
                         ids=['fastnote SGD', 'fastnote SGD mom', 'torch SGD', 'torch SGD momentum'])
def test_accumulation_equals_the_large_batch(opt_func):
    (big, _, big_steps), (acc, acc_losses, acc_steps) = accumulation_pair(opt_func, n_epoch=2)
    assert len(big_steps) == len(acc_steps) == 8                  # 4 steps an epoch: 32, 32, 32 and the short 4
    assert acc_steps[:4] == [3, 7, 11, 12]                         # the last batch of the epoch steps with what it has
    for p, q in zip(big.model.parameters(), acc.model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    assert acc.recorder.losses == acc_losses                      # each small batch's own mean loss was logged
    assert len(acc.recorder.losses) == 26

def test_accumulation_weights_batches_by_their_items():
    "Batches of 12 by 3 on 100 items: the last group is 12 + 12 + 4, so a plain mean over batches would be wrong."
    (big, _, big_steps), (acc, _, acc_steps) = accumulation_pair(SGD, n_epoch=2, bs=12, n_acc=3)
    assert acc_steps == [2, 5, 8] * 2 and len(big_steps) == 6
    for p, q in zip(big.model.parameters(), acc.model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_accumulation_without_the_callback_differs():
    "The comparison above can fail: without accumulation the small batches take 13 steps, not 4."
    x, y = small_data()
    torch.manual_seed(0)
    learn = Learner(DataLoaders(batches(x, y, 8)), nn.Linear(6, 3), F.cross_entropy, opt_func=SGD, lr=0.3)
    steps = probe('after_step', lambda l: l.iter)
    quiet_fit(learn, 1, cbs=steps)
    assert len(steps.seen) == 13


def test_accumulation_composes_with_clipping():
    "GradientClip sees the group's mean gradient (not partial sums): the same as clipping the large batch."
    (big, _, _), (acc, _, _) = accumulation_pair(SGD, extra=[partial(GradientClip, 0.05)])
    for p, q in zip(big.model.parameters(), acc.model.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)


def test_accumulation_on_data_without_length_warns_and_drops_the_rest():
    class NoLen:
        def __init__(self, bs): self.b = batches(*small_data(), bs)
        def __iter__(self): return iter(self.b)
    learn = Learner(DataLoaders(NoLen(8)), nn.Linear(6, 3), F.cross_entropy, opt_func=SGD, lr=0.3, cbs=GradientAccumulation(4))
    steps = probe('after_step', lambda l: l.iter)
    with pytest.warns(UserWarning, match=r'the last 1 batches of epoch 0 were dropped'): quiet_fit(learn, 1, cbs=steps)
    assert steps.seen == [3, 7, 11]
    assert all(p.grad is None or not p.grad.any() for p in learn.model.parameters())
    with pytest.raises(ValueError, match='n_acc'): GradientAccumulation(0)


# ---------------------------------------------------------------- TrackerCallback, EarlyStoppingCallback
class Scripted(Metric):
    "A metric whose value at each validation pass is the next number of `script`."
    def __init__(self, script, name='score'): self.script, self.n, self._name = list(script), 0, name
    @property
    def value(self):
        self.n += 1
        return self.script[self.n - 1]
    @property
    def name(self): return self._name

class WriteValid(Callback):
    "Overwrites the Recorder's valid_loss of each epoch with `script[epoch]` (between the Recorder and the trackers)."
    order = 55
    def __init__(self, script): self.script = script
    def after_epoch(self): self.learn.recorder.values[-1][1] = self.script[self.learn.epoch]

def stop_after(digits, path, script, monitor='score', **kwargs):
    "How many epochs a fit of `len(script)` epochs ran with EarlyStoppingCallback on the scripted values."
    if monitor == 'score': learn, extra = digits_learner(digits, path, metrics=Scripted(script)), []
    else: learn, extra = digits_learner(digits, path), [WriteValid(script)]
    quiet_fit(learn, len(script), cbs=extra + [EarlyStoppingCallback(monitor, **kwargs)])
    return len(learn.recorder.values)

@pytest.mark.parametrize('script,kwargs,expected', [
    ([0.1, 0.2, 0.3, 0.3, 0.25, 0.4, 0.5], dict(patience=2), 5),
    ([0.1, 0.2, 0.3, 0.3, 0.35, 0.3, 0.34, 0.2], dict(patience=2), 7),      # 0.35 resets the count
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dict(), 6),                            # improving: never stops
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dict(min_delta=0.05), 6),
    ([0.5, 0.52, 0.6, 0.61, 0.7], dict(min_delta=0.05), 2),                 # +0.02 is no improvement
    ([0.5, 0.4, 0.3], dict(comp=lambda a, b: a < b), 3),                    # a comp of our own: lower is better
    ([0.5, 0.6, 0.3], dict(comp=lambda a, b: a < b), 2),
    ([0.5, float('nan'), 0.6], dict(patience=2), 3),                        # NaN is no improvement
    ([0.5, float('nan'), 0.4, 0.6], dict(patience=1), 2),
])
def test_early_stopping_on_a_higher_is_better_metric(digits, tmp_path, script, kwargs, expected):
    assert stop_after(digits, tmp_path, script, **kwargs) == expected

@pytest.mark.parametrize('script,kwargs,expected', [
    ([1.0, 0.9, 0.8, 0.85, 0.7, 0.75, 0.76], dict(patience=2), 7),
    ([1.0, 0.9, 0.8, 0.85, 0.86, 0.6], dict(patience=2), 5),
    ([1.0, 0.9, 0.8, 0.7, 0.6], dict(patience=1), 5),
    ([1.0, 0.95, 0.93, 0.92], dict(min_delta=0.03), 3),
])
def test_early_stopping_on_the_validation_loss(digits, tmp_path, script, kwargs, expected):
    assert stop_after(digits, tmp_path, script, monitor='valid_loss', **kwargs) == expected

def test_tracker_directions_and_errors(digits, tmp_path):
    for name, lower in (('valid_loss', True), ('train_loss', True), ('error_rate', True), ('accuracy', False), ('f1', False)):
        t = TrackerCallback(name)
        t.best = 0.5
        assert t.improved(0.4) is lower and t.improved(0.6) is not lower, name
    learn = digits_learner(digits, tmp_path, cbs=EarlyStoppingCallback('acc'))
    with pytest.raises(ValueError, match=r"'acc'.*\['train_loss', 'valid_loss', 'accuracy'\]"): quiet_fit(learn, 1)
    with pytest.raises(ValueError, match='patience'): EarlyStoppingCallback(patience=0)
    with pytest.raises(ValueError, match='min_delta'): EarlyStoppingCallback(min_delta=-1)

def test_early_stopping_message(digits, tmp_path, capsys):
    learn = digits_learner(digits, tmp_path, metrics=Scripted([0.3, 0.2]))
    stop = EarlyStoppingCallback('score')
    quiet_fit(learn, 2, cbs=stop)
    assert stop.stopped_epoch == 1 and stop.best_epoch == 0
    assert 'score has not improved for 1 epoch (best 0.3 at epoch 0): training stopped after epoch 1' in capsys.readouterr().out


# ---------------------------------------------------------------- SaveModelCallback
def test_save_model_ends_with_the_best_epochs_weights(digits, tmp_path):
    learn = digits_learner(digits, tmp_path)
    weights = probe('after_epoch', params, order=65)
    save = SaveModelCallback(fname='best')
    quiet_fit(learn, 5, cbs=[WriteValid([1.0, 0.5, 0.4, 0.7, 0.9]), save, weights])   # worse in the last epochs
    assert save.best_epoch == 2 and save.best == 0.4
    assert (tmp_path/'models'/'best.pth').exists()
    for p, q in zip(learn.model.parameters(), weights.seen[2]): assert torch.equal(p, q)
    assert not all(torch.equal(p, q) for p, q in zip(weights.seen[4], weights.seen[2]))   # the last epoch's differ

def test_save_model_monitoring_a_metric(digits, tmp_path):
    learn = digits_learner(digits, tmp_path, metrics=Scripted([0.8, 0.9, 0.85]))
    weights = probe('after_epoch', params, order=65)
    quiet_fit(learn, 3, cbs=[SaveModelCallback('score', with_opt=False), weights])
    for p, q in zip(learn.model.parameters(), weights.seen[1]): assert torch.equal(p, q)
    assert 'opt' not in torch.load(tmp_path/'models'/'model.pth', weights_only=True)

def test_save_model_every_epoch_keeps_all_and_loads_none(digits, tmp_path):
    learn = digits_learner(digits, tmp_path)
    weights = probe('after_epoch', params, order=65)
    quiet_fit(learn, 3, cbs=[WriteValid([0.1, 0.5, 0.9]), SaveModelCallback(fname='e', every_epoch=True), weights])
    assert sorted(p.name for p in (tmp_path/'models').iterdir()) == ['e_0.pth', 'e_1.pth', 'e_2.pth']
    for p, q in zip(learn.model.parameters(), weights.seen[2]): assert torch.equal(p, q)

def test_save_model_does_not_load_a_file_this_fit_did_not_write(digits, tmp_path):
    learn = digits_learner(digits, tmp_path)
    learn.save('model')                                      # an old file of the same name
    quiet_fit(learn, 1)
    trained = params(learn)
    class StopNow(Callback):
        def before_epoch(self): raise CancelFitException()
    quiet_fit(learn, 2, cbs=[StopNow(), SaveModelCallback()])
    assert all(torch.equal(p, q) for p, q in zip(learn.model.parameters(), trained))


# ---------------------------------------------------------------- CSVLogger
def test_csv_logger_rows_equal_the_recorder(digits, tmp_path):
    learn = digits_learner(digits, tmp_path)
    log = CSVLogger()
    rows_during = probe('after_epoch', lambda l: len((tmp_path/'history.csv').read_text().splitlines()), order=60, train_only=False)
    quiet_fit(learn, 3, cbs=[log, rows_during])
    assert rows_during.seen == [2, 3, 4]                              # flushed: each row is in the file at once
    with open(tmp_path/'history.csv', newline='') as f: raw = list(csv.reader(f))
    assert raw[0] == learn.recorder.metric_names
    rows = log.read_log()
    assert [[r[n] for n in learn.recorder.metric_names[1:-1]] for r in rows] == learn.recorder.values
    assert [r['epoch'] for r in rows] == [0, 1, 2]
    assert [r['time'] for r in rows] == learn.recorder.epoch_times
    assert log.file_path == tmp_path/'history.csv'

def test_csv_logger_append(digits, tmp_path):
    learn = digits_learner(digits, tmp_path)
    quiet_fit(learn, 2, cbs=CSVLogger('log.csv'))
    quiet_fit(learn, 1, cbs=CSVLogger('log.csv', append=True))
    lines = (tmp_path/'log.csv').read_text().splitlines()
    assert len(lines) == 4 and sum('train_loss' in l for l in lines) == 1
    quiet_fit(learn, 1, cbs=CSVLogger('log.csv'))                     # append=False starts anew
    assert len((tmp_path/'log.csv').read_text().splitlines()) == 2
    other = digits_learner(digits, tmp_path, metrics=[])
    with pytest.raises(ValueError, match='has the columns'): quiet_fit(other, 1, cbs=CSVLogger('log.csv', append=True))
    quiet_fit(other, 1, cbs=CSVLogger('new.csv', append=True))        # append to a missing file: header first
    assert (tmp_path/'new.csv').read_text().startswith('epoch,train_loss,valid_loss,time')

def test_csv_logger_closes_the_file_after_an_error(digits, tmp_path):
    class Boom(Callback):
        order = 58
        def after_epoch(self):
            if self.learn.epoch == 1: raise RuntimeError('boom')
    learn, log = digits_learner(digits, tmp_path), CSVLogger()
    files = probe('after_epoch', lambda l: l.csv_logger._file, order=60, train_only=False)   # opened at the first row
    with pytest.raises(RuntimeError, match='boom'): quiet_fit(learn, 3, cbs=[log, Boom(), files])
    assert files.seen[0].closed
    assert [r['epoch'] for r in log.read_log()] == [0, 1]              # the rows written before the error stay


# ---------------------------------------------------------------- TerminateOnNaNCallback
class NaNAt(nn.Module):
    "A linear model whose output becomes NaN from its `k+1`-th training forward pass on (`value=None`: it only counts)."
    def __init__(self, k, value=float('nan')):
        super().__init__()
        self.lin, self.k, self.value, self.calls = nn.Linear(64, 10), k, value, 0
    def forward(self, x):
        out = self.lin(x)
        if self.training:
            self.calls += 1
            if self.calls > self.k and self.value is not None: out = out * self.value
        return out

def inf_loss_after(model):
    "Cross-entropy that becomes infinite once `model` is past its `k`-th training batch."
    def loss(pred, y):
        l = F.cross_entropy(pred, y)
        return l * math.inf if model.training and model.calls > model.k else l
    return loss

class SavesAfterBatch(Callback):
    "What a per-batch checkpoint would keep: the loss it sees at `after_batch`."
    order = 0
    def before_fit(self): self.losses = []
    def after_batch(self):
        if self.learn.training: self.losses.append(float(self.learn.loss))

@pytest.mark.parametrize('k,kind', [(3, 'nan'), (5, 'infinite'), (30, 'nan')])
def test_terminate_on_nan_stops_at_the_bad_batch(digits, tmp_path, k, kind):
    torch.manual_seed(0)
    model = NaNAt(k, float('nan') if kind == 'nan' else None)
    loss_func = F.cross_entropy if kind == 'nan' else inf_loss_after(model)
    learn = Learner(DataLoaders.from_dsets(*digits, bs=64, seed=0), model, loss_func, opt_func=SGD,
                    path=tmp_path, cbs=TerminateOnNaNCallback())
    steps, saver = probe('after_step', params), SavesAfterBatch()
    with pytest.warns(UserWarning) as caught: quiet_fit(learn, 3, cbs=[steps, saver])
    epoch, batch = divmod(k, len(learn.dls.train))
    msg = [str(w.message) for w in caught if 'training stopped' in str(w.message)]
    assert msg == [f"loss is {kind} at epoch {epoch}, training batch {batch} (iteration {k}): training stopped"]
    assert model.calls == k + 1                                    # no batch ran after the bad one
    assert len(learn.recorder.losses) == k and all(math.isfinite(l) for l in learn.recorder.losses)
    assert saver.losses == learn.recorder.losses                  # a callback at after_batch never saw the bad loss
    assert len(steps.seen) == k + 1                                # the bad batch's step happened, no later one
    for p, q in zip(learn.model.parameters(), steps.seen[-1]): torch.testing.assert_close(p.detach(), q, equal_nan=True)
    assert learn.terminate_on_nan.stopped_at == dict(epoch=epoch, batch=batch, iteration=k)

def test_without_terminate_on_nan_training_goes_on(digits, tmp_path):
    torch.manual_seed(0)
    learn = Learner(DataLoaders.from_dsets(*digits, bs=64, seed=0), NaNAt(3), F.cross_entropy, opt_func=SGD, path=tmp_path)
    quiet_fit(learn, 1)
    assert learn.model.calls == len(learn.dls.train) and math.isnan(learn.recorder.losses[-1])


# ---------------------------------------------------------------- all together
def test_all_callbacks_together(digits, tmp_path):
    learn = digits_learner(digits, tmp_path, bs=16, cbs=[
        EarlyStoppingCallback(patience=2), CSVLogger(), GradientClip(1.), SaveModelCallback(), MixedPrecision(),
        TerminateOnNaNCallback(), GradientAccumulation(4)])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(3, 1e-2)
    assert learn.recorder.values[-1][2] > 0.9
    assert len(learn.csv_logger.read_log()) == len(learn.recorder.values)
    assert not torch.is_autocast_enabled('cpu')


def test_csv_logger_appending_after_a_cut_row_drops_it(digits, tmp_path):
    "A last row cut short (no line end: a full disk, a kill) would be glued to the next run's first row; it is dropped, with a warning."
    quiet_fit(digits_learner(digits, tmp_path), 1, cbs=CSVLogger('log.csv'))
    good = (tmp_path/'log.csv').read_text()
    with open(tmp_path/'log.csv', 'a') as f: f.write('1,0.52,0.4')                # the start of a row, cut
    log = CSVLogger('log.csv', append=True)
    with pytest.warns(UserWarning, match=r"the last row of .*log.csv was cut short \(b'1,0.52,0.4'\)"):
        quiet_fit(digits_learner(digits, tmp_path), 1, cbs=log)
    text = (tmp_path/'log.csv').read_text()
    assert text.startswith(good) and len(text.splitlines()) == 3 and [r['epoch'] for r in log.read_log()] == [0, 0]
