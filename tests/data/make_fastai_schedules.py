"""Record fastai 2.8.12's hyper-parameter scheduling values as a test fixture.

Writes `fastai_schedules.json` next to this file. fastnote's own schedule, one-cycle,
SGDR and LR-finder tests compare against it, so fastai itself is not needed to run the
test suite, only to regenerate.

Regenerate (in a scratch venv outside the repo; fastai is not a fastnote dependency):

    python3 -m venv /tmp/fastai_venv
    /tmp/fastai_venv/bin/pip install torch==2.13.0
    /tmp/fastai_venv/bin/pip install --no-deps fastai==2.8.12
    /tmp/fastai_venv/bin/pip install numpy matplotlib requests pyyaml pandas scipy \
        "plum-dispatch<2.10" fastcore fasttransform fastprogress fastdownload scikit-learn
    /tmp/fastai_venv/bin/python tests/data/make_fastai_schedules.py

(only `fastai.learner`, `fastai.callback.core`, `fastai.callback.schedule`,
`fastai.optimizer` and `fastai.data.core` are imported; torchvision is not needed.)

Sections of the JSON:

* "scheds": each schedule evaluated at every position in "positions" (a grid of
  0.05 steps, exact boundaries, and positions carrying float error such as
  `0.05*3`, `i/20`, `i*(1/40)`). "combine_scheds_sum_check" records whether
  `combine_scheds` accepts pcts whose Python `sum` is or is not exactly 1.0, and
  "combine_scheds_extra" a few edge positions (just below a boundary, beyond 1).
* "fits": per training batch, the hypers of the last parameter group as seen in
  `before_step` (key "hypers": lr, mom, sqr_mom, wd, eps), what fastai's
  `ParamScheduler` stored in `learn.recorder.hps`, and `learn.recorder.lrs`. Every
  case uses a fresh learner (setup in "meta").
* "suggestions": fastai's `valley`, `slide`, `minimum`, `steep` applied to four
  synthetic curves, passed the way `Learner.lr_find` passes them (with the exact
  arrays passed), plus real `lr_find` runs: on the fit setup (stops after 2
  iterations and raises IndexError from `valley` on the empty slice; recorded as is),
  the same with `stop_div=False`, and on a repeated learnable batch with fastai's Adam
  (100 iterations) and fastai's SGD (diverges, stops early).

Learners keep fastai's default callbacks except ProgressCallback (registered as a
default because `fastai.callback.schedule` imports `fastai.basics`), removed so that
nothing is drawn; it does not touch hyper-parameters.
* "meta": versions and setups.
"""
import json
import math
import tempfile
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

import fastai
from fastai.callback.core import Callback
from fastai.callback.schedule import (SchedCos, SchedExp, SchedLin, SchedNo, SchedPoly,
                                      combine_scheds, combined_cos, minimum, slide, steep,
                                      valley)
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.optimizer import SGD, OptimWrapper

torch.set_num_threads(1)

OUT = Path(__file__).with_name("fastai_schedules.json")

# ---------------------------------------------------------------------------- scheds

POSITIONS = ([0.0] + [0.05 * k for k in range(1, 20)] + [1.0]
             + [0.25, 0.3, 0.75]
             + [i / 20 for i in range(21)]
             + [i * (1 / 40) for i in range(41)])

LR_MAX, DIV, DIV_FINAL = 1e-2, 25.0, 1e5

SCHEDS = {
    "SchedLin(1,10)": SchedLin(1, 10),
    "SchedCos(1,10)": SchedCos(1, 10),
    "SchedNo(1,10)": SchedNo(1, 10),
    "SchedExp(1e-3,10)": SchedExp(1e-3, 10),
    "SchedPoly(1,10,2)": SchedPoly(1, 10, 2),
    "SchedPoly(1,10,0.5)": SchedPoly(1, 10, 0.5),
    "SchedCos(10,1)": SchedCos(10, 1),
    "combine_scheds([0.3,0.7],[SchedLin(0,1),SchedCos(1,0.1)])":
        combine_scheds([0.3, 0.7], [SchedLin(0, 1), SchedCos(1, 0.1)]),
    "combine_scheds([0.25,0.25,0.5],[SchedCos(0.1,1),SchedNo(1,1),SchedExp(1,1e-3)])":
        combine_scheds([0.25, 0.25, 0.5], [SchedCos(0.1, 1), SchedNo(1, 1), SchedExp(1, 1e-3)]),
    # start/end computed as fit_one_cycle does (lr_max/div, lr_max/div_final), in Python floats
    "combined_cos(0.25,4e-4,1e-2,1e-7)": combined_cos(0.25, LR_MAX / DIV, LR_MAX, LR_MAX / DIV_FINAL),
    "combined_cos(0.25,0.95,0.85,0.95)": combined_cos(0.25, 0.95, 0.85, 0.95),
    "combined_cos(0.3,1,2,0)": combined_cos(0.3, 1, 2, 0),
}

SUM_CHECK_PCTS = {
    "[1/7,2/7,4/7]": [1 / 7, 2 / 7, 4 / 7],
    "[0.1,0.2,0.7]": [0.1, 0.2, 0.7],
    "[0.7,0.2,0.1]": [0.7, 0.2, 0.1],
    "[0.1]*10": [0.1] * 10,
    "[1/3,1/3,1/3]": [1 / 3] * 3,
    "[0.5,0.6]": [0.5, 0.6],
}


def to_float(v):
    "fastai may return a Python float, numpy scalar/array (1 group) or tensor."
    if isinstance(v, np.ndarray): v = v.reshape(-1)[0] if v.size == 1 else v
    return float(v)


def sched_values():
    return {name: [to_float(f(p)) for p in POSITIONS] for name, f in SCHEDS.items()}


def sum_checks():
    res = {}
    for name, pcts in SUM_CHECK_PCTS.items():
        try:
            combine_scheds(pcts, [SchedLin(0, 1)] * len(pcts))
            res[name] = {"python_sum": sum(pcts), "result": "ok"}
        except Exception as e:
            res[name] = {"python_sum": sum(pcts), "result": f"{type(e).__name__}: {e}"}
    return res


def _value_or_error(f, p):
    try: return to_float(f(p))
    except Exception as e: return f"{type(e).__name__}: {e}"


def combine_extras():
    "Positions around a float32-rounded boundary and outside [0, 1]."
    f = combine_scheds([0.3, 0.7], [SchedLin(0, 1), SchedLin(5, 6)])
    pos = [0.0, 0.29999999, 0.3 - 1e-9, 0.3, 0.3 + 1e-9, 0.30000002, 0.7, 1.0, 1.0 + 1e-9, 1.5, -0.1]
    return {"sched": "combine_scheds([0.3,0.7],[SchedLin(0,1),SchedLin(5,6)])",
            "positions": pos, "values": [_value_or_error(f, p) for p in pos],
            "pcts_float32_cumsum": [float(x) for x in
                                    torch.cumsum(torch.tensor([0, 0.3, 0.7]), 0)]}


# ---------------------------------------------------------------------------- fits

N_TRAIN, N_VALID, BS = 10, 1, 4
HYPER_KEYS = ["lr", "mom", "sqr_mom", "wd", "eps"]


def make_batches(n, gen):
    return [(torch.randn(BS, 2, generator=gen), torch.randn(BS, 1, generator=gen)) for _ in range(n)]


class HyperRecorder(Callback):
    "Record the last param group's hypers at each training `before_step`, and pct_train at `before_batch`."
    order = 100

    def __init__(self, keys, torch_keys=()):
        super().__init__()
        self.keys, self.torch_keys = keys, torch_keys
        self.hypers, self.torch_pg, self.pct_train = [], [], []

    def before_batch(self):
        if self.learn.training: self.pct_train.append(float(self.learn.pct_train))

    def before_step(self):
        h = self.learn.opt.hypers[-1]
        self.hypers.append({k: to_float(h[k]) for k in self.keys if k in h})
        if self.torch_keys:
            pg = self.learn.opt.opt.param_groups[-1]
            self.torch_pg.append({k: to_float(pg[k]) for k in self.torch_keys})


def make_repeated_batches(n, gen):
    "One learnable batch, y = x @ [[2],[-3]] + 1 + 0.1*noise, repeated `n` times (the same objects)."
    x = torch.randn(BS, 2, generator=gen)
    y = x @ torch.tensor([[2.0], [-3.0]]) + 1 + 0.1 * torch.randn(BS, 1, generator=gen)
    return [(x, y)] * n


def make_learner(opt_func=None, path=None, repeated=False):
    gen = torch.Generator().manual_seed(1)
    mk = make_repeated_batches if repeated else make_batches
    train, valid = mk(N_TRAIN, gen), mk(N_VALID, gen)
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    kw = {} if opt_func is None else {"opt_func": opt_func}
    learn = Learner(DataLoaders(train, valid), model, loss_func=nn.MSELoss(), **kw)
    learn.logger = lambda *a, **k: None
    # importing fastai.callback.schedule pulls in fastai.basics, which registers ProgressCallback
    # as a default callback; it only draws progress bars, so drop it to keep output quiet
    if hasattr(learn, "progress"): learn.remove_cb(learn.progress)
    if path is not None: learn.path = Path(path)
    return learn


FIT_CASES = {
    "fit_one_cycle(2, lr_max=1e-2)": lambda l: l.fit_one_cycle(2, lr_max=1e-2),
    "fit_one_cycle(2)": lambda l: l.fit_one_cycle(2),
    "fit_one_cycle(2, lr_max=1e-2, pct_start=0.3, div=10, div_final=100, moms=(0.9,0.8,0.9))":
        lambda l: l.fit_one_cycle(2, lr_max=1e-2, pct_start=0.3, div=10, div_final=100,
                                  moms=(0.9, 0.8, 0.9)),
    "fit_flat_cos(2, lr=1e-2)": lambda l: l.fit_flat_cos(2, lr=1e-2),
    "fit_sgdr(3, 1, lr_max=1e-2)": lambda l: l.fit_sgdr(3, 1, lr_max=1e-2),
    "fit_one_cycle(2, lr_max=1e-2, wd=0.1)": lambda l: l.fit_one_cycle(2, lr_max=1e-2, wd=0.1),
}


def run_fit(fn, opt_func=None, keys=HYPER_KEYS, torch_keys=()):
    learn = make_learner(opt_func)
    rec = HyperRecorder(keys, torch_keys)
    learn.add_cb(rec)
    fn(learn)
    res = {"n_epoch": learn.n_epoch, "n_batches": len(rec.hypers), "hypers": rec.hypers,
           "recorder_hps": {k: [to_float(v) for v in vs]
                            for k, vs in getattr(learn.recorder, "hps", {}).items()},
           "recorder_lrs": [to_float(v) for v in learn.recorder.lrs],
           "pct_train_before_batch": rec.pct_train}
    if torch_keys: res["torch_param_group"] = rec.torch_pg
    # ParamScheduler's own record must agree with what the optimizer used at step time
    for k, vs in res["recorder_hps"].items():
        assert vs == [h[k] for h in rec.hypers], k
    return res


def all_fits():
    fits = {}
    for name, fn in FIT_CASES.items():
        fits[name] = run_fit(fn)
        if name != "fit_one_cycle(2, lr_max=1e-2)": del fits[name]["pct_train_before_batch"]
    sgd = partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9)
    fits["fit_one_cycle(2, lr_max=0.1) torch SGD"] = run_fit(
        lambda l: l.fit_one_cycle(2, lr_max=0.1), opt_func=sgd, keys=["lr", "mom", "wd"],
        torch_keys=["lr", "momentum", "weight_decay"])
    del fits["fit_one_cycle(2, lr_max=0.1) torch SGD"]["pct_train_before_batch"]
    learn = make_learner(sgd)
    learn.create_opt()
    fits["fit_one_cycle(2, lr_max=0.1) torch SGD"]["optim_wrapper_fwd_map"] = dict(learn.opt.fwd_map)
    return fits


# ---------------------------------------------------------------------------- suggestions

NUM_IT, START_LR, END_LR = 100, 1e-7, 10


def finder_lrs():
    "The lrs the Recorder stores during `lr_find`: SchedExp(1e-7, 10) at train_iter/num_it."
    f = SchedExp(START_LR, END_LR)
    return [f(i / NUM_IT) for i in range(NUM_IT)]


def synthetic_curves():
    lrs = finder_lrs()
    x = [math.log10(lr) for lr in lrs]
    sig = lambda t: 1 / (1 + math.exp(-t))
    valley_curve = [2 - 1.5 * sig((u + 3) * 1.5) + 0.2 * math.exp(u) for u in x]
    rng = np.random.default_rng(0)
    noisy = [v + float(n) for v, n in zip(valley_curve, rng.normal(0, 0.03, len(x)))]
    early_div = [1.0 - 0.1 * sig((u + 6) * 3) + 0.5 * math.exp(2 * (u + 4)) for u in x]
    monotone = [2.0 - 0.15 * (u + 7) for u in x]
    return lrs, {"a_valley": valley_curve, "b_valley_noisy": noisy,
                 "c_early_divergence": early_div, "d_monotone_decreasing": monotone}


SUGGEST_FUNCS = (valley, slide, minimum, steep)


def apply_suggestions(rec_lrs, rec_losses, num_it=NUM_IT):
    "Replicates the body of fastai's `Learner.lr_find` after the fit (fastai's `tensor` casts float64 to float32)."
    from fastai.torch_core import tensor
    lrs, losses = tensor(rec_lrs[num_it // 10:-5]), tensor(rec_losses[num_it // 10:-5])
    nan_idxs = torch.nonzero(torch.isnan(losses.view(-1)))
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs, losses = lrs[:drop_idx], losses[:drop_idx]
    out = {"lrs_passed": [float(v) for v in lrs], "losses_passed": [float(v) for v in losses],
           "dtypes": [str(lrs.dtype), str(losses.dtype)]}
    for func in SUGGEST_FUNCS:
        sug, (plr, ploss) = func(lrs, losses, num_it)
        out[func.__name__] = {"suggestion": float(sug), "point": [float(plr), float(ploss)]}
    return out


def all_suggestions():
    lrs, curves = synthetic_curves()
    res = {"finder_lrs_full": lrs, "curves_full": curves,
           "curves": {name: apply_suggestions(lrs, c) for name, c in curves.items()}}
    res["real_lr_find"] = {
        "fit_setup": run_lr_find(),
        "fit_setup, stop_div=False": run_lr_find(stop_div=False),
        "repeated_batch_setup": run_lr_find(repeated=True),
        "repeated_batch_setup, fastai SGD": run_lr_find(repeated=True, opt_func=SGD),
    }
    return res


def run_lr_find(repeated=False, opt_func=None, **kwargs):
    "One real `learn.lr_find`; records what happened even if it raises after the fit."
    with tempfile.TemporaryDirectory() as d:
        learn = make_learner(opt_func=opt_func, path=d, repeated=repeated)
        before = [p.detach().clone() for p in learn.model.parameters()]
        sugg, escaped = None, None
        try: sugg = learn.lr_find(show_plot=False, suggest_funcs=SUGGEST_FUNCS, **kwargs)
        except Exception as e: escaped = f"{type(e).__name__}: {e}"
        after = list(learn.model.parameters())
        rec_lrs = [to_float(v) for v in learn.recorder.lrs]
        rec_losses = [float(v) for v in learn.recorder.losses]
        res = {
            "call": "learn.lr_find(show_plot=False, suggest_funcs=(valley, slide, minimum, steep)"
                    + "".join(f", {k}={v!r}" for k, v in kwargs.items()) + ")",
            "n_epoch": learn.n_epoch, "n_iterations": len(rec_lrs),
            "stopped_early": len(rec_lrs) < NUM_IT,
            "recorder_lrs": rec_lrs, "recorder_losses_smoothed": rec_losses,
            "escaped": escaped,
            "suggestions": None if sugg is None else {k: float(v) for k, v in sugg._asdict().items()},
            "weights_restored": all(torch.equal(a, b) for a, b in zip(before, after)),
        }
    if sugg is not None:
        res["replicated"] = apply_suggestions(rec_lrs, rec_losses)
        # our replication of lr_find's post-fit body must give what lr_find returned
        for k, v in res["suggestions"].items(): assert res["replicated"][k]["suggestion"] == v, k
    return res


# ---------------------------------------------------------------------------- main

def main():
    learn = make_learner()
    learn.create_opt()
    meta = {
        "fastai_version": fastai.__version__,
        "torch_version": torch.__version__,
        "generator": "tests/data/make_fastai_schedules.py",
        "positions": "0, 0.05*k (k=1..19), 1, then 0.25, 0.3, 0.75, then i/20 (i=0..20), "
                     "then i*(1/40) (i=0..40); in that order, duplicates kept",
        "combined_cos_lr_args": {"start": LR_MAX / DIV, "middle": LR_MAX, "end": LR_MAX / DIV_FINAL,
                                 "start_is_4e-4": LR_MAX / DIV == 4e-4,
                                 "end_is_1e-7": LR_MAX / DIV_FINAL == 1e-7},
        "fit_setup": ("train: python list of 10 batches (x (4,2), y (4,1)), valid: list of 1 batch, "
                      "from torch.Generator().manual_seed(1) via torch.randn (x then y per batch, "
                      "train first); torch.manual_seed(0); model nn.Linear(2,1); nn.MSELoss(); "
                      "dls=fastai.data.core.DataLoaders(train_list, valid_list); Learner defaults "
                      "(opt_func=fastai Adam, lr=1e-3, wd=None, moms=(0.95,0.85,0.95), default "
                      "callbacks); a fresh learner per case"),
        "default_adam_hypers": {k: to_float(v) for k, v in learn.opt.hypers[-1].items()},
        "fit_record": ("'hypers': learn.opt.hypers[-1] at each training before_step; "
                       "'recorder_hps': ParamScheduler's record (scheduled keys only, stored in "
                       "learn.recorder.hps at after_fit); 'pct_train_before_batch': learn.pct_train "
                       "seen at each training before_batch (first case only)"),
        "torch_sgd_setup": ("opt_func=partial(OptimWrapper, opt=torch.optim.SGD, momentum=0.9); "
                            "'hypers' are fastai's mapped names, 'torch_param_group' the raw torch "
                            "param group values"),
        "suggestions_setup": ("curves are the Recorder's (smoothed) loss series over the 100 finder "
                              "iterations, lrs = SchedExp(1e-7,10)(i/100), i=0..99; each function gets "
                              "fastai tensor(...)[num_it//10:-5] = [10:-5] of both (float32), num_it=100. "
                              "a: 2-1.5*sigmoid(1.5*(log10(lr)+3))+0.2*exp(log10(lr)); b: a + "
                              "numpy default_rng(0).normal(0,0.03); c: 1-0.1*sigmoid(3*(log10(lr)+6))"
                              "+0.5*exp(2*(log10(lr)+4)); d: 2-0.15*(log10(lr)+7)"),
        "real_lr_find_setup": ("'fit_setup': the fit_setup learner (Adam, lr=1e-3), learn.path a "
                               "temporary directory; 'repeated_batch_setup': same but train is one batch "
                               "(x=randn(4,2), y = x @ [[2],[-3]] + 1 + 0.1*randn(4,1), from the same "
                               "seeded generator) repeated 10 times and valid the next such batch; "
                               "', fastai SGD': that with opt_func=fastai.optimizer.SGD (diverges, "
                               "so stop_div ends it early)"),
        "default_callbacks": [type(cb).__name__ for cb in learn.cbs],
    }
    data = {"meta": meta,
            "scheds": {"positions": POSITIONS, "values": sched_values(),
                       "combine_scheds_sum_check": sum_checks(),
                       "combine_scheds_extra": combine_extras()},
            "fits": all_fits(),
            "suggestions": all_suggestions()}
    OUT.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    assert json.loads(OUT.read_text()) == data
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
