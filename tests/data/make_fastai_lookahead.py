"""Record fastai 2.8.12's QHAdam, Lookahead (around its SGD with momentum and its Adam) and ranger over 100 steps as a
test fixture.

Writes `fastai_lookahead.json` next to this file; `tests/test_lookahead.py` compares fastnote's `QHAdam`,
`Lookahead` and `ranger` against it, so fastai itself is not needed to run the test suite, only to regenerate. In the
scratch venv of `make_fastai_schedules.py` (fastai 2.8.12, torch 2.13.0):

    /tmp/fastai_venv/bin/python tests/data/make_fastai_lookahead.py

The problem is the one of `make_fastai_trust.py`: six float32 tensors of mixed shapes from seed 0 in three param
groups (fastai's list of lists; the second group's lr is three times the others'), 100 steps of deterministic
gradients (noise of a different size for each tensor, plus 0.1 p; with `drop`, some gradients are None at some
steps). With `clear_at`, the optimizer's state is cleared before that step (fastai's `clear_state`, which the
Learner's freeze and unfreeze do). Stored: the parameters after the 100 steps (9 significant digits: exact for
float32), and the sum of each initial tensor, so that a test can tell that it built the same problem.
"""
import json
from pathlib import Path
import sys
import torch
sys.path.insert(0, str(Path(__file__).parents[1]))    # tests/, for the problems the tests share
import problems
import fastai
from fastai.optimizer import QHAdam, Lookahead, ranger, SGD, Adam

OUT = Path(__file__).with_name("fastai_lookahead.json")
SHAPES = [(7, 3), (5,), (2, 3, 4), (1,), (20, 30), (4, 3, 3, 3)]
SCALES = [1., 1e-3, 0.1, 1., 1e-2, 3.]
N_STEPS = 100


def make_params(seed=0): return problems.make_params(SHAPES, seed)
def set_grads(ps, t, drop=0.): problems.set_grads(ps, t, SCALES, drop)   # the problem the tests build: `tests/problems.py`


INNER = {'SGD': SGD, 'Adam': Adam}
# name -> dict(optimizer, kwargs (the same names in fastnote), lr, drop; for Lookahead the inner optimizer and its
# kwargs; clear_at: the step before which the state is cleared)
CASES = {
    'QHAdam defaults':                     dict(optimizer='QHAdam', kwargs={}, lr=1e-3, drop=0.),
    'QHAdam nu_1=0.9 nu_2=0.8 L2 wd=1e-2': dict(optimizer='QHAdam', kwargs=dict(nu_1=0.9, nu_2=0.8, wd=1e-2, decouple_wd=False), lr=1e-3, drop=0.2),
    'QHAdam mom=0.9 sqr_mom=0.99 wd=0.1':  dict(optimizer='QHAdam', kwargs=dict(mom=0.9, sqr_mom=0.99, wd=0.1), lr=1e-2, drop=0.),
    'QHAdam nu_1=0 nu_2=0 eps=1e-5':       dict(optimizer='QHAdam', kwargs=dict(nu_1=0., nu_2=0., eps=1e-5), lr=1e-3, drop=0.),
    'Lookahead(SGD mom=0.9)':              dict(optimizer='Lookahead', inner='SGD', inner_kwargs=dict(mom=0.9), kwargs={}, lr=1e-2, drop=0.),
    'Lookahead(SGD mom=0.9 wd=1e-2) k=4 alpha=0.3': dict(optimizer='Lookahead', inner='SGD', inner_kwargs=dict(mom=0.9, wd=1e-2),
                                                          kwargs=dict(k=4, alpha=0.3), lr=1e-2, drop=0.3),
    'Lookahead(Adam)':                     dict(optimizer='Lookahead', inner='Adam', inner_kwargs={}, kwargs={}, lr=1e-3, drop=0.),
    'Lookahead(Adam L2 wd=1e-2) k=5 alpha=0.8': dict(optimizer='Lookahead', inner='Adam', inner_kwargs=dict(wd=1e-2, decouple_wd=False),
                                                     kwargs=dict(k=5, alpha=0.8), lr=1e-3, drop=0.2),
    'Lookahead(SGD) k=1 alpha=1':          dict(optimizer='Lookahead', inner='SGD', inner_kwargs=dict(mom=0.9), kwargs=dict(k=1, alpha=1.),
                                                lr=1e-2, drop=0.),
    'ranger defaults':                     dict(optimizer='ranger', kwargs={}, lr=1e-3, drop=0.),
    'ranger k=3 alpha=0.3 sqr_mom=0.999':  dict(optimizer='ranger', kwargs=dict(k=3, alpha=0.3, sqr_mom=0.999), lr=1e-3, drop=0.3),
    'ranger L2 wd=1e-3 beta=50':           dict(optimizer='ranger', kwargs=dict(wd=1e-3, decouple_wd=False, beta=50.), lr=1e-2, drop=0.),
    'ranger cleared at step 40':           dict(optimizer='ranger', kwargs={}, lr=1e-3, drop=0., clear_at=40),
    'Lookahead(Adam) cleared at step 45':  dict(optimizer='Lookahead', inner='Adam', inner_kwargs={}, kwargs={}, lr=1e-3, drop=0.1, clear_at=45),
}


def make(case, groups):
    lr = case['lr']
    if case['optimizer'] == 'QHAdam': return QHAdam(groups, lr=lr, **case['kwargs'])
    if case['optimizer'] == 'ranger': return ranger(groups, lr=lr, **case['kwargs'])
    return Lookahead(INNER[case['inner']](groups, lr=lr, **case['inner_kwargs']), **case['kwargs'])


def run(case):
    ps, lr = make_params(), case['lr']
    opt = make(case, [ps[:2], ps[2:4], ps[4:]])
    opt.set_hyper('lr', [lr, 3 * lr, lr])
    for t in range(N_STEPS):
        if t == case.get('clear_at'): opt.clear_state()
        set_grads(ps, t, case['drop'])
        opt.step()
    return ps


def main():
    torch.set_num_threads(1)
    res = {'meta': {'fastai': fastai.__version__, 'torch': torch.__version__, 'shapes': SHAPES, 'scales': SCALES,
                    'n_steps': N_STEPS, 'init_sums': [p.sum().item() for p in make_params()]},
           'cases': {}}
    for name, case in CASES.items():
        ps = run(case)
        res['cases'][name] = {**case, 'params': [[float(f'{x:.9g}') for x in p.detach().flatten().tolist()] for p in ps]}
    OUT.write_text(json.dumps(res, separators=(',', ':')))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} KB)")


if __name__ == '__main__': main()
