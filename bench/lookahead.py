"""Time per optimizer step of the chapter "Momentum variants: looking ahead" (fastnote.lookahead) against its peers,
measured in the same run, on one CPU thread, on ResNet-18's 62 parameter tensors (11.7M values):

- `NAdam` against torch's multi-tensor NAdam (`foreach=True`), with L2 and with decoupled weight decay;
- `QHAdam`, `Lookahead(Adam)` and `ranger` against fastai 2.8.12's, when fastai can be imported (it is not a fastnote
  dependency: give `--fastai-site` the site-packages folder of an environment that has it, with the same torch, or
  run from one that has both); and `Lookahead(Adam)` and `ranger` against the inner optimizer alone, which is what
  the look-ahead costs.

A Lookahead step is the inner step plus, every `k` steps, one pass over the weights; its median over rounds of
`k` steps is what a step costs on average. The timings interleave the optimizers round by round and report medians,
so a noisy machine slows all of them alike. Prints ratios (fastnote / peer); lower is faster.
Run: `python bench/lookahead.py`, `--rounds 9`, `--fastai-site /path/to/site-packages`.
"""
import argparse, sys
from pathlib import Path
import torch

sys.path.insert(0, str(Path(__file__).parent))
from optimizers import resnet18_shapes, params_with_grads, time_steps   # the shapes and timing of bench/optimizers.py
from fastnote.adam import Adam
from fastnote.trust import RAdam
from fastnote.lookahead import NAdam, QHAdam, Lookahead, ranger


def fastai_optimizer():
    "fastai's optimizer module, or None if fastai cannot be imported."
    try:
        import fastai.optimizer as fo
        return fo
    except ImportError: return None


def report(title:str, t:dict, pairs:list):
    print(f"{title}: " + ', '.join(f"{k} {v * 1e3:.1f} ms" for k, v in t.items()))
    print('    ' + '   '.join(f"{a} / {b} = {t[a] / t[b]:.2f}x" for a, b in pairs if a in t and b in t))


def main(rounds=5, steps=6):
    torch.set_num_threads(1)
    fo = fastai_optimizer()
    print(f"torch {torch.__version__}, 1 thread, ResNet-18 shapes (62 tensors, 11.7M values); median of {rounds} interleaved "
          f"rounds of {steps} steps; ratio = fastnote / peer (lower is faster)")
    if fo is None: print("fastai is not importable here: its rows are left out (see --fastai-site)")
    shapes, lr = resnet18_shapes(), 1e-3
    for wd, dwd in [(0.01, False), (0.01, True)]:
        ps = params_with_grads(shapes)
        t = time_steps({'fastnote NAdam': NAdam(ps, lr, wd=wd, decouple_wd=dwd),
                        'torch NAdam foreach': torch.optim.NAdam(ps, lr, weight_decay=wd, decoupled_weight_decay=dwd, foreach=True)},
                       rounds, steps)
        report(f"NAdam, weight_decay={wd}, {'decoupled' if dwd else 'L2'}", t, [('fastnote NAdam', 'torch NAdam foreach')])

    ps = params_with_grads(shapes)
    opts = {'fastnote QHAdam': QHAdam(ps, lr), 'fastnote Adam': Adam(ps, lr)}
    if fo is not None: opts['fastai QHAdam'] = fo.QHAdam(ps, lr)
    report('QHAdam (nu_1=0.7, nu_2=1)', time_steps(opts, rounds, steps),
           [('fastnote QHAdam', 'fastai QHAdam'), ('fastnote QHAdam', 'fastnote Adam')])

    ps = params_with_grads(shapes)
    opts = {'fastnote Lookahead(Adam)': Lookahead(Adam(ps, lr)), 'fastnote Adam': Adam(ps, lr)}
    if fo is not None: opts['fastai Lookahead(Adam)'] = fo.Lookahead(fo.Adam(ps, lr))
    report('Lookahead(Adam), k=6', time_steps(opts, rounds, steps),
           [('fastnote Lookahead(Adam)', 'fastai Lookahead(Adam)'), ('fastnote Lookahead(Adam)', 'fastnote Adam')])

    ps = params_with_grads(shapes)
    opts = {'fastnote ranger': ranger(ps, lr), 'fastnote RAdam': RAdam(ps, lr, mom=0.95, eps=1e-6, wd=0.01)}
    if fo is not None: opts['fastai ranger'] = fo.ranger(ps, lr)
    report('ranger, k=6', time_steps(opts, rounds, steps),
           [('fastnote ranger', 'fastai ranger'), ('fastnote ranger', 'fastnote RAdam')])


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds (the median is reported)')
    parser.add_argument('--fastai-site', default=None,
                        help="a site-packages folder with fastai 2.8.12 (and the same torch), searched after this environment's own")
    args = parser.parse_args()
    if args.fastai_site: sys.path.append(args.fastai_site)
    main(args.rounds)
