"""Compiled steps (`compile=True`) against torch's fused kernels and against the memory-bandwidth limit, measured in the
same run, on one CPU thread:

- `Adam(compile=True)` against torch's `AdamW(fused=True)`;
- `SGD(mom=0.9, compile=True)` against torch's `SGD(momentum=0.9, fused=True)`;
- `RMSProp(compile=True)` against torch's foreach `RMSprop` (torch has no fused one);
- signum, sign-SGD with momentum composed in the optimizer chapter from three steppers, compiled, against compiled
  Adam per byte moved;

on ResNet-18's 62 tensors (11.7M values) and on 200 small tensors ((64, 64) and (64,), 100 of each). The bandwidth
limit is the time of an in-place add over as many float32 values (it reads 8 bytes and writes 4 per value), scaled
to the bytes each step must move: Adam reads p, g, m, v and writes p, m, v (28 bytes per value); SGD with momentum and
RMSProp read p, g and one average and write p and the average (20). Then the compile times: the first compile of
`Adam(compile=True)` on the ResNet-18 shapes with an empty inductor cache, and again in a new process from the cache.
Prints ratios (fastnote / peer); lower is faster. Run: `make bench`, or `python bench/compiled.py --rounds 9`;
`--quick` skips the small tensors (their first compile takes minutes on 2 cores).
"""
import argparse, os, subprocess, sys, tempfile, time, functools
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from optimizers import resnet18_shapes, params_with_grads, time_steps
from fastnote import Adam, SGD, RMSProp, Optimizer, weight_decay, average_grad, sign_step


def small_matrices()->list: return [(64, 64), (64,)] * 100


def bandwidth_step(shapes):
    "An in-place add over as many float32 values as the parameters hold: 12 bytes moved per value."
    n = sum(torch.Size(s).numel() for s in shapes)
    a, b = torch.zeros(n), torch.ones(n)
    class Add:
        def step(self): a.add_(b)
    return Add()


def signum(ps, lr): return Optimizer(ps, [weight_decay, functools.partial(average_grad, dampening=True), sign_step],
                                     lr=lr, mom=0.9, wd=0.01, compile=True)


def rows(shapes, rounds, steps):
    mk = lambda: params_with_grads(shapes)
    opts = {'Adam compiled': Adam(mk(), 1e-3, sqr_mom=0.99, eps=1e-5, wd=0.01, compile=True),
            'torch AdamW fused': torch.optim.AdamW(mk(), 1e-3, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01, fused=True),
            'SGD mom compiled': SGD(mk(), 1e-3, mom=0.9, compile=True),
            'torch SGD fused': torch.optim.SGD(mk(), 1e-3, momentum=0.9, fused=True),
            'RMSProp compiled': RMSProp(mk(), 1e-3, compile=True),
            'torch RMSprop foreach': torch.optim.RMSprop(mk(), 1e-3, alpha=0.99, foreach=True),
            'signum compiled': signum(mk(), 1e-3),
            'add_ (12 B/value)': bandwidth_step(shapes)}
    t = time_steps(opts, rounds, steps)
    limit = lambda nbytes: t['add_ (12 B/value)'] * nbytes / 12
    print('   ', ', '.join(f"{k} {v * 1e3:.2f} ms" for k, v in t.items()))
    print(f"    Adam compiled / torch fused AdamW = {t['Adam compiled'] / t['torch AdamW fused']:.2f}x   "
          f"/ bandwidth limit = {t['Adam compiled'] / limit(28):.2f}x (torch fused: {t['torch AdamW fused'] / limit(28):.2f}x)")
    print(f"    SGD mom compiled / torch fused SGD = {t['SGD mom compiled'] / t['torch SGD fused']:.2f}x   "
          f"/ bandwidth limit = {t['SGD mom compiled'] / limit(20):.2f}x")
    print(f"    RMSProp compiled / torch foreach RMSprop = {t['RMSProp compiled'] / t['torch RMSprop foreach']:.2f}x   "
          f"/ bandwidth limit = {t['RMSProp compiled'] / limit(20):.2f}x")
    print(f"    signum compiled per byte / Adam compiled per byte = {(t['signum compiled'] / 20) / (t['Adam compiled'] / 28):.2f}x")


FIRST_STEP = """
import sys, time, torch
sys.path.insert(0, {bench!r})
from optimizers import resnet18_shapes, params_with_grads
from fastnote import Adam
torch.set_num_threads(1)
opt = Adam(params_with_grads(resnet18_shapes()), 1e-3, compile=True)
start = time.perf_counter(); opt.step(); print(time.perf_counter() - start)
"""


def compile_times():
    "Seconds to the first compiled Adam step on the ResNet-18 shapes: with an empty inductor cache, then from it in a new process."
    code = FIRST_STEP.format(bench=os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, 'TORCHINDUCTOR_CACHE_DIR': cache}
        run = lambda: float(subprocess.run([sys.executable, '-c', code], env=env, check=True, capture_output=True, text=True).stdout.split()[-1])
        first, cached = run(), run()
    print(f"Adam(compile=True), ResNet-18 shapes, first step: {first:.1f} s with an empty inductor cache, {cached:.1f} s from the cache in a new process")


def main(rounds=7, quick=False):
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; median of {rounds} interleaved rounds; ratio = fastnote / peer (lower is faster)")
    shapes = [('ResNet-18, 62 tensors, 11.7M values', resnet18_shapes(), 3)]
    if not quick: shapes.append(('200 small tensors, (64, 64) and (64,) x 100, 0.4M values', small_matrices(), 30))
    for label, s, steps in shapes:
        print(label); rows(s, rounds, steps)
    compile_times()


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=7, help='interleaved timing rounds (the median is reported)')
    parser.add_argument('--quick', action='store_true', help='only the ResNet-18 shapes')
    args = parser.parse_args()
    main(args.rounds, args.quick)
