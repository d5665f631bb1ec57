"""How much fastnote's Learner costs on top of a hand-written PyTorch loop.

The workload is the issue's: an MLP 20 -> 32 -> 2 with cross-entropy, torch's SGD (lr 0.01), 8,192 random samples in a
`torch.utils.data.DataLoader` with batches of 32, one CPU thread. Each round trains one epoch with each contender on the
same loader, in turn, so machine noise hits them alike; we report medians over rounds, in microseconds per batch, and
ratios to the hand-written loop measured in the same run.

Contenders: the hand-written loop (forward, loss, backward, step, zero_grad); fastnote's Learner with its default
callbacks and the progress bar off (`no_bar`, `no_logging`); the same with the bar and table on (output thrown away);
and fastai's Learner, if fastai is installed (it is not a fastnote dependency).
"""
import contextlib, io, statistics, sys, time
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

N_SAMPLES, BS, ROUNDS = 8192, 32, 9


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 2))


def make_loader(seed=0):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(N_SAMPLES, 20, generator=g), torch.randint(0, 2, (N_SAMPLES,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=BS, shuffle=False)


def hand_loop(dl):
    model = make_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    def epoch():
        model.train()
        for xb, yb in dl:
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            opt.step()
            opt.zero_grad()
    return epoch


def fastnote_learner(dl, bar:bool):
    from fastnote import Learner, DataLoaders
    learn = Learner(DataLoaders(dl, []), make_model(), F.cross_entropy, opt_func=torch.optim.SGD, lr=0.01)
    learn.progress.show_bars = bar          # drawn even though the output goes nowhere
    def epoch():
        if bar:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()): learn.fit(1)
        else:
            with learn.no_bar(), learn.no_logging(): learn.fit(1)
    return epoch


def fastai_learner(dl):
    try:
        from fastai.learner import Learner
        from fastai.optimizer import OptimWrapper
        from fastai.data.core import DataLoaders
    except Exception: return None
    from functools import partial
    learn = Learner(DataLoaders(dl, []), make_model(), F.cross_entropy, opt_func=partial(OptimWrapper, opt=torch.optim.SGD), lr=0.01)
    learn.logger = lambda *a: None
    def epoch():
        with learn.no_bar() if hasattr(learn, 'no_bar') else contextlib.nullcontext(): learn.fit(1)
    return epoch


def main():
    torch.set_num_threads(1)
    dl = make_loader()
    contenders = {'hand-written loop': hand_loop(dl), 'fastnote Learner, bar off': fastnote_learner(dl, bar=False),
                  'fastnote Learner, bar on': fastnote_learner(dl, bar=True)}
    fastai = fastai_learner(dl)
    if fastai is not None: contenders['fastai Learner, bar off'] = fastai
    for run in contenders.values(): run()                 # warm-up: first-call costs, caches
    times = {name: [] for name in contenders}
    for _ in range(ROUNDS):
        for name, run in contenders.items():
            start = time.perf_counter(); run()
            times[name].append((time.perf_counter() - start) / len(dl) * 1e6)
    base = statistics.median(times['hand-written loop'])
    print(f"Learner overhead: MLP 20->32->2, torch SGD, {N_SAMPLES} samples, batch {BS}, 1 thread, median of {ROUNDS} rounds")
    print(f"{'':28}{'µs/batch':>10}{'ratio':>8}{'spread':>9}")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:28}{med:10.1f}{med / base:8.3f}{(max(ts) - min(ts)) / med:9.1%}")
    if fastai is None: print("(fastai is not installed: its row is skipped)")


if __name__ == '__main__': main()
