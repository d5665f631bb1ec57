"""Record the exact callback-event order of fastai 2.8.12's `Learner` as a test fixture.

Writes `fastai_events.json` next to this file. fastnote's own `Learner` tests compare
against it, so fastai itself is not needed to run the test suite, only to regenerate.

Regenerate (in a scratch venv outside the repo; fastai is not a fastnote dependency):

    python3 -m venv /tmp/fastai_venv
    /tmp/fastai_venv/bin/pip install torch==2.13.0
    /tmp/fastai_venv/bin/pip install --no-deps fastai==2.8.12
    /tmp/fastai_venv/bin/pip install numpy matplotlib requests pyyaml pandas scipy \
        "plum-dispatch<2.10" fastcore fasttransform fastprogress fastdownload scikit-learn
    /tmp/fastai_venv/bin/python tests/data/make_fastai_events.py

(torchvision and spacy, also declared by fastai, are not needed: only `fastai.learner`,
`fastai.callback.core`, `fastai.optimizer` and `fastai.data.core` are imported.)

Setup for every run: `torch.manual_seed(0)`; model `nn.Linear(2, 1)`; loss `nn.MSELoss()`;
`opt_func=fastai.optimizer.SGD`, `lr=0.1`; training data a plain Python list of 2 batches
`(x (4,2), y (4,1))`, validation data a list of 1 such batch, both from a seeded
`torch.Generator`, wrapped as `DataLoaders(train_list, valid_list)`; `fit(2)`.
The learner keeps fastai's default callbacks (those registered by importing `fastai.learner`:
TrainEvalCallback, Recorder, CastToTensor; no ProgressCallback since `fastai.callback.progress`
is not imported), with its logger silenced.

`EventRecorder` (order=100, so after every fastai built-in) appends each event name it
receives; batch-level events get a ":train"/":valid" suffix from `learn.training`.

Cases: "full" is a plain `fit(2)`. For each cancel exception E and each event V except
`after_create`, a `RaiseOnce` callback (order=50) raises E the first time V fires; the
key is "E@V", the value the recorder's trace and the class name of whatever escaped
`learn.fit` (null if nothing did). The raising callback runs before the recorder, so the
event V that raised is itself missing from the trace at that point.
"""
import json
from pathlib import Path

import torch
from torch import nn

import fastai
import fastai.callback.core as fcore
from fastai.callback.core import Callback, TrainEvalCallback
from fastai.data.core import DataLoaders
from fastai.learner import Learner, defaults
from fastai.optimizer import SGD

torch.set_num_threads(1)

OUT = Path(__file__).with_name("fastai_events.json")

EVENTS = list(fcore._events)
INNER_LOOP = list(fcore._inner_loop)
# Batch-level events that get a ":train"/":valid" suffix. fastai's `_inner_loop` lacks
# `after_cancel_step`, but it is a batch-level event too, so it is suffixed as well.
SUFFIXED = INNER_LOOP + [e for e in ("after_cancel_step",) if e not in INNER_LOOP]
EXCEPTIONS = ["CancelBatchException", "CancelTrainException", "CancelValidException",
              "CancelEpochException", "CancelFitException", "CancelBackwardException",
              "CancelStepException"]


class EventRecorder(Callback):
    "Append every event it receives to `self.trace` (set up in `__init__`)."
    order = 100

    def __init__(self):
        super().__init__()
        self.trace = []

    def _rec(self, name):
        if name in SUFFIXED: name += ":train" if self.learn.training else ":valid"
        self.trace.append(name)


def _recorder_method(name):
    def method(self): self._rec(name)
    method.__name__ = name
    return method


for _name in EVENTS: setattr(EventRecorder, _name, _recorder_method(_name))


class RaiseOnce(Callback):
    "Raise `exc` the first time `event` fires, then never again."
    order = 50

    def __init__(self, exc, event):
        super().__init__()
        self.exc, self.event, self.done = exc, event, False
        setattr(self, event, self._maybe_raise)

    def _maybe_raise(self):
        if not self.done:
            self.done = True
            raise self.exc()


def make_batches(n, gen):
    return [(torch.randn(4, 2, generator=gen), torch.randn(4, 1, generator=gen)) for _ in range(n)]


def make_learner(extra_cbs=(), default_cbs=True):
    gen = torch.Generator().manual_seed(1)
    train, valid = make_batches(2, gen), make_batches(1, gen)
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    rec = EventRecorder()
    cbs = list(extra_cbs) + [rec]
    if not default_cbs: cbs = [TrainEvalCallback()] + cbs
    learn = Learner(DataLoaders(train, valid), model, loss_func=nn.MSELoss(), opt_func=SGD,
                    lr=0.1, cbs=cbs, default_cbs=default_cbs)
    learn.logger = lambda *a, **k: None  # Recorder prints a table per epoch otherwise
    return learn, rec


def run(extra_cbs=(), default_cbs=True):
    learn, rec = make_learner(extra_cbs, default_cbs)
    escaped = None
    try: learn.fit(2)
    except Exception as e: escaped = type(e).__name__
    return {"trace": rec.trace, "escaped": escaped}


def all_cases(default_cbs=True):
    cases = {}
    for exc_name in EXCEPTIONS:
        exc = getattr(fcore, exc_name)
        for ev in EVENTS:
            if ev == "after_create": continue
            cases[f"{exc_name}@{ev}"] = run([RaiseOnce(exc, ev)], default_cbs)
    return cases


def main():
    full = run()
    assert full["escaped"] is None, full
    cases = all_cases()
    # The traces do not depend on fastai's extra default callbacks: check against a learner
    # that has only TrainEvalCallback.
    same_minimal = run(default_cbs=False) == full and all_cases(default_cbs=False) == cases
    learn, _ = make_learner()
    meta = {
        "fastai_version": fastai.__version__,
        "torch_version": torch.__version__,
        "generator": "tests/data/make_fastai_events.py",
        "setup": ("torch.manual_seed(0); model nn.Linear(2,1); loss nn.MSELoss(); "
                  "opt_func=fastai.optimizer.SGD, lr=0.1; train: python list of 2 batches "
                  "(x (4,2), y (4,1)), valid: list of 1 batch, from torch.Generator().manual_seed(1) "
                  "via torch.randn (x then y per batch, train first); "
                  "dls=fastai.data.core.DataLoaders(train_list, valid_list); learn.fit(2)"),
        "default_callbacks": [type(cb).__name__ for cb in learn.cbs if type(cb).__name__ != "EventRecorder"],
        "same_traces_with_only_TrainEvalCallback": same_minimal,
        "recorder": "EventRecorder, order=100, method for every event in _events; trace starts "
                    "with after_create (fired at Learner construction)",
        "raiser": "RaiseOnce, order=50, raises E the first time V fires (both train and valid); "
                  "it runs before the recorder, so V itself is not recorded at that firing",
        "events": EVENTS,
        "inner_loop": INNER_LOOP,
        "suffixed_events": SUFFIXED,
        "exceptions": EXCEPTIONS,
        "n_epoch": 2, "n_train_batches": 2, "n_valid_batches": 1,
    }
    lines = ["{", f'"meta": {json.dumps(meta)},', f'"full": {json.dumps(full["trace"])},', '"cases": {']
    items = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in cases.items()]
    lines.append(",\n".join(items))
    lines += ["}", "}"]
    OUT.write_text("\n".join(lines) + "\n")
    assert json.loads(OUT.read_text())["cases"] == cases
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(cases)} cases, "
          f"same with only TrainEvalCallback: {same_minimal})")


if __name__ == "__main__":
    main()
