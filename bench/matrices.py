"""Time per optimizer step of fastnote's Adafactor and Muon against torch's, measured in the same run, on one CPU thread:

- Adafactor on ResNet-18's 62 parameter tensors (11.7M values), against torch's multi-tensor Adafactor
  (`foreach=True`) and its default for-loop path; and the bytes of state it keeps against Adam's on the same model;
- Muon on ResNet-18's weights seen as matrices (each conv weight `(out, in, kh, kw)` as `(out, in*kh*kw)`, and the
  linear), against torch's Muon (which has only a for-loop path). Its Newton-Schulz iteration runs in bfloat16, which
  this CPU multiplies slowly: by default only the matrices of the stem and the first two stages (widths 64 and 128,
  1.0M values); `--full` times all 21 (11.2M values; about a minute a step).

The timings interleave the optimizers round by round and report medians. Prints ratios (fastnote / torch); lower is
faster. Run: `python bench/matrices.py`, `python bench/matrices.py --rounds 9 --full`.
"""
import argparse, math, statistics, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
from optimizers import resnet18_shapes, params_with_grads, time_steps
from fastnote.adam import Adam
from fastnote.matrices import Adafactor, Muon


def matrix_shapes(full:bool)->list:
    "ResNet-18's weights as matrices: convs flattened to `(out, in*kh*kw)`, and the linear; widths up to 128 unless `full`."
    shapes = [s for s in resnet18_shapes() if len(s) > 1]
    shapes = [(s[0], math.prod(s[1:])) for s in shapes]
    return shapes if full else [s for s in shapes if s[0] <= 128]


def state_mib(opt, ps)->float:
    "MiB of tensor state `opt` keeps for `ps` (after a step)."
    return sum(v.numel() * v.element_size() for p in ps for v in opt.state[p].values() if torch.is_tensor(v)) / 2**20


def main(rounds=5, full=False):
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; median of {rounds} interleaved rounds; ratio = fastnote / torch (lower is faster)")
    shapes = resnet18_shapes()
    opts = {'fastnote': Adafactor(params_with_grads(shapes), weight_decay=0.01),
            'torch foreach': torch.optim.Adafactor(params_with_grads(shapes), weight_decay=0.01, foreach=True),
            'torch for-loop': torch.optim.Adafactor(params_with_grads(shapes), weight_decay=0.01)}
    t = time_steps(opts, rounds, 2)
    print(f"Adafactor, ResNet-18 (62 tensors, 11.7M values): " + ', '.join(f"{k} {v * 1e3:.1f} ms" for k, v in t.items()))
    print(f"    fastnote / torch foreach = {t['fastnote'] / t['torch foreach']:.2f}x   fastnote / torch for-loop = {t['fastnote'] / t['torch for-loop']:.2f}x")
    adam = Adam(params_with_grads(shapes), 1e-3); adam.step()
    ps = [p for g in opts['fastnote'].param_groups for p in g['params']]
    mine, theirs = state_mib(opts['fastnote'], ps), state_mib(adam, [p for g in adam.param_groups for p in g['params']])
    print(f"    state: Adafactor {mine:.1f} MiB, Adam {theirs:.1f} MiB ({mine / theirs:.2f}x), parameters {sum(p.numel() for p in ps) * 4 / 2**20:.1f} MiB")

    shapes = matrix_shapes(full)
    n = sum(math.prod(s) for s in shapes)
    opts = {'fastnote': Muon(params_with_grads(shapes), 0.02), 'torch': torch.optim.Muon(params_with_grads(shapes), 0.02)}
    t = time_steps(opts, rounds if not full else max(1, rounds // 3), 1)
    print(f"Muon, ResNet-18's weights as matrices ({len(shapes)} matrices, {n / 1e6:.1f}M values): " + ', '.join(f"{k} {v * 1e3:.1f} ms" for k, v in t.items()))
    print(f"    fastnote / torch = {t['fastnote'] / t['torch']:.2f}x")


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds (the median is reported)')
    parser.add_argument('--full', action='store_true', help="Muon on all of ResNet-18's matrices (slow on a CPU: bfloat16 products)")
    args = parser.parse_args()
    main(args.rounds, args.full)
