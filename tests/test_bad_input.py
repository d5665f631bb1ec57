"""Bad input gets a clear error: the right exception type, and a message that names the offending value and what was
expected, raised before anything deep inside torch fails. Plus property tests over hyper-parameters and shapes."""
import math, re, warnings
from functools import partial
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hypothesis import given, settings, strategies as st, HealthCheck

from fastnote import (Learner, DataLoaders, Callback, Adam, SGD, ParamScheduler, SchedNo, CheckpointCallback,
                      SaveModelCallback, CSVLogger, combine_scheds, set_opt_hypers, accuracy)


def batches(n=3, bs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 4, generator=g), torch.randint(0, 3, (bs,), generator=g)) for _ in range(n)]


def learner(train=None, model=None, loss=F.cross_entropy, **kw):
    torch.manual_seed(0)
    learn = Learner(DataLoaders(batches() if train is None else train, batches(1, seed=1)),
                    nn.Linear(4, 3) if model is None else model, loss, **kw)
    learn.progress.show_table = False
    return learn


CASES = {
    'empty training data': (lambda: learner(train=[]).fit(1), ValueError, r'the training data has no batches: dls.train is \[\]'),
    'a batch that is not a tuple': (lambda: learner(train=[torch.zeros(8, 4)]).fit(1), TypeError,
                                    r'a batch must be a non-empty tuple or list \(inputs..., target\), got Tensor'),
    'an empty batch': (lambda: learner(train=[()]).fit(1), TypeError, r'a batch must be a non-empty tuple .* got tuple: \(\)'),
    'a loss that is not a scalar': (lambda: learner(loss=partial(F.cross_entropy, reduction='none')).fit(1), ValueError,
                                    r'the loss must be one number to backpropagate, got a tensor of shape \(8,\)'),
    'a model with no parameters': (lambda: learner(model=nn.ReLU()).fit(1), ValueError,
                                   r'the model has no parameters to train .* in ReLU'),
    'a model with all parameters frozen': (lambda: learner(model=nn.Linear(4, 3).requires_grad_(False)).fit(1), ValueError,
                                           r'the model has no parameters to train'),
    'lr of the wrong type': (lambda: learner().fit(1, lr='fast'), TypeError, r"lr must be a real number, got 'fast' of type str"),
    'a negative lr': (lambda: learner(lr=-0.1), ValueError, r'lr must be >= 0, got -0.1'),
    'a NaN lr': (lambda: learner().fit(1, lr=float('nan')), ValueError, r'lr must be a finite number, got nan'),
    'n_epoch of the wrong type': (lambda: learner().fit(1.5), TypeError, r'n_epoch must be an integer, got 1.5 of type float'),
    'n_epoch True': (lambda: learner().fit(True), TypeError, r'n_epoch must be an integer, got True of type bool'),
    'a negative n_epoch': (lambda: learner().fit(-2), ValueError, r'n_epoch must be >= 0, got -2'),
    'a negative wd': (lambda: learner().fit(1, wd=-1e-2), ValueError, r'wd must be >= 0, got -0.01'),
    'momentum out of range': (lambda: learner().fit_one_cycle(1, moms=(0.95, 1.5, 0.95)), ValueError, r'mom must be in \[0, 1\), got 1.5'),
    'an unknown hyper in a schedule': (lambda: learner().fit(1, cbs=ParamScheduler({'beta1': SchedNo(0.9, 0.9)})), ValueError,
                                       r"ParamScheduler: \w+ has no hyper-parameter 'beta1'; it has \["),
    'an unknown hyper for a torch optimizer': (lambda: set_opt_hypers(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), sqr_mom=0.9),
                                               ValueError, r"SGD has no hyper-parameter 'sqr_mom'"),
    'pct_start of 0': (lambda: learner().fit_one_cycle(1, pct_start=0), ValueError, r'pct_start must be in \(0, 1\), got 0'),
    'pct_start above 1': (lambda: learner().fit_flat_cos(1, pct_start=1.2), ValueError, r'pct_start must be in \(0, 1\), got 1.2'),
    'div of 0': (lambda: learner().fit_one_cycle(1, div=0), ValueError, r'div must be > 0, got 0'),
    'pcts that do not add up to 1': (lambda: combine_scheds([0.5, 0.6], [SchedNo(1, 1)] * 2), ValueError,
                                     r'pcts must be >= 0 and add up to 1, got \[0.5, 0.6\]'),
    'a cycle length of 0': (lambda: learner().fit_sgdr(2, 0), ValueError, r'cycle_len must be >= 1, got 0'),
    'dls without train and valid': (lambda: Learner(batches(), nn.Linear(4, 3), F.cross_entropy), TypeError,
                                    r'dls must have .train and .valid .* got list'),
    'a model that is not a Module': (lambda: Learner(DataLoaders(batches()), lambda x: x, F.cross_entropy), TypeError,
                                     r'model must be a torch.nn.Module, got function'),
    'a loss that is not callable': (lambda: Learner(DataLoaders(batches()), nn.Linear(4, 3), 'mse'), TypeError,
                                    r"loss_func must be callable, got 'mse'"),
    'a metric that is not callable': (lambda: learner(metrics=['accuracy']).fit(1), TypeError,
                                      r"a metric must be a function metric\(pred, \*yb\) or a Metric, got 'accuracy'"),
    'a callback that is not a Callback': (lambda: learner(cbs=[print]), TypeError, r'callbacks must be Callback instances or classes, got <built-in function print>'),
    'an opt_func that makes no optimizer': (lambda: learner(opt_func=lambda ps, lr: None).fit(1), TypeError,
                                            r'opt_func must return a torch.optim.Optimizer, .* returned a NoneType'),
    'an unknown event': (lambda: learner()('after_everything'), ValueError, r"unknown event 'after_everything'"),
    'training data that is not iterable': (lambda: DataLoaders(42), TypeError, r'DataLoaders: train must be an iterable of batches, got int: 42'),
    'every_n_batches of 0': (lambda: CheckpointCallback(every_n_batches=0), ValueError, r'every_n_batches must be >= 1, got 0'),
    'a checkpoint that does not exist': (lambda: learner().fit(1, resume_from='nowhere'), FileNotFoundError, r'no saved file at .*nowhere.pth'),
    # a name is a name: none of these may write outside learn.path/model_dir, or as '.pth' / 'None.pth'
    'save to a parent folder': (lambda: learner().save('../x'), ValueError, r"a file name '\.\./x' is not a plain name"),
    'save to an absolute path as a str': (lambda: learner().save('/abs/x'), ValueError, r"'/abs/x' is not a plain name"),
    'save with an empty name': (lambda: learner().save(''), ValueError, r"a file name '' is not a plain name"),
    'save with no name': (lambda: learner().save(None), TypeError, r'a file name must be a str \(or a pathlib.Path'),
    'load from a parent folder': (lambda: learner().load('../x'), ValueError, r"'\.\./x' is not a plain name"),
    'SaveModelCallback escaping': (lambda: SaveModelCallback(fname='../escape'), ValueError, r"SaveModelCallback: fname '\.\./escape' is not a plain name"),
    'SaveModelCallback given a path': (lambda: SaveModelCallback(fname=Path('m')), TypeError, r'SaveModelCallback: fname must be a name'),
    'CheckpointCallback escaping': (lambda: CheckpointCallback(fname='../../escape'), ValueError, r"CheckpointCallback: fname '\.\./\.\./escape' is not a plain name"),
    'CSVLogger escaping': (lambda: CSVLogger('sub/../../h.csv'), ValueError, r"CSVLogger: fname 'sub/\.\./\.\./h.csv' is not a plain name"),
}

@pytest.mark.parametrize('case', CASES)
def test_bad_input_is_named(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make, exc, message = CASES[case]
    with pytest.raises(exc, match=message): make()


def test_at_least_twenty_cases():
    assert len(CASES) >= 20


def test_a_metric_that_raises_keeps_its_type_and_is_named():
    def bad_metric(pred, targ): raise ZeroDivisionError('no items')
    learn = learner(metrics=[accuracy, bad_metric])
    with pytest.raises(ZeroDivisionError, match='no items') as info: learn.fit(1)
    assert any("raised in metric 'bad_metric' (Recorder, at event after_batch (epoch 0, validation batch 0))" in n
               for n in info.value.__notes__), info.value.__notes__
    learn.metrics = [accuracy]
    learn.fit(1)                                                  # and the Learner still trains
    assert learn.recorder.values[-1][2] is not None


def test_a_misspelled_event_method_is_warned_about():
    class Typo(Callback):
        def after_batchs(self): pass
        def before_fitt(self): pass
        def before_anything(self): pass
        def helper(self): pass
    with pytest.warns(UserWarning) as caught: learner(cbs=Typo())
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 3
    assert "Typo.after_batchs looks like an event handler, but 'after_batchs' is not an event, so it will never run; did you mean 'after_batch'?" in messages
    assert any("'before_fitt'" in m and "did you mean 'before_fit'?" in m for m in messages)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        learner(cbs=Callback())                                  # a correct callback: no warning


# ---------------------------------------------------------------- property tests
HYPER_FIELDS = {'lr': st.floats(1e-6, 1.), 'mom': st.floats(0., 0.999), 'sqr_mom': st.floats(0., 0.9999),
                'eps': st.floats(1e-10, 1e-2), 'wd': st.floats(0., 0.5)}
shapes = st.lists(st.integers(1, 5), min_size=1, max_size=3)

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hypers=st.fixed_dictionaries(HYPER_FIELDS), shape=shapes, seed=st.integers(0, 2**16))
def test_any_valid_hypers_and_shapes_train(hypers, shape, seed):
    "With any valid hyper-parameters and parameter shapes, a Learner with fastnote's Adam steps to finite weights."
    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(seed)
            self.w = nn.Parameter(torch.randn(*shape))
        def forward(self, x): return x * self.w.sum()
    g = torch.Generator().manual_seed(seed)
    data = [(torch.randn(4, 1, generator=g), torch.randn(4, 1, generator=g))]      # one step: it must move the weights
    learn = Learner(DataLoaders(data), Model(), F.mse_loss, opt_func=partial(Adam, **{k: v for k, v in hypers.items() if k != 'lr'}),
                    lr=hypers['lr'])
    learn.progress.show_table = False
    before = learn.model.w.detach().clone()
    learn.fit(1)
    assert torch.isfinite(learn.model.w).all() and learn.model.w.shape == tuple(shape)
    assert learn.recorder.hps['mom'] == [hypers['mom']] and learn.recorder.hps['lr'] == [hypers['lr']]
    assert not torch.equal(before, learn.model.w) or hypers['lr'] < 1e-5


bad_values = {'lr': st.one_of(st.floats(max_value=-1e-12, allow_nan=False), st.just(math.inf), st.just(math.nan)),
              'mom': st.one_of(st.floats(min_value=1., allow_nan=False, allow_infinity=False), st.floats(max_value=-1e-12, allow_nan=False)),
              'wd': st.floats(max_value=-1e-12, allow_nan=False),
              'eps': st.floats(max_value=-1e-12, allow_nan=False)}

@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_invalid_hyper_is_refused_by_name(data):
    name = data.draw(st.sampled_from(sorted(bad_values)))
    value = data.draw(bad_values[name])
    learn = learner()
    with pytest.raises(ValueError, match=rf'^{name} must be .*, got {re.escape(repr(value))}'):
        if name == 'lr': learn.fit(1, lr=value)
        elif name == 'wd': learn.fit(1, wd=value)
        else: learn.fit(1, cbs=ParamScheduler({name: SchedNo(value, value)}))


def test_a_nan_loss_stops_training_naming_the_iteration_and_keeps_the_last_good_checkpoint(tmp_path):
    from fastnote import TerminateOnNaNCallback, load_checkpoint
    class Poison(Callback):
        "From training batch 7 on, the model's output is NaN."
        order = -10
        def after_pred(self):
            if self.learn.training and self.learn.train_iter >= 6: self.learn.pred = self.learn.pred * float('nan')
    learn = learner(train=batches(4), path=tmp_path)
    with pytest.warns(UserWarning, match=r'loss is nan at epoch 1, training batch 2 \(iteration 6\)'):
        learn.fit(3, cbs=[TerminateOnNaNCallback(), CheckpointCallback(every_n_batches=1), Poison()])
    assert learn.train_iter == 7 and len(learn.recorder.values) == 1        # stopped in the second epoch
    ck = load_checkpoint(tmp_path/'models'/'checkpoint.pth')
    assert ck['train_iter'] == 6 and all(torch.isfinite(v).all() for v in ck['model'].values())
    resumed = learner(train=batches(4), path=tmp_path)
    resumed.fit(3, resume_from='checkpoint')                               # the last good state trains on
    assert all(torch.isfinite(p).all() for p in resumed.model.parameters())
