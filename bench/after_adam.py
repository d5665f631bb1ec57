"""Time per optimizer step: fastnote's Lion and AdamWScheduleFree against their reference packages, lion-pytorch's
`Lion` (a Python loop over the parameters) and schedulefree's `AdamWScheduleFree` (its multi-tensor `foreach` path),
with torch's multi-tensor AdamW beside them for scale; one CPU thread, on ResNet-18's 62 parameter tensors (11.7M
values; the shapes of bench/optimizers.py) and on 200 small tensors.

torch has neither optimizer, so the peer is the reference package. The timings interleave the optimizers round by
round and report medians, so a noisy machine slows all of them alike. Prints ratios (fastnote / peer); lower is
faster. Run: `python bench/after_adam.py`, or `--rounds 9`.
"""
import argparse, statistics, sys, time
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
from optimizers import resnet18_shapes, small_shapes, params_with_grads
from fastnote.after_adam import Lion, AdamWScheduleFree


def optimizers(ps)->dict:
    "name -> optimizer over `ps`; the schedule-free ones in train mode."
    import lion_pytorch, schedulefree
    opts = {'fastnote Lion': Lion(ps, 1e-4, wd=0.1),
            'lion-pytorch Lion': lion_pytorch.Lion(ps, 1e-4, weight_decay=0.1),
            'fastnote AdamWScheduleFree': AdamWScheduleFree(ps, 2.5e-3, wd=0.01, warmup_steps=10),
            'schedulefree AdamWScheduleFree': schedulefree.AdamWScheduleFree(ps, 2.5e-3, weight_decay=0.01, warmup_steps=10, foreach=True),
            'torch AdamW foreach': torch.optim.AdamW(ps, 1e-3, weight_decay=0.01, foreach=True)}
    for opt in opts.values():
        if hasattr(opt, 'train'): opt.train()
    return opts


def time_steps(opts:dict, ps:list, rounds:int, steps:int)->dict:
    "Median seconds per step of each optimizer, interleaving them round by round (schedulefree overwrites .grad: it is restored)."
    grads = [p.grad.clone() for p in ps]
    def step(opt):
        opt.step()
        for p, g in zip(ps, grads): p.grad.copy_(g)
    for opt in opts.values(): step(opt); step(opt)            # warm up: state made, caches hot
    times = {k: [] for k in opts}
    for _ in range(rounds):
        for k, opt in opts.items():
            start = time.perf_counter()
            for _ in range(steps): step(opt)
            times[k].append((time.perf_counter() - start) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def main(rounds=5):
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; median of {rounds} interleaved rounds; ratio = fastnote / peer (lower is faster)")
    for label, shapes, steps in [('ResNet-18, 62 tensors, 11.7M values', resnet18_shapes(), 2),
                                 ('200 small tensors, 0.4M values', small_shapes(), 20)]:
        ps = params_with_grads(shapes)
        t = time_steps(optimizers(ps), ps, rounds, steps)
        print(f"{label}: " + ', '.join(f"{k} {v * 1e3:.2f} ms" for k, v in t.items()))
        print(f"    Lion: fastnote / lion-pytorch = {t['fastnote Lion'] / t['lion-pytorch Lion']:.2f}x   "
              f"AdamWScheduleFree: fastnote / schedulefree = {t['fastnote AdamWScheduleFree'] / t['schedulefree AdamWScheduleFree']:.2f}x   "
              f"(fastnote Lion / torch AdamW = {t['fastnote Lion'] / t['torch AdamW foreach']:.2f}x, "
              f"fastnote AdamWScheduleFree / torch AdamW = {t['fastnote AdamWScheduleFree'] / t['torch AdamW foreach']:.2f}x)")


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds (the median is reported)')
    main(parser.parse_args().rounds)
