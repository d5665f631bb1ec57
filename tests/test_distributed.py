"""Data-parallel training under torchrun on the CPU (gloo): 2 processes with batches of B end where 1 process with
batches of 2B ends; validation metrics are the single process's; checkpoints move between distributed and single runs;
a distributed run resumes exactly; outside torchrun `distrib_ctx` changes nothing."""
import os, subprocess, sys, textwrap
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fastnote import Learner, DataLoaders, accuracy, SGD, CheckpointCallback, num_distrib

ROOT = Path(__file__).resolve().parents[1]

JOB = textwrap.dedent('''
    import os, sys, torch, torch.nn as nn, torch.nn.functional as F
    from functools import partial
    from torch.utils.data import DataLoader, TensorDataset
    from fastnote import Learner, DataLoaders, Callback, CheckpointCallback, Metric, accuracy, SGD, rank_distrib
    torch.set_num_threads(1)
    class F1(Metric):
        "F1 score of class 1: not an average over items, so it combines by adding up its counts."
        def reset(self): self.tp = self.fp = self.fn = 0
        def accumulate(self, learn):
            pred, targ = learn.pred.argmax(1), learn.yb[0]
            self.tp += int(((pred == 1) & (targ == 1)).sum()); self.fp += int(((pred == 1) & (targ == 0)).sum())
            self.fn += int(((pred == 0) & (targ == 1)).sum())
        @property
        def value(self): return 2 * self.tp / (2 * self.tp + self.fp + self.fn)
        def sync(self, gather): self.tp, self.fp, self.fn = (sum(c) for c in zip(*gather((self.tp, self.fp, self.fn))))
    class Median(Metric):
        "The median of the highest score: says nothing of how to combine, so a distributed run refuses it."
        def reset(self): self.vals = []
        def accumulate(self, learn): self.vals.append(learn.pred.max(1).values)
        @property
        def value(self): return float(torch.cat(self.vals).median())
    bs, out, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(321, 8, generator=g); y = (x[:, 0] + x[:, 1] > 0).long()
    train, valid = TensorDataset(x[:256], y[:256]), TensorDataset(x[256:], y[256:])      # 65 validation items
    dropout = 0.2 if mode.startswith("resume") or mode.startswith("stop") or mode == "full" else 0.
    torch.manual_seed(1 if mode == "resume" else 0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(dropout), nn.Linear(32, 2))
    shuffle = dropout > 0
    dls = DataLoaders(DataLoader(train, batch_size=bs, shuffle=shuffle), DataLoader(valid, batch_size=bs))
    metrics = [accuracy, F1()] + ([Median()] if mode == "median" else [])
    learn = Learner(dls, model, F.cross_entropy, opt_func=partial(SGD, mom=0.9), lr=0.05, metrics=metrics, path=out)
    learn.progress.show_table = False
    class StopAt(Callback):
        def after_batch(self):
            if self.learn.training and self.learn.train_iter == 11: raise RuntimeError("stop")
    cbs = [CheckpointCallback(every_n_batches=4)] if dropout else []
    if mode == "stop": cbs.append(StopAt())
    with learn.distrib_ctx(seed=3):
        if mode == "load": learn.load("single")
        learn.fit_one_cycle(3, lr_max=0.05, cbs=cbs, resume_from="checkpoint" if mode == "resume" else None)
        learn.save("final")
    if rank_distrib() == 0:
        torch.save({"model": learn.model.state_dict(), "values": learn.recorder.values, "losses": learn.recorder.losses},
                   os.path.join(out, mode + ".pt"))
''')


def launch(tmp_path, nproc, bs, out, mode, expect_ok=True):
    script = tmp_path/'job.py'
    script.write_text(JOB)
    env = {k: v for k, v in os.environ.items() if k not in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT')}
    env['PYTHONPATH'] = str(ROOT)
    prefix = [sys.executable] if nproc == 1 else [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', str(nproc),
                                                  '--master_port', str(29500 + os.getpid() % 1000)]
    res = subprocess.run([*prefix, str(script), str(bs), str(out), mode], capture_output=True, text=True, env=env, timeout=300)
    if expect_ok: assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_two_processes_of_b_equal_one_process_of_2b(tmp_path):
    launch(tmp_path, 1, 32, tmp_path/'one', 'plain')
    launch(tmp_path, 2, 16, tmp_path/'two', 'plain')
    one, two = torch.load(tmp_path/'one'/'plain.pt'), torch.load(tmp_path/'two'/'plain.pt')
    for k, v in one['model'].items():
        assert torch.allclose(v, two['model'][k], atol=1e-6, rtol=0), (k, (v - two['model'][k]).abs().max())
    assert 'module.0.weight' not in two['model']                       # the plain model, not the DDP wrapper
    for a, b in zip(one['values'], two['values'], strict=True):        # validation on 65 items: each counted once
        assert len(a) == 4                                              # train_loss, valid_loss, accuracy, F1
        assert all(abs(x - y) < 1e-6 for x, y in zip(a[1:], b[1:])), (one['values'], two['values'])
        assert abs(a[0] - b[0]) < 1e-6                                  # the training loss, averaged over ranks


def test_a_metric_that_does_not_say_how_it_combines_is_refused(tmp_path):
    launch(tmp_path, 1, 32, tmp_path/'one', 'median')                  # one process: a median is fine
    res = launch(tmp_path, 2, 16, tmp_path/'two', 'median', expect_ok=False)
    assert res.returncode != 0 and "metric 'median' (Median) does not say how to combine its state" in res.stderr, res.stderr[-2000:]


def test_checkpoints_move_between_distributed_and_single_runs(tmp_path):
    launch(tmp_path, 2, 16, tmp_path/'two', 'plain')
    learn = Learner(DataLoaders([(torch.zeros(4, 8), torch.zeros(4).long())]),
                    nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.), nn.Linear(32, 2)), F.cross_entropy,
                    opt_func=SGD, path=tmp_path/'two')
    learn.load('final')                                                 # written by rank 0 of the distributed run
    saved = torch.load(tmp_path/'two'/'plain.pt')['model']
    for k, v in learn.model.state_dict().items(): assert torch.equal(v, saved[k])
    learn.save('single')                                                # and a single process's file, loaded by 2 ranks
    launch(tmp_path, 2, 16, tmp_path/'two', 'load')


def test_a_distributed_run_resumes_exactly(tmp_path):
    launch(tmp_path, 2, 16, tmp_path/'a', 'full')
    stopped = launch(tmp_path, 2, 16, tmp_path/'b', 'stop', expect_ok=False)
    assert stopped.returncode != 0 and 'stop' in stopped.stderr
    launch(tmp_path, 2, 16, tmp_path/'b', 'resume')
    full, resumed = torch.load(tmp_path/'a'/'full.pt'), torch.load(tmp_path/'b'/'resume.pt')
    for k, v in full['model'].items(): assert torch.equal(v, resumed['model'][k]), k
    assert full['losses'] == resumed['losses'] and full['values'] == resumed['values']


def test_outside_torchrun_distrib_ctx_changes_nothing():
    assert num_distrib() == 1
    g = torch.Generator().manual_seed(0)
    data = [(torch.randn(8, 8, generator=g), torch.randint(0, 2, (8,), generator=g)) for _ in range(3)]
    def run(ctx):
        torch.manual_seed(0)
        learn = Learner(DataLoaders(data, data[:1]), nn.Linear(8, 2), F.cross_entropy, opt_func=SGD, lr=0.1)
        learn.progress.show_table = False
        if ctx:
            with learn.distrib_ctx(): learn.fit(2)
        else: learn.fit(2)
        return learn
    a, b = run(True), run(False)
    assert type(a.model) is nn.Linear and not hasattr(a, 'distributed_trainer')
    for p, q in zip(a.model.parameters(), b.model.parameters()): assert torch.equal(p, q)
