"""Record fastai 2.8.12's RAdam, Lamb and Larc over 100 steps as a test fixture.

Writes `fastai_trust.json` next to this file; `tests/test_trust.py` compares fastnote's `RAdam`, `Lamb` and `Larc`
against it, so fastai itself is not needed to run the test suite, only to regenerate. In the scratch venv of
`make_fastai_schedules.py` (fastai 2.8.12, torch 2.13.0):

    /tmp/fastai_venv/bin/python tests/data/make_fastai_trust.py

Each case: six float32 tensors of mixed shapes from seed 0 (`make_params`) in three param groups (fastai's list of
lists; the second group's lr is three times the others'), 100 steps of deterministic gradients (`set_grads`: noise
of a different size for each tensor, plus 0.1 p; with `drop`, some gradients are None at some steps, so step counts
differ per tensor). Stored: the parameters after the 100 steps (9 significant digits: exact for float32), and the
sum of each initial tensor, so that a test can tell that it built the same problem.
"""
import json
from pathlib import Path
import sys
import torch
sys.path.insert(0, str(Path(__file__).parents[1]))    # tests/, for the problems the tests share
import problems
import fastai
from fastai.optimizer import RAdam, Lamb, Larc

OUT = Path(__file__).with_name("fastai_trust.json")
SHAPES = [(7, 3), (5,), (2, 3, 4), (1,), (20, 30), (4, 3, 3, 3)]
SCALES = [1., 1e-3, 0.1, 1., 1e-2, 3.]   # gradient noise per tensor: some layers with tiny gradients, for the trust ratios
N_STEPS = 100


def make_params(seed=0): return problems.make_params(SHAPES, seed)
def set_grads(ps, t, drop=0.): problems.set_grads(ps, t, SCALES, drop)   # the problem the tests build: `tests/problems.py`


# name -> (fastai constructor, keyword arguments (the same names in fastnote), lr, drop)
CASES = {
    'RAdam defaults':                      (RAdam, {}, 1e-3, 0.),
    'RAdam L2 mom=0.8 wd=1e-2':            (RAdam, dict(mom=0.8, wd=1e-2, decouple_wd=False), 1e-3, 0.),
    'RAdam wd=0.1 beta=50 sqr_mom=0.999':  (RAdam, dict(wd=0.1, beta=50., sqr_mom=0.999), 1e-3, 0.2),
    'Lamb defaults':                       (Lamb, {}, 1e-3, 0.),
    'Lamb wd=0.1':                         (Lamb, dict(wd=0.1), 1e-2, 0.),
    'Lamb L2 wd=1e-2':                     (Lamb, dict(wd=1e-2, decouple_wd=False), 1e-3, 0.2),
    'Larc defaults':                       (Larc, {}, 0.1, 0.),
    'Larc trust_coeff=1':                  (Larc, dict(trust_coeff=1.), 0.1, 0.),
    'Lars (clip=False) wd=1e-2':           (Larc, dict(clip=False, wd=1e-2), 0.05, 0.2),
    'Larc mom=0 L2 wd=1e-3':               (Larc, dict(mom=0., wd=1e-3, decouple_wd=False, trust_coeff=0.05), 0.5, 0.),
}


def run(make, kw, lr, drop):
    ps = make_params()
    opt = make([ps[:2], ps[2:4], ps[4:]], lr=lr, **kw)
    opt.set_hyper('lr', [lr, 3 * lr, lr])
    for t in range(N_STEPS):
        set_grads(ps, t, drop)
        opt.step()
    return ps


def main():
    torch.set_num_threads(1)
    res = {'meta': {'fastai': fastai.__version__, 'torch': torch.__version__, 'shapes': SHAPES, 'scales': SCALES,
                    'n_steps': N_STEPS, 'init_sums': [p.sum().item() for p in make_params()]},
           'cases': {}}
    for name, (make, kw, lr, drop) in CASES.items():
        ps = run(make, kw, lr, drop)
        res['cases'][name] = {'optimizer': make.__name__, 'kwargs': kw, 'lr': lr, 'drop': drop,
                              'params': [[float(f'{x:.9g}') for x in p.detach().flatten().tolist()] for p in ps]}
    OUT.write_text(json.dumps(res, separators=(',', ':')))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} KB)")


if __name__ == '__main__': main()
