"""Bad input gets a clear error: the right exception type, and a message that names the offending value and what was
expected, raised before anything deep inside torch fails. Plus property tests over hyper-parameters and shapes."""
import math, re, warnings
import numpy as np
from functools import partial
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from hypothesis import given, settings, strategies as st, HealthCheck

from fastnote import (Learner, DataLoaders, Callback, Adam, SGD, ParamScheduler, SchedNo, SchedLin, SchedCos, SchedExp, SchedPoly,
                      CheckpointCallback, SaveModelCallback, CSVLogger, EarlyStoppingCallback, GradientClip, ProgressCallback,
                      DistributedTrainer, CheckpointError, combine_scheds, combined_cos, sgdr_sched, set_opt_hypers, accuracy, Optimizer, per_param)


def batches(n=3, bs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 4, generator=g), torch.randint(0, 3, (bs,), generator=g)) for _ in range(n)]


def learner(train=None, model=None, loss=F.cross_entropy, valid=None, **kw):
    torch.manual_seed(0)
    learn = Learner(DataLoaders(batches() if train is None else train, batches(1, seed=1) if valid is None else valid),
                    nn.Linear(4, 3) if model is None else model, loss, **kw)
    learn.progress.show_table = False
    return learn


def fitted(**kw):
    "A Learner trained one epoch (so that it has an optimizer with state), its checkpoint written to ./models/checkpoint.pth."
    learn = learner(**kw)
    learn.fit(1, cbs=CheckpointCallback())
    return learn


def two_groups(m): return [[m.weight], [m.bias]]


class NoBatches:
    "An iterable without len() that gives no batches."
    def __iter__(self): return iter([])


def callback_with(**attrs): return type('OddCallback', (Callback,), attrs)()


# Each case: (what to run, the exception type, a regex its message must match; the message names the bad value).
HYPER_CASES = {
    'lr of the wrong type': (lambda: learner().fit(1, lr='fast'), TypeError, r"lr must be a real number, got 'fast' of type str"),
    'a negative lr': (lambda: learner(lr=-0.1), ValueError, r'lr must be >= 0, got -0.1'),
    'a NaN lr': (lambda: learner().fit(1, lr=float('nan')), ValueError, r'lr must be a finite number, got nan'),
    'a one-value lr tensor of two values': (lambda: learner().fit(1, lr=torch.ones(2)), ValueError, r'lr: got 2 values \[1.0, 1.0\] for 1 param groups'),
    'n_epoch of the wrong type': (lambda: learner().fit(1.5), TypeError, r'n_epoch must be an integer, got 1.5 of type float'),
    'n_epoch True': (lambda: learner().fit(True), TypeError, r'n_epoch must be an integer, got True of type bool'),
    'n_epoch a float tensor': (lambda: learner().fit(torch.tensor(2.)), TypeError, r'n_epoch must be an integer, got tensor\(2.\) of type Tensor'),
    'a negative n_epoch': (lambda: learner().fit(-2), ValueError, r'n_epoch must be >= 0, got -2'),
    'a negative wd': (lambda: learner().fit(1, wd=-1e-2), ValueError, r'wd must be >= 0, got -0.01'),
    'a negative wd for the Learner': (lambda: learner(wd=-1), ValueError, r'wd must be >= 0, got -1'),
    'a wd of the wrong type for the Learner': (lambda: learner(wd='x'), TypeError, r"wd must be a real number, got 'x'"),
    'momentum out of range': (lambda: learner().fit_one_cycle(1, moms=(0.95, 1.5, 0.95)), ValueError, r'mom must be in \[0, 1\), got 1.5'),
    'one momentum for the Learner': (lambda: learner(moms=0.9), TypeError, r'moms must be three momentums \(start, middle, end\) .*got 0.9'),
    'two momentums for fit_one_cycle': (lambda: learner().fit_one_cycle(1, moms=(0.95, 0.85)), ValueError, r'moms must be three momentums .*got 2: \(0.95, 0.85\)'),
    'momentums as a string': (lambda: learner(moms='abc'), TypeError, r"moms must be three momentums .*got 'abc'"),
    'no path': (lambda: learner(path=None), TypeError, r'path must be a folder \(a str or a pathlib.Path\), got None'),
    'a number as model_dir': (lambda: learner(model_dir=3), TypeError, r'model_dir must be a folder .*got 3'),
    'train_bn as a string': (lambda: learner(train_bn='no'), TypeError, r"train_bn must be True or False, got 'no' of type str"),
    'compile as a string': (lambda: Adam([torch.zeros(2, requires_grad=True)], 1e-3, compile='yes'), TypeError, r"compile must be True or False, got 'yes'"),
    'compile with per-param steppers': (lambda: Optimizer([torch.zeros(2, requires_grad=True)], [per_param(lambda p, **_: None)], compile=True),
                                         ValueError, r'compile=True needs list steppers'),
    'reset_opt as a string': (lambda: learner().fit(1, reset_opt='no'), TypeError, r"reset_opt must be True or False, got 'no'"),
    'an unknown hyper in a schedule': (lambda: learner().fit(1, cbs=ParamScheduler({'beta1': SchedNo(0.9, 0.9)})), ValueError,
                                       r"ParamScheduler: \w+ has no hyper-parameter 'beta1'; it has \["),
    'an unknown hyper for a torch optimizer': (lambda: set_opt_hypers(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), sqr_mom=0.9),
                                               ValueError, r"SGD has no hyper-parameter 'sqr_mom'"),
    'an unknown hyper-parameter name': (lambda: Adam([nn.Parameter(torch.zeros(2))], lr=0.1, wd_=0.1), ValueError, r"Adam has no hyper-parameter 'wd_'"),
    'an unknown group key': (lambda: Adam([{'params': [nn.Parameter(torch.zeros(2))], 'lrr': 0.1}], lr=0.1), ValueError,
                             r"Adam has no hyper-parameter 'lrr'"),
    'an unknown hyper given to set_hyper': (lambda: Adam([nn.Parameter(torch.zeros(2))], lr=0.1).set_hyper('lrr', 0.1), ValueError,
                                            r"unknown hyper-parameter 'lrr'"),
    'pct_start of 0': (lambda: learner().fit_one_cycle(1, pct_start=0), ValueError, r'pct_start must be in \(0, 1\), got 0'),
    'pct_start above 1': (lambda: learner().fit_flat_cos(1, pct_start=1.2), ValueError, r'pct_start must be in \(0, 1\), got 1.2'),
    'div of 0': (lambda: learner().fit_one_cycle(1, div=0), ValueError, r'div must be > 0, got 0'),
    'a negative div_final': (lambda: learner().fit_one_cycle(1, div_final=-1), ValueError, r'div_final must be > 0, got -1'),
    'a cycle length of 0': (lambda: learner().fit_sgdr(2, 0), ValueError, r'cycle_len must be >= 1, got 0'),
    'a fractional cycle_mult': (lambda: learner().fit_sgdr(1, 1, cycle_mult=0.5), TypeError, r'cycle_mult must be an integer, got 0.5'),
    'an lr given to a resumed fit': (lambda: (fitted(), learner().fit(1, lr=0.5, resume_from='checkpoint')), ValueError,
                                     r"fit\(lr=0.5, resume_from='checkpoint'\): the run trained with lr 0.001, .* so lr=0.5 would be ignored"),
    'a wd given to a resumed fit': (lambda: (fitted(), learner().fit(1, wd=0.1, resume_from='checkpoint')), ValueError,
                                    r"fit\(wd=0.1, resume_from='checkpoint'\): the run trained with wd 0.01"),
    'a reversed lr_find range': (lambda: learner().lr_find(1, 1e-3, show_plot=False), ValueError,
                                 r'start_lr must be below end_lr, got start_lr=1 and end_lr=0.001'),
    'lr_find with num_it=0': (lambda: learner().lr_find(num_it=0, show_plot=False), ValueError, r'num_it must be >= 6, got 0'),
    'lr_find with a fractional num_it': (lambda: learner().lr_find(num_it=7.5, show_plot=False), TypeError, r'num_it must be an integer, got 7.5'),
    'lr_find from 0': (lambda: learner().lr_find(start_lr=0, show_plot=False), ValueError, r'start_lr must be > 0, got 0'),
    'lr_find to NaN': (lambda: learner().lr_find(end_lr=float('nan'), show_plot=False), ValueError, r'end_lr must be a finite number, got nan'),
    'lr_find stop_div as a string': (lambda: learner().lr_find(stop_div='no', show_plot=False), TypeError, r"stop_div must be True or False, got 'no'"),
    'lr_find with a suggestion that is not a function': (lambda: learner().lr_find(suggest_funcs=42, show_plot=False), TypeError,
                                                         r'suggest_funcs must be functions .* got 42'),
}

DATA_CASES = {
    'empty training data': (lambda: learner(train=[]).fit(1), ValueError, r'the training data has no batches: dls.train is \[\]'),
    'an iterable that gives no batches': (lambda: learner(train=NoBatches()).fit(1), ValueError,
                                          r'the training data gave no batches in epoch 0: dls.train is <.*NoBatches'),
    'a one-shot generator for several epochs': (lambda: learner(train=(b for b in batches())).fit(3), TypeError,
                                                r'dls.train is a one-shot iterator \(generator\): .* epochs 2 to 3 would train on nothing'),
    'a one-shot iterator to validate several epochs': (lambda: learner(valid=iter(batches(1))).fit(2), TypeError,
                                                      r'dls.valid is a one-shot iterator \(list_iterator\)'),
    'a batch that is not a tuple': (lambda: learner(train=[torch.zeros(8, 4)]).fit(1), TypeError,
                                    r'a batch must be a non-empty tuple or list \(inputs..., target\), got Tensor'),
    'an empty batch': (lambda: learner(train=[()]).fit(1), TypeError, r'a batch must be a non-empty tuple .* got tuple: \(\)'),
    'training batches without a target': (lambda: learner(train=[(x,) for x, _ in batches()]).fit(1), ValueError,
                                          r'training batch 0 has no target: it has 1 element'),
    'a batch of 0 items': (lambda: learner(train=batches(2) + [(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]).fit(1), ValueError,
                           r'training batch 2 has no items \(inputs of shape \(0, 4\)\): its loss would be NaN'),
    'a validation batch of 0 items': (lambda: learner(valid=[(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))]).fit(1), ValueError,
                                      r'validation batch 0 has no items'),
    'a string as the training data': (lambda: DataLoaders('abc'), TypeError, r"DataLoaders: train must be an iterable of batches, got str: 'abc'"),
    'training data that is not iterable': (lambda: DataLoaders(42), TypeError, r'DataLoaders: train must be an iterable of batches, got int: 42'),
    'dls without train and valid': (lambda: Learner(batches(), nn.Linear(4, 3), F.cross_entropy), TypeError,
                                    r'dls must have .train and .valid .* got list'),
    'a model that is not a Module': (lambda: Learner(DataLoaders(batches()), lambda x: x, F.cross_entropy), TypeError,
                                     r'model must be a torch.nn.Module, got function'),
    'a model with no parameters': (lambda: learner(model=nn.ReLU()).fit(1), ValueError, r'the model has no parameters to train .* in ReLU'),
    'a model with all parameters frozen': (lambda: learner(model=nn.Linear(4, 3).requires_grad_(False)).fit(1), ValueError,
                                           r'the model has no parameters to train'),
    'a loss that is not callable': (lambda: Learner(DataLoaders(batches()), nn.Linear(4, 3), 'mse'), TypeError, r"loss_func must be callable, got 'mse'"),
    'a loss that is not a scalar': (lambda: learner(loss=partial(F.cross_entropy, reduction='none')).fit(1), ValueError,
                                    r'the loss must be one number to backpropagate, got a tensor of shape \(8,\)'),
    'a loss that returns a float': (lambda: learner(loss=lambda p, y: 1.0).fit(1), TypeError,
                                    r'the loss function must return a tensor computed from the predictions, got 1.0 of type float'),
    'a loss that returns None': (lambda: learner(loss=lambda p, y: None).fit(1), TypeError, r'must return a tensor .*got None of type NoneType'),
    'a detached loss': (lambda: learner(loss=lambda p, y: F.cross_entropy(p, y).detach()).fit(1), ValueError,
                        r"the loss tensor\(\d\.\d+\) does not depend on the model's parameters \(it has no grad_fn\)"),
    'a metric that is not callable': (lambda: learner(metrics=['accuracy']).fit(1), TypeError,
                                      r"a metric must be a function metric\(pred, \*yb\) or a Metric, got 'accuracy'"),
    'a metric that returns a vector': (lambda: learner(metrics=[lambda p, y: (p.argmax(-1) == y).float()]).fit(1), ValueError,
                                       r"metric '<lambda>' must return one number per batch .*got a tensor of shape \(8,\)"),
    'a metric that returns None': (lambda: learner(metrics=[lambda p, y: None]).fit(1), TypeError,
                                   r"metric '<lambda>' must return one number per batch .*got None of type NoneType"),
    'predict on a batch': (lambda: learner().predict(torch.zeros(2, 4)), ValueError,
                           r"one item's output has shape \(2, 3\), which holds 2 predictions: predict takes one item without its batch dimension"),
    'predict on an item of the wrong shape': (lambda: learner().predict(torch.zeros(5)), ValueError,
                                              r'predict: the model cannot take one item of shape \(5,\)'),
    'predict on a string': (lambda: learner().predict('abc'), TypeError, r"predict takes one input: .* got 'abc' of type str"),
    "get_preds with act='softmax'": (lambda: learner().get_preds(act='softmax'), TypeError,
                                     r"act must be a function applied to the predictions, .* got 'softmax'"),
    'get_preds with_input as a string': (lambda: learner().get_preds(with_input='yes'), TypeError, r"with_input must be True or False, got 'yes'"),
    'validate a number': (lambda: learner().validate(dl=42), TypeError, r'dl must be an iterable of batches, like dls.valid, got int: 42'),
    'get_preds of a number': (lambda: learner().get_preds(dl=42), TypeError, r'dl must be an iterable of batches, .*got int: 42'),
    'validate no batches': (lambda: learner().validate(dl=[]), ValueError, r'no batches to evaluate: dl is \[\]'),
    'get_preds without validation data': (lambda: learner(valid=[]).get_preds(), ValueError, r'no batches to evaluate: dl is \[\]'),
}

SCHEDULE_CASES = {
    'a schedule past the end': (lambda: SchedLin(0, 1)(1.5), ValueError, r'SchedLin\(0, 1\): position 1.5 is past the end of training \(1\)'),
    'a schedule before the start': (lambda: SchedCos(0, 1)(-0.1), ValueError, r'SchedCos\(0, 1\): position -0.1 is before the start of training \(0\)'),
    'combined phases past the end': (lambda: combine_scheds([0.5, 0.5], [SchedNo(1, 1)] * 2)(1.5), ValueError,
                                     r'combine_scheds: position 1.5 is past the end of training'),
    'a NaN position': (lambda: combine_scheds([1.], [SchedLin(0, 1)])(float('nan')), ValueError, r'combine_scheds: position nan is not a position in training'),
    'warm restarts past the end': (lambda: sgdr_sched(0.1, [1, 2])(1.5), ValueError, r'sgdr_sched: position 1.5 is past the end of training'),
    'warm restarts with no cycle': (lambda: sgdr_sched(0.1, []), ValueError, r'sgdr_sched needs the length of at least one cycle, got none'),
    'an exponential from 0': (lambda: SchedExp(0, 1), ValueError, r'SchedExp: start must be > 0, got 0'),
    'an exponential from a negative value': (lambda: SchedExp(-1, 1), ValueError, r'SchedExp: start must be > 0, got -1'),
    'an end that is not a number': (lambda: SchedLin('a', 1), TypeError, r"SchedLin: start must be a real number \(or a tensor of one per param group\), got 'a' of type str"),
    'a negative power': (lambda: SchedPoly(0, 1, -1), ValueError, r'SchedPoly: power must be > 0, got -1'),
    'pcts that do not add up to 1': (lambda: combine_scheds([0.5, 0.6], [SchedNo(1, 1)] * 2), ValueError,
                                     r'pcts must be >= 0 and add up to 1, got \[0.5, 0.6\]'),
    'a pct that is not a number': (lambda: combine_scheds(['a'], [SchedNo(1, 1)]), TypeError, r"combine_scheds: a pct must be a real number, got 'a'"),
    'a phase that is not a schedule': (lambda: combine_scheds([1.], [3]), TypeError, r'combine_scheds: a schedule must be a function of the position, got 3'),
    'fewer values than param groups': (lambda: learner(splitter=two_groups).fit(1, cbs=ParamScheduler({'lr': lambda pos: [0.1]})), ValueError,
                                       r"ParamScheduler: the schedule of 'lr' gave 1 values \[0.1\] for 2 param groups"),
    'more values than param groups': (lambda: learner(splitter=two_groups).fit(1, cbs=ParamScheduler({'lr': lambda pos: [0.1] * 3})), ValueError,
                                      r"the schedule of 'lr' gave 3 values \[0.1, 0.1, 0.1\] for 2 param groups"),
    'schedules as a list': (lambda: ParamScheduler([SchedLin(0, 1)]), TypeError,
                            r'ParamScheduler takes a dict \{hyper-parameter name: schedule\}, got \[SchedLin\(0, 1\)\]'),
    'a number for a schedule': (lambda: ParamScheduler({'lr': 0.1}), TypeError, r"the schedule of 'lr' must be a function of the position .*got 0.1"),
    'a schedule that gives a string': (lambda: learner().fit(1, cbs=ParamScheduler({'lr': lambda pos: 'x'})), TypeError,
                                       r"lr must be a real number, got 'x' of type str"),
    'a schedule that goes below 0': (lambda: learner().fit(1, cbs=ParamScheduler({'lr': SchedLin(0.1, -0.1)})), ValueError, r'lr must be >= 0, got -0.0'),
}

CALLBACK_CASES = {
    'a callback that is not a Callback': (lambda: learner(cbs=[print]), TypeError,
                                          r'callbacks must be Callback instances or classes, got <built-in function print>'),
    'the same callback instance twice': (lambda: learner(cbs=[GradientClip()] * 2), ValueError,
                                         r'callback GradientClip is already in this Learner: added twice, it would run twice at every event'),
    'a callback of the Learner given to fit again': (lambda: (lambda cb: learner(cbs=cb).fit(1, cbs=cb))(GradientClip()), ValueError,
                                                     r'callback GradientClip is already in this Learner'),
    'a callback of another Learner': (lambda: (lambda cb: (learner(cbs=cb), learner(cbs=cb)))(GradientClip()), ValueError,
                                      r'callback GradientClip is in another Learner'),
    "an order that is not a number": (lambda: learner(cbs=callback_with(order='high')), TypeError,
                                      r"OddCallback.order must be a number \(callbacks run from the lowest order up\), got 'high'"),
    'a NaN order': (lambda: learner(cbs=callback_with(order=float('nan'))), TypeError, r'OddCallback.order must be a number .*got nan'),
    'run_train as a string': (lambda: learner(cbs=callback_with(run_train='no')), TypeError, r"OddCallback.run_train must be True or False, got 'no'"),
    'remove a name': (lambda: learner().remove_cb('recorder'), TypeError, r"remove_cb takes a Callback instance or class, got 'recorder'"),
    'an unknown event': (lambda: learner()('after_everything'), ValueError, r"unknown event 'after_everything'"),
    "CheckpointCallback(every_epoch='no')": (lambda: CheckpointCallback(every_epoch='no'), TypeError, r"every_epoch must be True or False, got 'no' of type str"),
    'a CheckpointCallback that never saves': (lambda: CheckpointCallback(every_epoch=False), ValueError,
                                              r'CheckpointCallback\(every_epoch=False, every_n_batches=None\) would never save'),
    'every_n_batches of 0': (lambda: CheckpointCallback(every_n_batches=0), ValueError, r'every_n_batches must be >= 1, got 0'),
    'every_n_batches fractional': (lambda: CheckpointCallback(every_n_batches=1.5), TypeError, r'every_n_batches must be an integer, got 1.5'),
    'SaveModelCallback with_opt as a string': (lambda: SaveModelCallback(with_opt='no'), TypeError, r"with_opt must be True or False, got 'no'"),
    'CSVLogger append as a string': (lambda: CSVLogger(append='no'), TypeError, r"append must be True or False, got 'no'"),
    'a comparison that is not a function': (lambda: EarlyStoppingCallback(comp='lt'), TypeError, r"comp must be a function comp\(a, b\).*got 'lt'"),
    'show_bars as a string': (lambda: ProgressCallback(show_bars='no'), TypeError, r"show_bars must be True or False \(or None\), got 'no'"),
    'a negative refresh': (lambda: ProgressCallback(refresh=-1), ValueError, r'refresh must be >= 0, got -1'),
    'a max_norm of the wrong type': (lambda: GradientClip(max_norm='1'), TypeError, r"max_norm must be a real number, got '1'"),
    'a seed of the wrong type': (lambda: DistributedTrainer(seed='x'), TypeError, r"seed must be an integer, got 'x'"),
    'an opt_func that makes no optimizer': (lambda: learner(opt_func=lambda ps, lr: None).fit(1), TypeError,
                                            r'opt_func must return a torch.optim.Optimizer, .* returned a NoneType'),
}

FILE_CASES = {
    'a checkpoint that does not exist': (lambda: learner().fit(1, resume_from='nowhere'), FileNotFoundError, r'no saved file at .*nowhere.pth'),
    'resume_from a number': (lambda: learner().fit(1, resume_from=42), TypeError, r"resume_from must be a checkpoint's name or a pathlib.Path, got 42"),
    'resume from a file that is not a checkpoint': (lambda: (fitted().save('plain'), learner().fit(1, resume_from='plain')), CheckpointError,
                                                    r"plain.pth is not a fastnote checkpoint"),
    'resume with another optimizer': (lambda: (fitted(), learner(opt_func=SGD).fit(1, resume_from='checkpoint')), CheckpointError,
                                      r'checkpoint.pth was made with other settings.*optimizer: the checkpoint has \[.*adam_step'),
    'resume with other param groups': (lambda: (fitted(), learner(splitter=two_groups).fit(1, resume_from='checkpoint')), CheckpointError,
                                       r'param groups: the checkpoint has 1, this fit 2'),
    'load the state of another optimizer': (lambda: (fitted().save('m'), learner(opt_func=SGD).load('m')), CheckpointError,
                                            r"m.pth: the optimizer state is of an optimizer made of \[.*adam_step'\], this SGD is made of"),
    'load into other param groups': (lambda: (fitted().save('m'), learner(splitter=two_groups).load('m')), CheckpointError,
                                     r'm.pth: the optimizer state has 1 param group\(s\), this optimizer 2'),
    "load torch's Adam state into torch's SGD": (lambda: (fitted(opt_func=torch.optim.Adam).save('m'), learner(opt_func=torch.optim.SGD).load('m')),
                                                 CheckpointError, r"m.pth: the optimizer state has \['amsgrad', 'betas'.*which SGD does not"),
    'load with_opt as a string': (lambda: (fitted().save('m'), learner().load('m', with_opt='no')), TypeError, r"with_opt must be True or False, got 'no'"),
    'save with_opt as a string': (lambda: learner().save('m', with_opt='no'), TypeError, r"with_opt must be True or False, got 'no'"),
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

TABLES = {'bad hyper-parameters': HYPER_CASES, 'bad data': DATA_CASES, 'bad schedules': SCHEDULE_CASES,
          'bad callbacks': CALLBACK_CASES, 'bad files': FILE_CASES}
CASES = {name: case for table in TABLES.values() for name, case in table.items()}
assert len(CASES) == sum(map(len, TABLES.values())), 'two tables name a case alike'


@pytest.mark.parametrize('case', CASES)
def test_bad_input_is_named(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make, exc, message = CASES[case]
    with pytest.raises(exc, match=message): make()


def test_every_class_has_its_table():
    assert {name: len(t) for name, t in TABLES.items() if len(t) < 10} == {}
    from conftest import SUMMARY
    SUMMARY.append('bad-input cases: ' + ', '.join(f'{name} {len(t)}' for name, t in TABLES.items()) + f' (total {len(CASES)})')


def test_a_refused_load_or_resume_changes_nothing():
    "Everything is checked before anything changes: the weights (and the optimizer) stay as they were."
    import os, tempfile
    os.chdir(tempfile.mkdtemp())
    fitted().save('m')
    for make, run in [(lambda: learner(opt_func=SGD), lambda l: l.load('m')),
                      (lambda: learner(splitter=two_groups), lambda l: l.load('m')),
                      (lambda: learner(opt_func=SGD), lambda l: l.fit(1, resume_from='checkpoint')),
                      (lambda: learner(), lambda l: l.fit(1, lr=0.5, resume_from='checkpoint'))]:
        learn = make()
        with torch.no_grad(): learn.model.weight.fill_(3.)
        with pytest.raises(ValueError): run(learn)
        assert bool((learn.model.weight == 3.).all())


# ---------------------------------------------------------------- legitimate inputs, accepted
LEGIT = {
    'a 0-d tensor lr': lambda: learner().fit(1, lr=torch.tensor(0.1)),
    'a NumPy lr': lambda: learner().fit(1, lr=np.float32(0.1)),
    'a 0-d tensor lr for the Learner': lambda: learner(lr=torch.tensor(0.01)).fit(1),
    'a 0-d tensor n_epoch': lambda: learner().fit(torch.tensor(1)),
    'a NumPy n_epoch': lambda: learner().fit(np.int64(1)),
    'a 0-d tensor wd': lambda: learner().fit(1, wd=torch.tensor(0.01)),
    'a 0-d tensor mom': lambda: Adam([nn.Parameter(torch.zeros(2))], lr=0.1, mom=torch.tensor(0.9)),
    'a NumPy mom': lambda: Adam([nn.Parameter(torch.zeros(2))], lr=0.1, mom=np.float64(0.9)),
    'momentums as an array': lambda: learner().fit_one_cycle(1, moms=np.array([0.95, 0.85, 0.95])),
    'momentums with a tensor': lambda: learner(moms=(torch.tensor(0.95), 0.85, 0.95)).fit_one_cycle(1),
    'a 0-d tensor max_norm': lambda: learner().fit(1, cbs=GradientClip(max_norm=torch.tensor(1.))),
    'a NumPy max_norm': lambda: learner().fit(1, cbs=GradientClip(max_norm=np.float64(1.))),
    'a 0-d tensor every_n_batches': lambda: learner().fit(1, cbs=CheckpointCallback(every_n_batches=torch.tensor(1))),
    'a NumPy every_n_batches': lambda: learner().fit(1, cbs=CheckpointCallback(every_n_batches=np.int64(2))),
    'two instances of one callback class': lambda: learner(cbs=[GradientClip(), GradientClip(2.)]).fit(1),
    'a callback moved to a new Learner after remove_cb': lambda: (lambda cb: (learner(cbs=cb).remove_cb(cb), learner(cbs=cb).fit(1)))(GradientClip()),
    'a slice of learning rates': lambda: learner().fit(1, lr=slice(1e-4, 1e-2)),
    'no validation data': lambda: learner(valid=[]).fit(1),
    'a generator for one epoch': lambda: learner(train=(b for b in batches())).fit(1),
    'predicting one item': lambda: learner().predict(torch.zeros(4)),
    'validation batches without target, predicted': lambda: learner(valid=[(x,) for x, _ in batches(1)]).get_preds(),
    'the same lr given to a resumed fit': lambda: (fitted(), learner().fit(1, lr=1e-3, resume_from='checkpoint')),
    'a one-cycle fit resumed': lambda: (learner().fit_one_cycle(1, cbs=CheckpointCallback()), learner().fit_one_cycle(1, resume_from='checkpoint')),
    'a schedule at its very end': lambda: combined_cos(0.25, 1, 2, 0)(1.),
}

@pytest.mark.parametrize('case', LEGIT)
def test_legitimate_input_is_accepted(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        LEGIT[case]()


def test_numbers_torch_takes_become_plain_numbers():
    from fastnote.optimizer import check_number, check_hyper
    for given, want in [(torch.tensor(0.5), 0.5), (np.float32(0.5), 0.5), (np.array(0.5), 0.5), (np.int64(3), 3), (torch.tensor(3), 3)]:
        got = check_number('x', given, 0)
        assert got == want and type(got) in (int, float), (given, got)
    assert type(check_hyper('mom', np.float64(0.9))) is float
    lr = torch.tensor(0.1); assert check_hyper('lr', lr) is lr              # a tensor lr stays itself: torch changes it in place


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
