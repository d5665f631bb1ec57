"""Exact resume and safe checkpoints: a run stopped at any batch boundary (an exception, Ctrl-C, a process killed with
SIGKILL) and resumed from its last checkpoint ends with weights bit-identical to the uninterrupted run; checkpoint
writes are atomic; loading never runs code from the file; bad files and other settings are refused by name."""
import errno, os, random, signal, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from fastnote import (Learner, DataLoaders, Callback, CheckpointCallback, CheckpointError, accuracy, load_checkpoint,
                      safe_load, atomic_save, SGD, SaveModelCallback, EarlyStoppingCallback, CSVLogger,
                      GradientAccumulation)

ROOT = Path(__file__).resolve().parents[1]

JOB = textwrap.dedent('''
    """A training job: 'full' runs it, 'crash' kills itself (SIGKILL) after training batch KILL_AT, 'resume' goes on."""
    import os, random, signal, sys
    import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
    from torch.utils.data import TensorDataset
    from fastnote import Learner, DataLoaders, Callback, CheckpointCallback, accuracy
    mode, path, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 10, generator=g); y = (x[:, :3].sum(1) > 0).long()

    class Jitter(Callback):
        "Noise from NumPy scaled by Python's random: both generators must be restored on resume."
        def before_batch(self):
            if self.learn.training:
                xb, = self.learn.xb
                noise = torch.from_numpy(np.random.normal(0, 0.05, size=tuple(xb.shape)).astype("float32"))
                self.learn.xb = (xb + noise * random.random(),)

    class Kill(Callback):
        def after_batch(self):
            if self.learn.training and self.learn.train_iter == kill_at: os.kill(os.getpid(), signal.SIGKILL)

    torch.manual_seed(999 if mode == "resume" else 0); np.random.seed(1); random.seed(2)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 2))
    # 12 training batches an epoch, shuffled with torch's global generator
    dls = DataLoaders.from_dsets(TensorDataset(x[:192], y[:192]), TensorDataset(x[192:], y[192:]), bs=16)
    learn = Learner(dls, model, F.cross_entropy, metrics=accuracy, path=path, cbs=Jitter())
    cbs = [CheckpointCallback(every_n_batches=5)] + ([Kill()] if mode == "crash" else [])
    with learn.no_bar(), learn.no_logging():
        learn.fit_one_cycle(3, lr_max=1e-2, cbs=cbs, resume_from="checkpoint" if mode == "resume" else None)
    torch.save({"model": learn.model.state_dict(), "losses": learn.recorder.losses, "values": learn.recorder.values},
               os.path.join(path, mode + ".pt"))
''')


def run_job(tmp_path, mode, path, kill_at=0):
    script = tmp_path/'job.py'
    script.write_text(JOB)
    env = {**os.environ, 'PYTHONPATH': str(ROOT)}
    return subprocess.run([sys.executable, str(script), mode, str(path), str(kill_at)], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.parametrize('kill_at', [17, 24])   # mid-epoch (2 batches after a checkpoint); the end of an epoch's training
def test_killed_process_resumes_bit_identical(tmp_path, kill_at):
    full = run_job(tmp_path, 'full', tmp_path/'a')
    assert full.returncode == 0, full.stderr
    crash = run_job(tmp_path, 'crash', tmp_path/'b', kill_at)
    assert crash.returncode == -signal.SIGKILL, (crash.returncode, crash.stderr)
    ck = load_checkpoint(tmp_path/'b'/'models'/'checkpoint.pth')
    assert ck['train_iter'] == kill_at // 5 * 5 and ck['train_iter'] < kill_at      # the last checkpoint before the kill
    resume = run_job(tmp_path, 'resume', tmp_path/'b')
    assert resume.returncode == 0, resume.stderr
    a, b = torch.load(tmp_path/'a'/'full.pt'), torch.load(tmp_path/'b'/'resume.pt')
    for k, v in a['model'].items(): assert torch.equal(v, b['model'][k]), k
    assert a['losses'] == b['losses'] and a['values'] == b['values']


# ---------------------------------------------------------------- in-process interruptions, every kind of fit
def make_learner(path, seed=0):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(120, 6, generator=g); y = (x[:, 0] > 0).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2))
    dls = DataLoaders.from_dsets(TensorDataset(x[:96], y[:96]), TensorDataset(x[96:], y[96:]), bs=16, seed=3)  # own generator
    learn = Learner(dls, model, F.cross_entropy, metrics=accuracy, path=path)
    learn.progress.show_table = False
    return learn


class StopAt(Callback):
    def __init__(self, n, exc): self.n, self.exc = n, exc
    def after_batch(self):
        if self.learn.training and self.learn.train_iter == self.n: raise self.exc('stop')


FITS = {'fit': lambda l, **kw: l.fit(3, lr=1e-2, **kw),
        'fit_one_cycle': lambda l, **kw: l.fit_one_cycle(3, lr_max=1e-2, **kw),
        'fit_flat_cos': lambda l, **kw: l.fit_flat_cos(3, lr=1e-2, **kw),
        'fit_sgdr': lambda l, **kw: l.fit_sgdr(2, 1, lr_max=1e-2, **kw)}

@pytest.mark.parametrize('fit', FITS)
@pytest.mark.parametrize('exc', [RuntimeError, KeyboardInterrupt])
def test_interrupted_fit_resumes_bit_identical(tmp_path, fit, exc):
    full = make_learner(tmp_path/'a')
    FITS[fit](full)
    stopped = make_learner(tmp_path/'b')
    with pytest.raises(exc): FITS[fit](stopped, cbs=[CheckpointCallback(every_n_batches=4), StopAt(10, exc)])
    resumed = make_learner(tmp_path/'b', seed=5)
    torch.manual_seed(77)
    FITS[fit](resumed, cbs=CheckpointCallback(every_n_batches=4), resume_from='checkpoint')
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()): assert torch.equal(a, b)
    assert full.recorder.losses == resumed.recorder.losses and full.recorder.values == resumed.recorder.values


def test_resume_twice_and_from_epoch_checkpoints(tmp_path):
    full = make_learner(tmp_path/'a')
    full.fit_one_cycle(3, lr_max=1e-2)
    run = make_learner(tmp_path/'b')
    with pytest.raises(RuntimeError): run.fit_one_cycle(3, lr_max=1e-2, cbs=[CheckpointCallback(every_n_batches=4), StopAt(5, RuntimeError)])
    run = make_learner(tmp_path/'b')
    with pytest.raises(RuntimeError):
        run.fit_one_cycle(3, lr_max=1e-2, cbs=[CheckpointCallback(every_n_batches=4), StopAt(14, RuntimeError)], resume_from='checkpoint')
    run = make_learner(tmp_path/'b')
    run.fit_one_cycle(3, lr_max=1e-2, resume_from='checkpoint')
    for a, b in zip(full.model.state_dict().values(), run.model.state_dict().values()): assert torch.equal(a, b)
    # only epoch checkpoints: resuming redoes the epoch that was cut short
    run = make_learner(tmp_path/'c')
    with pytest.raises(RuntimeError): run.fit_one_cycle(3, lr_max=1e-2, cbs=[CheckpointCallback(), StopAt(9, RuntimeError)])
    assert load_checkpoint(tmp_path/'c'/'models'/'checkpoint.pth')['epoch'] == 1
    run = make_learner(tmp_path/'c')
    run.fit_one_cycle(3, lr_max=1e-2, resume_from=tmp_path/'c'/'models'/'checkpoint.pth')
    for a, b in zip(full.model.state_dict().values(), run.model.state_dict().values()): assert torch.equal(a, b)


def test_a_checkpoint_from_other_settings_is_refused(tmp_path):
    learn = make_learner(tmp_path)
    learn.fit_one_cycle(2, lr_max=1e-2, cbs=CheckpointCallback())
    with pytest.raises(CheckpointError, match=r'n_epoch: the checkpoint has 2, this fit 3'):
        make_learner(tmp_path).fit_one_cycle(3, lr_max=1e-2, resume_from='checkpoint')
    with pytest.raises(CheckpointError, match=r'schedule'):
        make_learner(tmp_path).fit_one_cycle(2, lr_max=2e-2, resume_from='checkpoint')
    with_sgd = make_learner(tmp_path)
    with_sgd.opt_func = SGD
    with pytest.raises(CheckpointError, match=r'optimizer'): with_sgd.fit_one_cycle(2, lr_max=1e-2, resume_from='checkpoint')
    wide = make_learner(tmp_path); wide.model[0] = nn.Linear(6, 17); wide.model[3] = nn.Linear(17, 2)
    with pytest.raises(CheckpointError, match=r"model: '0.weight' is \[16, 6\] in the checkpoint, \[17, 6\] in this model"):
        wide.fit_one_cycle(2, lr_max=1e-2, resume_from='checkpoint')


def test_no_checkpoint_after_a_non_finite_loss(tmp_path):
    class Poison(Callback):
        order = 10
        def after_loss(self):
            if self.learn.train_iter >= 6: self.learn.loss = self.learn.loss * float('nan')
    learn = make_learner(tmp_path)
    learn.fit(2, lr=1e-2, cbs=[CheckpointCallback(every_n_batches=2), Poison()])
    ck = load_checkpoint(tmp_path/'models'/'checkpoint.pth')
    assert ck['train_iter'] == 6 and all(torch.isfinite(v).all() for v in ck['model'].values())


# ---------------------------------------------------------------- atomic writes
WRITER = textwrap.dedent('''
    import sys, torch
    from fastnote import atomic_save
    path, i = sys.argv[1], 0
    while True:
        i += 1
        atomic_save({"i": i, "w": torch.full((1_000_000,), float(i))}, path)
''')

def test_killing_the_writer_never_leaves_a_broken_checkpoint(tmp_path):
    script, target = tmp_path/'writer.py', tmp_path/'ck.pth'
    script.write_text(WRITER)
    env, rng = {**os.environ, 'PYTHONPATH': str(ROOT)}, random.Random(0)
    last = 0
    for round in range(6):
        proc = subprocess.Popen([sys.executable, str(script), str(target)], env=env)
        start = time.monotonic()
        while not target.exists() and time.monotonic() - start < 60: time.sleep(0.01)
        time.sleep(rng.uniform(0.05, 0.4))              # somewhere in the middle of a write, most of the time
        proc.send_signal(signal.SIGKILL); proc.wait()
        state = safe_load(target)                       # whole, and readable
        assert state['i'] >= 1 and torch.equal(state['w'], torch.full((1_000_000,), float(state['i'])))
        last = state['i']
    assert last >= 1


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    target = tmp_path/'ck.pth'
    atomic_save({'i': 1}, target)
    def broken_save(obj, f):
        f.write(b'half a checkpoint')
        raise OSError('disk full')
    monkeypatch.setattr(torch, 'save', broken_save)
    with pytest.raises(OSError, match='disk full'): atomic_save({'i': 2}, target)
    monkeypatch.undo()
    assert safe_load(target) == {'i': 1} and sorted(p.name for p in tmp_path.iterdir()) == ['ck.pth']


# ---------------------------------------------------------------- loading never runs code; bad files are named
class Trap:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (Path.touch, (self.marker,))


def test_a_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path/'marker'
    torch.save({'format': 'fastnote checkpoint', 'model': Trap(marker)}, tmp_path/'trap.pth')
    with pytest.raises(CheckpointError, match=r'trap.pth was refused: .* would run code'): load_checkpoint(tmp_path/'trap.pth')
    (tmp_path/'models').mkdir()
    torch.save({'model': Trap(marker)}, tmp_path/'models'/'trap.pth')
    learn = make_learner(tmp_path)
    with pytest.raises(CheckpointError, match=r'trap.pth was refused'): learn.load('trap')
    assert not marker.exists()


def test_broken_and_foreign_files_are_named(tmp_path):
    learn = make_learner(tmp_path)
    learn.fit(1, cbs=CheckpointCallback())
    good = tmp_path/'models'/'checkpoint.pth'
    data = good.read_bytes()
    (tmp_path/'truncated.pth').write_bytes(data[:len(data) // 2])
    with pytest.raises(CheckpointError, match=r'truncated.pth is not a readable checkpoint'): load_checkpoint(tmp_path/'truncated.pth')
    corrupted = bytearray(data); corrupted[len(data) // 3: len(data) // 3 + 200] = b'\xff' * 200
    (tmp_path/'corrupted.pth').write_bytes(bytes(corrupted))
    with pytest.raises(CheckpointError, match=r'corrupted.pth'): load_checkpoint(tmp_path/'corrupted.pth')
    (tmp_path/'notes.pth').write_text('not a checkpoint at all\n')
    with pytest.raises(CheckpointError, match=r'notes.pth is not a file saved by torch.save'): load_checkpoint(tmp_path/'notes.pth')
    torch.save({'weights': torch.zeros(2)}, tmp_path/'other.pth')
    with pytest.raises(CheckpointError, match=r"other.pth is not a fastnote checkpoint"): load_checkpoint(tmp_path/'other.pth')
    with pytest.raises(FileNotFoundError, match=r'no saved file at .*missing.pth'): load_checkpoint(tmp_path/'missing.pth')


def test_state_dicts_with_missing_unexpected_or_misshaped_keys_are_named(tmp_path):
    learn = make_learner(tmp_path)
    (tmp_path/'models').mkdir()
    state = {k: v.clone() for k, v in learn.model.state_dict().items()}
    for name, bad, message in [
            ('missing', {k: v for k, v in state.items() if k != '3.bias'}, r"the model's '3.bias' is missing from the file"),
            ('unexpected', {**state, 'extra.weight': torch.zeros(1)}, r"the file has 'extra.weight', which the model does not"),
            ('misshaped', {**state, '0.weight': torch.zeros(16, 7)}, r"'0.weight' has shape \(16, 7\) in the file but \(16, 6\)")]:
        torch.save({'model': bad}, tmp_path/'models'/f'{name}.pth')
        with pytest.raises(CheckpointError, match=rf'{name}.pth: {message}'): learn.load(name)


# ---------------------------------------------------------------- the callbacks' state goes into the checkpoint
def csv_rows_without_time(path):
    import csv
    with open(path, newline='') as f: return [row[:-1] for row in csv.reader(f)]


def everyday_callbacks():
    return [SaveModelCallback(monitor='accuracy'), EarlyStoppingCallback(monitor='accuracy', patience=2), CSVLogger(),
            GradientAccumulation(2)]


@pytest.mark.parametrize('stop_at', [9, 18, 24])       # mid-epoch (batch 3 of 6 in a group of 2), mid-group, and later
def test_resume_with_the_everyday_callbacks_equals_the_uninterrupted_run(tmp_path, stop_at):
    "SaveModel, EarlyStopping, CSVLogger and GradientAccumulation: the same epochs, weights, losses, best-model file and log."
    fit = lambda l, **kw: l.fit(12, lr=0.3, **kw)       # a high rate: accuracy wobbles, so early stopping comes before epoch 12
    full = make_learner(tmp_path/'a'); fit(full, cbs=everyday_callbacks())
    run = make_learner(tmp_path/'b')
    with pytest.raises(RuntimeError): fit(run, cbs=everyday_callbacks() + [CheckpointCallback(every_n_batches=3), StopAt(stop_at, RuntimeError)])
    resumed = make_learner(tmp_path/'b', seed=5)
    fit(resumed, cbs=everyday_callbacks() + [CheckpointCallback(every_n_batches=3)], resume_from='checkpoint')
    assert len(full.recorder.values) < 12, "the run did not stop early: the test would not test early stopping"
    assert full.recorder.values == resumed.recorder.values and full.recorder.losses == resumed.recorder.losses
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()): assert torch.equal(a, b)
    best = [torch.load(p/'models'/'model.pth', weights_only=True)['model'] for p in (tmp_path/'a', tmp_path/'b')]
    assert all(torch.equal(best[0][k], best[1][k]) for k in best[0])
    assert csv_rows_without_time(tmp_path/'a'/'history.csv') == csv_rows_without_time(tmp_path/'b'/'history.csv')


def test_resuming_with_other_stateful_callbacks_is_refused(tmp_path):
    run = make_learner(tmp_path)
    with pytest.raises(RuntimeError): run.fit(3, lr=0.1, cbs=[EarlyStoppingCallback(patience=2), CheckpointCallback(every_n_batches=3), StopAt(4, RuntimeError)])
    with pytest.raises(CheckpointError, match=r"callbacks with state: the checkpoint has \['EarlyStoppingCallback'\], this fit \[\]"):
        make_learner(tmp_path).fit(3, lr=0.1, resume_from='checkpoint')


def test_a_user_callback_declares_its_state(tmp_path):
    "A callback that counts the batches it saw, with `state_attrs`: resumed, it counts on as if uninterrupted."
    class Count(Callback):
        state_attrs = ('n',)
        def __init__(self): self.n = 0
        def after_batch(self):
            if self.training: self.n += 1
    full, count = make_learner(tmp_path/'a'), Count()
    full.fit(3, lr=0.1, cbs=count)
    run = make_learner(tmp_path/'b')
    with pytest.raises(RuntimeError): run.fit(3, lr=0.1, cbs=[Count(), CheckpointCallback(every_n_batches=4), StopAt(10, RuntimeError)])
    again = Count()
    make_learner(tmp_path/'b').fit(3, lr=0.1, cbs=[again, CheckpointCallback(every_n_batches=4)], resume_from='checkpoint')
    assert count.n == again.n == 18


def test_no_checkpoint_from_non_finite_weights(tmp_path):
    "A NaN gradient under a finite loss: the weights go NaN, the checkpoint is not written over, and a warning says so."
    class PoisonGrad(Callback):
        def after_backward(self):
            if self.train_iter == 7: next(self.learn.model.parameters()).grad.fill_(float('nan'))
    run = make_learner(tmp_path)
    with pytest.warns(UserWarning, match=r"no checkpoint at epoch 1, batch 2: the weight '0.weight' holds NaN or inf"):
        run.fit(2, lr=0.1, cbs=[PoisonGrad(), CheckpointCallback(every_n_batches=1)])
    ck = load_checkpoint(tmp_path/'models'/'checkpoint.pth')
    assert (ck['epoch'], ck['batches_done']) == (1, 1) and all(torch.isfinite(v).all() for v in ck['model'].values())


class FillsUp:
    "A file that takes `room` bytes, then raises `exc` from write, as a full disk (or a Ctrl-C arriving mid-write) does."
    def __init__(self, f, room, exc): self.f, self.room, self.exc = f, room, exc
    def write(self, data):
        if len(data) > self.room: raise self.exc
        self.room -= len(data); return self.f.write(data)
    def __getattr__(self, k): return getattr(self.f, k)


@pytest.mark.parametrize('exc', [OSError(errno.ENOSPC, 'No space left on device'), KeyboardInterrupt()], ids=['disk full', 'Ctrl-C'])
def test_torch_save_interrupted_mid_write_says_what_happened(tmp_path, exc):
    "torch's writer turns the file's error into 'unexpected pos'; atomic_save gives the real one, and the old file stays whole."
    from fastnote.checkpoint import atomic_write
    atomic_save({'w': torch.ones(3)}, tmp_path/'ck.pth')
    def write(f):
        f.f = FillsUp(f.f, 4096, exc)
        torch.save({'w': torch.randn(100_000)}, f)
    with pytest.raises(type(exc)) as info: atomic_write(tmp_path/'ck.pth', write)
    if isinstance(exc, OSError): assert f"no space left on the device writing {tmp_path/'ck.pth'}" in str(info.value)
    assert torch.equal(safe_load(tmp_path/'ck.pth')['w'], torch.ones(3)) and [p.name for p in tmp_path.iterdir()] == ['ck.pth']
