"""Record fastai 2.8.12's freezing, fine-tuning, predict, callback-ordering and smooth-loss
behaviour as a test fixture.

Writes `fastai_finetune.json` next to this file. fastnote's tests compare against it, so
fastai itself is not needed to run the test suite, only to regenerate.

Regenerate (in a scratch venv outside the repo; fastai is not a fastnote dependency):

    python3 -m venv /tmp/fastai_venv
    /tmp/fastai_venv/bin/pip install torch==2.13.0
    echo torch==2.13.0 > /tmp/fastai_constraints.txt
    /tmp/fastai_venv/bin/pip install -c /tmp/fastai_constraints.txt --no-deps fastai==2.8.12
    /tmp/fastai_venv/bin/pip install -c /tmp/fastai_constraints.txt numpy matplotlib requests \
        pyyaml pandas scipy "plum-dispatch<2.10" fastcore fasttransform fastprogress \
        fastdownload scikit-learn
    /tmp/fastai_venv/bin/python tests/data/make_fastai_finetune.py

(torchvision and spacy are not needed.) The output is deterministic: CPU only, one thread,
every random draw from a seeded generator or after `torch.manual_seed`.

Common setup ("meta" has the exact values): training data 64 items, validation 32 items,
4 features, 3 classes, drawn from `torch.Generator().manual_seed(DATA_SEED)` in the order
x_train = randn(64,4), noise_train = randn(64,3), x_valid = randn(32,4),
noise_valid = randn(32,3); y = (x[:, :3] + 0.5*noise).argmax(1) (int64). Wrapped as
`torch.utils.data.DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)` (train and
valid), then `fastai.data.core.DataLoaders(train_dl, valid_dl)`. The model is built right
after `torch.manual_seed(MODEL_SEED)`:
`nn.Sequential(nn.Sequential(nn.Linear(4,8), nn.BatchNorm1d(8), nn.ReLU()), nn.Linear(8,3))`,
splitter `lambda m: [params(m[0]), params(m[1])]`, loss `CrossEntropyLossFlat()`, all other
Learner arguments default (fastai Adam, lr=1e-3, wd=None so Adam's wd=0.01 decoupled,
train_bn=True, wd_bn_bias=False, moms=(0.95,0.85,0.95)). A fresh learner per case.
ProgressCallback (registered as a default by importing `fastai.callback.schedule`) is removed
and the logger silenced; neither affects training.

Sections of the JSON:

* "meta": versions, seeds, sizes, the model, the parameter names in order, initial
  weights of the 2-group model, the data tensors themselves, Adam's default hypers.
* "freeze": cases a..e (keys describe the calls). Each has: "calls" (the exact calls),
  "opt_state_before"/"opt_state_after" the freeze call (null if `learn.opt` was None;
  else {"n_entries": len(learn.opt.state), "keys": {param name: sorted state keys}}),
  "frozen_idx", "requires_grad" and "grad_is_none" per named parameter right after the
  freeze call,
  "warnings" raised by the freeze call (category: message), and after the fit:
  "changed" (param name -> max abs diff vs. before the fit), "bn_running_stats_changed",
  "bn_buffers_max_abs_diff". Case e uses the default splitter (one parameter group).
* "fine_tune": two cases; per training batch at `before_step`: "fit_idx" (0 = the frozen
  fit_one_cycle, 1 = the unfrozen one), "epoch", "iter", "frozen_idx", "hypers" (list, one
  dict per param group, keys lr, mom, sqr_mom, wd, eps), "loss" (the batch loss).
  Also per fit n_epoch; "recorder_values" (train/valid loss per epoch of each fit); for case
  a "final_weights" (name -> flat list) and "final_buffers" (BatchNorm running stats).
* "predict": classification (CrossEntropyLossFlat, Categorize), multi-label
  (BCEWithLogitsLossFlat, MultiCategorize + OneHotEncode) and regression (MSELossFlat),
  each with a Linear(4, n_out) built after torch.manual_seed(PREDICT_SEED) (weights also
  recorded) and no training. For 3 inputs: `learn.predict(x)`'s three return values
  (type, repr/str, dtype, shape, value), `learn.get_preds(dl=test_dl)` and
  `learn.get_preds(dl=test_dl, with_decoded=True)`. "setup" describes the Datasets.
* "callback_order": source facts in "notes", then experiments: each case lists the callback
  classes (order, run_before, run_after), the order they were added, `learn.cbs` names,
  `learn.ordered_cbs('before_fit')` names, the order `before_fit` actually ran in a real
  `fit(1)`, and any exception. Plus "legacy_names": whether methods named begin_train,
  after_batchh, on_epoch_end are called, and warnings.
* "smooth_loss_xy": after `fit(1)` (freeze setup, no freezing): `learn.smooth_loss`, the
  per-batch losses, a recomputation, Recorder beta, the source of AvgSmoothLoss, and, at
  after_pred, whether `learn.x`/`learn.y` exist and are `learn.xb[0]`/`learn.yb[0]`.
"""
import inspect
import json
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastai
import fastcore
from fastai.callback.core import Callback
import fastai.callback.schedule  # noqa: F401  (patches fit_one_cycle, fine_tune)
from fastai.data.core import DataLoaders, Datasets
from fastai.data.transforms import Categorize, MultiCategorize, OneHotEncode
from fastai.learner import AvgSmoothLoss, Learner, Recorder
from fastai.losses import BCEWithLogitsLossFlat, CrossEntropyLossFlat, MSELossFlat
from fastai.torch_core import params

torch.set_num_threads(1)

OUT = Path(__file__).with_name("fastai_finetune.json")

DATA_SEED, MODEL_SEED, PREDICT_SEED = 1, 0, 2
N_TRAIN, N_VALID, N_FEAT, N_CLASS, BS = 64, 32, 4, 3, 16
HYPER_KEYS = ["lr", "mom", "sqr_mom", "wd", "eps"]


def f(v):
    "fastai hypers may be Python floats, numpy scalars or tensors."
    return float(v)


def flat(t): return [float(v) for v in t.detach().reshape(-1)]


# ---------------------------------------------------------------------------- setup

def make_data():
    g = torch.Generator().manual_seed(DATA_SEED)
    xt, nt = torch.randn(N_TRAIN, N_FEAT, generator=g), torch.randn(N_TRAIN, N_CLASS, generator=g)
    xv, nv = torch.randn(N_VALID, N_FEAT, generator=g), torch.randn(N_VALID, N_CLASS, generator=g)
    yt, yv = (xt[:, :3] + 0.5 * nt).argmax(1), (xv[:, :3] + 0.5 * nv).argmax(1)
    return xt, yt, xv, yv


DATA = make_data()


def make_dls():
    xt, yt, xv, yv = DATA
    return DataLoaders(DataLoader(TensorDataset(xt, yt), batch_size=BS, shuffle=False),
                       DataLoader(TensorDataset(xv, yv), batch_size=BS, shuffle=False))


def make_model():
    torch.manual_seed(MODEL_SEED)
    return nn.Sequential(nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU()), nn.Linear(8, 3))


def splitter(m): return [params(m[0]), params(m[1])]


def quiet(learn):
    learn.logger = lambda *a, **k: None
    if hasattr(learn, "progress"): learn.remove_cb(learn.progress)
    return learn


def make_learner(two_groups=True, cbs=None):
    kw = {"splitter": splitter} if two_groups else {}
    return quiet(Learner(make_dls(), make_model(), loss_func=CrossEntropyLossFlat(), cbs=cbs, **kw))


# ---------------------------------------------------------------------------- freeze

def names_of(learn): return {p: n for n, p in learn.model.named_parameters()}


def opt_state(learn):
    if learn.opt is None: return None
    nm = names_of(learn)
    # read the defaultdict without creating entries
    return {"n_entries": len(learn.opt.state),
            "keys": {nm[p]: sorted(s.keys()) for p, s in list(learn.opt.state.items())}}


def snapshot(learn):
    return ({n: p.detach().clone() for n, p in learn.model.named_parameters()},
            {n: b.detach().clone() for n, b in learn.model.named_buffers()})


def do_freeze(learn, call):
    before = opt_state(learn)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        escaped = None
        try: call(learn)
        except Exception as e: escaped = f"{type(e).__name__}: {e}"
    return {"opt_state_before": before, "opt_state_after": opt_state(learn),
            "frozen_idx": getattr(learn.opt, "frozen_idx", None),
            "requires_grad": {n: p.requires_grad for n, p in learn.model.named_parameters()},
            "grad_is_none": {n: p.grad is None for n, p in learn.model.named_parameters()},
            "warnings": [f"{x.category.__name__}: {x.message}" for x in w],
            "escaped": escaped}


def fit_diff(learn, epochs=1, lr=1e-2):
    ps, bs = snapshot(learn)
    learn.fit(epochs, lr)
    ps2, bs2 = snapshot(learn)
    diff = {n: float((ps2[n] - ps[n]).abs().max()) for n in ps}
    bdiff = {n: float((bs2[n].double() - bs[n].double()).abs().max()) for n in bs}
    return {"max_abs_diff": diff, "changed": {n: d for n, d in diff.items() if d > 0},
            "bn_buffers_max_abs_diff": bdiff,
            "bn_running_stats_changed": any(bdiff[k] > 0 for k in bdiff if "running" in k),
            "requires_grad_after_fit": {n: p.requires_grad for n, p in learn.model.named_parameters()},
            "opt_state_after_fit": opt_state(learn),
            "frozen_idx_after_fit": learn.opt.frozen_idx}


def freeze_cases():
    res = {}
    learn = make_learner()
    r = do_freeze(learn, lambda l: l.freeze())
    r.update(fit_diff(learn)); r["calls"] = ["learn.freeze()", "learn.fit(1, 1e-2)"]
    res["a_freeze"] = r

    learn = make_learner()
    r = do_freeze(learn, lambda l: l.freeze_to(1))
    r.update(fit_diff(learn)); r["calls"] = ["learn.freeze_to(1)", "learn.fit(1, 1e-2)"]
    res["b_freeze_to_1"] = r

    learn = make_learner()
    learn.freeze()
    learn.fit(1, 1e-2)  # fills Adam state (grad_avg, sqr_avg, step) for the trainable params
    r = do_freeze(learn, lambda l: l.unfreeze())
    r.update(fit_diff(learn))
    r["calls"] = ["learn.freeze()", "learn.fit(1, 1e-2)", "learn.unfreeze()", "learn.fit(1, 1e-2)"]
    r["note"] = "opt_state_before/after are around the unfreeze() call; the first fit filled the state"
    res["c_unfreeze_after_freeze_fit"] = r

    for n in (-1, 5):
        learn = make_learner()
        learn.fit(1, 1e-2)  # so that there is optimizer state to clear
        r = do_freeze(learn, lambda l, n=n: l.freeze_to(n))
        r.update(fit_diff(learn))
        r["calls"] = ["learn.fit(1, 1e-2)", f"learn.freeze_to({n})", "learn.fit(1, 1e-2)"]
        res[f"d_freeze_to_{n}"] = r

    learn = make_learner(two_groups=False)
    learn.create_opt()
    r = do_freeze(learn, lambda l: l.freeze())
    r["n_param_groups"] = len(learn.opt.param_lists)
    r.update(fit_diff(learn)); r["calls"] = ["learn.create_opt()", "learn.freeze()", "learn.fit(1, 1e-2)"]
    # what the Optimizer's own freeze() (which asserts >1 group) does on one group
    try: learn.opt.freeze(); r["opt_freeze_one_group"] = "no exception"
    except Exception as e: r["opt_freeze_one_group"] = f"{type(e).__name__}: {e}"
    res["e_one_group_freeze"] = r
    res["notes"] = [
        "fastai/learner.py Learner.freeze_to(n): create_opt() if opt is None; opt.freeze_to(n); "
        "opt.clear_state(). Learner.freeze = freeze_to(-1); Learner.unfreeze = freeze_to(0).",
        "fastai/optimizer.py _BaseOptimizer.freeze_to: frozen_idx = n if n >= 0 else "
        "len(param_lists)+n; warns 'Freezing {frozen_idx} groups; model has {k}; whole model is "
        "frozen.' if frozen_idx >= k; groups [n:] get requires_grad True, groups [:n] get "
        "requires_grad_(False or state.get('force_train', False)).",
        "Optimizer.clear_state keeps only _keep_on_clear = ['force_train', 'do_wd'] of each "
        "param's state (Adam's grad_avg, sqr_avg, step are dropped). Learner.create_opt sets "
        "do_wd=False for norm and bias params (wd_bn_bias=False) and force_train=True for norm "
        "params (train_bn=True), so BatchNorm weight/bias stay trainable when frozen.",
        "Learner.freeze() on a one-group optimizer: freeze_to(-1) -> frozen_idx 0, nothing frozen, "
        "no warning (only Optimizer.freeze(), not used by Learner, asserts len(param_lists)>1).",
        "Frozen params keep a stale zeroed .grad when they were trained before the freeze "
        "(d cases: grad_is_none False): Optimizer.step iterates all_params(with_grad=True) "
        "(p.grad is not None), so Adam steps them with a zero gradient and fresh state, which "
        "moves nothing, but decoupled weight decay still multiplies them by (1 - lr*wd) per "
        "step when do_wd is true: '0.0.weight' changes by ~4e-4*|w| in d_freeze_to_-1, "
        "'0.0.bias' (do_wd False) does not. Starting from a fresh learner (a, b) grads are None "
        "and frozen params do not move.",
        "BatchNorm running stats update whenever the model is in train mode, frozen or not "
        "(fastai 2.8 freezing does not put BatchNorm in eval mode).",
    ]
    return res


# ---------------------------------------------------------------------------- fine_tune

class HyperRec(Callback):
    order = 100

    def __init__(self):
        super().__init__()
        self.rows, self.fit_idx, self.n_epochs = [], -1, []

    def before_fit(self):
        self.fit_idx += 1
        self.n_epochs.append(self.learn.n_epoch)

    def before_step(self):
        o = self.learn.opt
        self.rows.append({"fit_idx": self.fit_idx, "epoch": self.learn.epoch, "iter": self.learn.iter,
                          "frozen_idx": o.frozen_idx,
                          "hypers": [{k: f(h[k]) for k in HYPER_KEYS} for h in o.hypers],
                          "loss": float(self.learn.loss.detach())})


def fine_tune_case(call):
    learn = make_learner()
    rec = HyperRec()
    learn.add_cb(rec)
    values = []

    class Vals(Callback):
        order = 101
        def after_fit(self): values.append([[float(v) for v in r] for r in self.learn.recorder.values])

    learn.add_cb(Vals())
    call(learn)
    return learn, {"n_batches": len(rec.rows), "n_epoch_per_fit": rec.n_epochs, "batches": rec.rows,
                   "recorder_values_per_fit": values,
                   "requires_grad_end": {n: p.requires_grad for n, p in learn.model.named_parameters()}}


def fine_tune_cases():
    res = {}
    learn, r = fine_tune_case(lambda l: l.fine_tune(2))
    r["call"] = "learn.fine_tune(2)"
    r["final_weights"] = {n: flat(p) for n, p in learn.model.named_parameters()}
    r["final_buffers"] = {n: flat(b.float()) if b.dtype != torch.int64 else [int(v) for v in b.reshape(-1)]
                          for n, b in learn.model.named_buffers()}
    res["a_defaults"] = r
    _, r = fine_tune_case(lambda l: l.fine_tune(3, base_lr=1e-2, freeze_epochs=2, lr_mult=10,
                                                 pct_start=0.5, div=10.))
    r["call"] = "learn.fine_tune(3, base_lr=1e-2, freeze_epochs=2, lr_mult=10, pct_start=0.5, div=10.)"
    res["b_custom"] = r
    res["source"] = inspect.getsource(Learner.fine_tune)
    return res


# ---------------------------------------------------------------------------- predict

PRED_INPUTS = [[1.0, -2.0, 0.5, 1.5], [3.0, 1.0, -2.0, -4.0], [-2.0, 2.5, 0.5, 3.0]]
VOCAB = ["a", "b", "c"]


def cls_label(x): return VOCAB[int(x[:3].argmax())]
def ml_label(x): return [VOCAB[i] for i in range(3) if float(x[i]) > 0]
def reg_target(x): return x[:3].sum(0, keepdim=True) * 0.5 + x[3:4]


def ident(x): return x


def describe(o):
    d = {"type": f"{type(o).__module__}.{type(o).__name__}", "str": str(o),
         "isinstance_str": isinstance(o, str), "isinstance_tensor": isinstance(o, torch.Tensor)}
    if isinstance(o, torch.Tensor):
        d.update(dtype=str(o.dtype), shape=list(o.shape),
                 value=(o.tolist() if o.dtype != torch.bool else [bool(v) for v in o.reshape(-1)]))
        if o.dtype in (torch.float32, torch.float64): d["value"] = flat(o) if o.dim() else float(o)
    elif isinstance(o, (list, tuple)):
        d["items"] = [describe(v) for v in o]
    return d


def predict_case(kind):
    g = torch.Generator().manual_seed(DATA_SEED + 10)
    xs = list(torch.randn(24, 4, generator=g))
    if kind == "classification":
        tfms, loss, n_out = [[ident], [cls_label, Categorize(vocab=VOCAB)]], CrossEntropyLossFlat(), 3
    elif kind == "multilabel":
        tfms, loss, n_out = [[ident], [ml_label, MultiCategorize(vocab=VOCAB), OneHotEncode()]], BCEWithLogitsLossFlat(), 3
    else:
        tfms, loss, n_out = [[ident], [reg_target]], MSELossFlat(), 1
    dsets = Datasets(xs, tfms, splits=[list(range(16)), list(range(16, 24))])
    dls = dsets.dataloaders(bs=8, shuffle=False)
    torch.manual_seed(PREDICT_SEED)
    model = nn.Linear(4, n_out)
    learn = quiet(Learner(dls, model, loss_func=loss))
    inputs = [torch.tensor(v) for v in PRED_INPUTS]
    out = {"loss_func": type(loss).__name__, "n_out": n_out,
           "weights": {n: flat(p) for n, p in model.named_parameters()},
           "inputs": PRED_INPUTS,
           "raw_model_output": [flat(model(x[None])[0]) for x in inputs]}
    preds = []
    for x in inputs:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            res = learn.predict(x)
        preds.append({"n_returned": len(res), "decoded": describe(res[0]), "decoded_preds": describe(res[1]),
                      "probs": describe(res[2]),
                      "warnings": [f"{x.category.__name__}: {x.message}" for x in w]})
    out["predict"] = preds
    tdl = dls.test_dl(inputs)
    gp = learn.get_preds(dl=tdl)
    out["get_preds"] = {"n_returned": len(gp), "preds": describe(gp[0]), "targs": describe(gp[1])}
    gpd = learn.get_preds(dl=tdl, with_decoded=True)
    out["get_preds_with_decoded"] = {"n_returned": len(gpd), "preds": describe(gpd[0]),
                                     "targs": describe(gpd[1]), "decoded": describe(gpd[2])}
    gpv = learn.get_preds(with_decoded=True)  # default: the validation set
    out["get_preds_valid_with_decoded"] = {"n_returned": len(gpv), "preds_shape": list(gpv[0].shape),
                                           "targs": describe(gpv[1]), "decoded": describe(gpv[2])}
    out["loss_activation_and_decodes"] = {
        "activation": getattr(loss, "activation", None).__qualname__ if hasattr(loss, "activation") else None,
        "decodes": getattr(loss, "decodes", None).__qualname__ if hasattr(loss, "decodes") else None}
    out["valid_inputs"] = [flat(x) for x in xs[16:24]]
    return out


def predict_cases():
    return {"setup": ("Datasets(items, tfms, splits=[range(16), range(16,24)]) where items = "
                      "list(torch.randn(24,4, generator=torch.Generator().manual_seed(DATA_SEED+10))) "
                      "(each item a float32 tensor of shape (4,)); input tfms [ident] (a plain "
                      "function returning x); target tfms: classification [cls_label, "
                      "Categorize(vocab=['a','b','c'])] with cls_label(x) = vocab[argmax(x[:3])]; "
                      "multilabel [ml_label, MultiCategorize(vocab), OneHotEncode()] with ml_label(x) = "
                      "[vocab[i] for i in 0..2 if x[i] > 0]; regression [reg_target] with "
                      "reg_target(x) = x[:3].sum(keepdim) * 0.5 + x[3:4] (shape (1,)). "
                      "dls = dsets.dataloaders(bs=8, shuffle=False); torch.manual_seed(PREDICT_SEED); "
                      "model nn.Linear(4, n_out); untrained. learn.predict(torch.tensor(input)). "
                      "get_preds with dl=dls.test_dl(inputs) (no labels, so targs is None)."),
            "classification": predict_case("classification"),
            "multilabel": predict_case("multilabel"),
            "regression": predict_case("regression")}


# ---------------------------------------------------------------------------- callback_order

def order_experiment(specs, add_order):
    """specs: name -> (order, run_before names, run_after names, as_list). Build classes, add
    instances in `add_order`, record ordering and a real fit."""
    trace = []
    classes = {}
    for name, (order, *_rest) in specs.items():
        def bf(self, _n=name): trace.append(_n)
        classes[name] = type(name, (Callback,), {"order": order, "before_fit": bf})
    for name, (order, rb, ra, as_list) in specs.items():
        if rb: classes[name].run_before = [classes[c] for c in rb] if as_list else classes[rb[0]]
        if ra: classes[name].run_after = [classes[c] for c in ra] if as_list else classes[ra[0]]
    learn = make_learner()
    escaped = None
    try:
        for n in add_order: learn.add_cb(classes[n]())
    except Exception as e: escaped = f"add_cb: {type(e).__name__}: {e}"
    cbs = [type(cb).__name__ for cb in learn.cbs]
    ordered = [type(cb).__name__ for cb in learn.ordered_cbs("before_fit")]
    try: learn.fit(1)
    except Exception as e: escaped = f"fit: {type(e).__name__}: {e}"
    return {"callbacks": {n: {"order": o, "run_before": rb if as_list else (rb[0] if rb else None),
                              "run_after": ra if as_list else (ra[0] if ra else None),
                              "as_list": as_list}
                          for n, (o, rb, ra, as_list) in specs.items()},
            "add_order": add_order, "learn_cbs": cbs, "ordered_cbs_before_fit": ordered,
            "before_fit_ran": trace, "escaped": escaped}


def callback_order():
    N = None
    cases = {
        "1_same_order_run_before": ({"A": (0, ["B"], N, False), "B": (0, N, N, False)}, ["B", "A"]),
        "2_same_order_run_after": ({"A": (0, N, ["B"], False), "B": (0, N, N, False)}, ["A", "B"]),
        "3_run_after_higher_order": ({"A": (0, N, ["C"], False), "C": (10, N, N, False)}, ["C", "A"]),
        "4_run_before_lower_order": ({"A": (10, ["B"], N, False), "B": (0, N, N, False)}, ["A", "B"]),
        "5_lists": ({"A": (0, N, ["B", "C"], True), "B": (0, N, N, True), "C": (0, ["D"], N, True),
                     "D": (0, N, N, True)}, ["D", "A", "C", "B"]),
        "6_cycle": ({"A": (0, N, ["B"], False), "B": (0, N, ["A"], False)}, ["A", "B"]),
        "7_cycle_reverse_add": ({"A": (0, N, ["B"], False), "B": (0, N, ["A"], False)}, ["B", "A"]),
        "8_mixed_orders": ({"A": (5, N, N, False), "B": (-20, N, N, False), "C": (60, ["A"], N, False),
                            "D": (5, N, ["C"], False)}, ["D", "C", "A", "B"]),
    }
    res = {n: order_experiment(*c) for n, c in cases.items()}
    learn = make_learner()
    res["defaults"] = {"learn_cbs": [type(c).__name__ for c in learn.cbs],
                       "orders": {type(c).__name__: c.order for c in learn.cbs},
                       "run_after_attrs": {type(c).__name__: str(getattr(c, "run_after", None)) for c in learn.cbs}}
    res["legacy_names"] = legacy_names()
    import fastcore.foundation as ff
    res["notes"] = [
        "fastai/learner.py Learner._call_one: `for cb in self.cbs.sorted('order'): cb(event_name)`; "
        "Learner.ordered_cbs: `[cb for cb in self.cbs.sorted('order') if hasattr(cb, event)]`; "
        "Learner.add_cb just appends to self.cbs (no sorting, no run_before/run_after check).",
        "fastcore/foundation.py L.sorted -> sorted_ex (fastcore/basics.py): Python's stable sorted "
        "with key=attrgetter('order'), so ties keep insertion (add_cb) order.",
        "No `sort_by_run` exists in fastai 2.8.12 or fastcore %s (grep of both packages finds none); "
        "run_before/run_after are only set as class attributes on a few callbacks "
        "(e.g. fastai/callback/training.py, fastai/distributed.py, fastai/vision/gan.py) and are "
        "never read by the Learner." % fastcore.__version__,
        "fastai/callback/core.py Callback.__call__ calls `getcallable(self, event_name)()` "
        "(fastcore getcallable = getattr(o, attr, noop)), so methods not named after an event are "
        "never called; nothing checks callback method names.",
        "L.sorted source: " + inspect.getsource(ff.L.sorted).strip(),
    ]
    return res


def legacy_names():
    calls = []

    class Legacy(Callback):
        def begin_train(self): calls.append("begin_train")
        def begin_fit(self): calls.append("begin_fit")
        def after_batchh(self): calls.append("after_batchh")
        def on_epoch_end(self): calls.append("on_epoch_end")
        def after_epoch(self): calls.append("after_epoch")

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        learn = make_learner()
        escaped = None
        try:
            learn.add_cb(Legacy())
            learn.fit(1)
        except Exception as e: escaped = f"{type(e).__name__}: {e}"
    return {"methods_defined": ["begin_train", "begin_fit", "after_batchh", "on_epoch_end", "after_epoch"],
            "called": calls, "warnings": [f"{x.category.__name__}: {x.message}" for x in w],
            "escaped": escaped}


# ---------------------------------------------------------------------------- smooth loss

def smooth_loss_xy():
    seen = {}
    losses = []

    class Probe(Callback):
        order = 100
        def after_pred(self):
            if not self.learn.training or seen: return
            L_ = self.learn
            for nm, src in (("x", "xb"), ("y", "yb")):
                try:
                    v = getattr(L_, nm)
                    seen[f"learn_{nm}_exists"] = True
                    seen[f"learn_{nm}_is_{src}0"] = v is getattr(L_, src)[0]
                except AttributeError as e:
                    seen[f"learn_{nm}_exists"] = False
                    seen[f"learn_{nm}_error"] = f"AttributeError: {e}"
            seen["xb_type"] = type(L_.xb).__name__
            seen["len_xb"], seen["len_yb"] = len(L_.xb), len(L_.yb)
            seen["xb0_shape"], seen["yb0_shape"] = list(L_.xb[0].shape), list(L_.yb[0].shape)

        def after_loss(self):
            if self.learn.training: losses.append(float(self.learn.loss.detach()))

    learn = make_learner(cbs=[Probe()])
    learn.fit(1)
    beta = learn.recorder.smooth_loss.beta
    val = torch.tensor(0.)
    for l in losses: val = torch.lerp(torch.tensor(l), val, beta)
    recomputed = float(val / (1 - beta ** len(losses)))
    sl = learn.smooth_loss
    return {"call": "learn.fit(1) (fresh 2-group learner, no freeze, lr=1e-3 default)",
            "smooth_loss": float(sl), "smooth_loss_type": f"{type(sl).__module__}.{type(sl).__name__}",
            "smooth_loss_dtype": str(sl.dtype) if isinstance(sl, torch.Tensor) else None,
            "train_batch_losses": losses, "recomputed": recomputed,
            "recomputed_equal": recomputed == float(sl),
            "recorder_beta": beta, "recorder_losses": [float(v) for v in learn.recorder.losses],
            "count": learn.recorder.smooth_loss.count,
            "xy_at_after_pred": seen,
            "notes": ["fastai/learner.py AvgSmoothLoss.accumulate: count += 1; "
                      "val = torch.lerp(to_detach(learn.loss.mean()), val, beta) (i.e. "
                      "val = beta*val + (1-beta)*loss); value = val/(1-beta**count) (debiased EMA); "
                      "reset() (count=0, val=0) only in Recorder.before_fit, so it carries across epochs.",
                      "fastai/learner.py Recorder.__init__(beta=0.98); Recorder.after_batch (training only) "
                      "accumulates smooth_loss, appends its value to recorder.losses and sets "
                      "learn.smooth_loss = smooth_loss.value (a 0-dim tensor).",
                      "fastai/learner.py (after class Learner): `Learner.x,Learner.y = add_props(lambda "
                      "i,x: detuplify((x.xb,x.yb)[i]))`: read-only properties; detuplify gives xb[0] "
                      "when xb has one element (else the tuple itself), so learn.x is learn.xb[0] "
                      "here. xb/yb are built in Learner._split as b[:i], b[i:] (lists for a torch "
                      "DataLoader batch)."],
            "source_AvgSmoothLoss": inspect.getsource(AvgSmoothLoss),
            "source_Recorder_after_batch": inspect.getsource(Recorder.after_batch)}


# ---------------------------------------------------------------------------- main

def main():
    learn = make_learner()
    learn.create_opt()
    xt, yt, xv, yv = DATA
    model = make_model()
    # the loss used here is numerically nn.CrossEntropyLoss() (mean) on these shapes
    with torch.no_grad():
        out = model(xt[:BS])
        assert float(CrossEntropyLossFlat()(out, yt[:BS])) == float(nn.CrossEntropyLoss()(out, yt[:BS]))
    meta = {
        "fastai_version": fastai.__version__, "fastcore_version": fastcore.__version__,
        "torch_version": torch.__version__, "generator": "tests/data/make_fastai_finetune.py",
        "seeds": {"DATA_SEED": DATA_SEED, "MODEL_SEED": MODEL_SEED, "PREDICT_SEED": PREDICT_SEED},
        "sizes": {"n_train": N_TRAIN, "n_valid": N_VALID, "n_features": N_FEAT, "n_classes": N_CLASS,
                  "bs": BS, "train_batches_per_epoch": N_TRAIN // BS, "valid_batches": N_VALID // BS},
        "data": ("g = torch.Generator().manual_seed(DATA_SEED); x_train = torch.randn(64,4,generator=g); "
                 "noise_train = torch.randn(64,3,generator=g); x_valid = torch.randn(32,4,generator=g); "
                 "noise_valid = torch.randn(32,3,generator=g); y = (x[:, :3] + 0.5*noise).argmax(1); "
                 "torch DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False) for train and "
                 "valid, wrapped in fastai DataLoaders(train_dl, valid_dl)"),
        "data_values": {"x_train": [flat(r) for r in xt], "y_train": yt.tolist(),
                        "x_valid": [flat(r) for r in xv], "y_valid": yv.tolist()},
        "model": ("torch.manual_seed(MODEL_SEED); nn.Sequential(nn.Sequential(nn.Linear(4,8), "
                  "nn.BatchNorm1d(8), nn.ReLU()), nn.Linear(8,3))"),
        "splitter": "lambda m: [params(m[0]), params(m[1])]",
        "loss": "fastai CrossEntropyLossFlat() (equal to nn.CrossEntropyLoss() here)",
        "learner": ("Learner(dls, model, loss_func=CrossEntropyLossFlat(), splitter=splitter), other "
                    "arguments default; ProgressCallback removed; a fresh learner per case"),
        "param_names": [n for n, _ in model.named_parameters()],
        "buffer_names": [n for n, _ in model.named_buffers()],
        "initial_weights": {n: flat(p) for n, p in model.named_parameters()},
        "default_adam_hypers": [{k: f(v) for k, v in h.items()} for h in learn.opt.hypers],
        "opt_state_after_create_opt": opt_state(learn),
        "default_callbacks": [type(cb).__name__ for cb in learn.cbs],
    }
    data = {"meta": meta, "freeze": freeze_cases(), "fine_tune": fine_tune_cases(),
            "predict": predict_cases(), "callback_order": callback_order(),
            "smooth_loss_xy": smooth_loss_xy()}
    OUT.write_text(json.dumps(data, indent=None, separators=(",", ":")) + "\n")
    assert json.loads(OUT.read_text()) == data
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
