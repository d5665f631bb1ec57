"""Time per optimizer step: fastnote's Adam against torch's multi-tensor (`foreach=True`) and fused Adam, measured
in the same run, on one CPU thread, for two parameter shapes:

- ResNet-18's 62 parameter tensors (11.7M values; shapes written out here, no torchvision needed);
- 200 small tensors of 1,000 to 3,000 values (0.4M values).

Also the same optimizer built by hand from the exported steppers, to show that `Adam` is nothing but that list.
The timings interleave the optimizers round by round and report medians, so a noisy machine slows all of them alike.
Prints ratios (fastnote / peer); lower is faster. Run: `make bench`, or `python bench/optimizers.py --rounds 9`.
"""
import argparse, functools, statistics, time
import torch
from fastnote import Optimizer, Adam, weight_decay, l2_reg, average_grad, average_sqr_grad, step_stat, adam_step


def resnet18_shapes()->list:
    "The parameter shapes of torchvision's resnet18 (conv weights, batch-norm weights and biases, the final linear)."
    shapes, c_in = [(64, 3, 7, 7), (64,), (64,)], 64
    for c_out, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for block in range(2):
            first = c_in if block == 0 else c_out
            shapes += [(c_out, first, 3, 3), (c_out,), (c_out,), (c_out, c_out, 3, 3), (c_out,), (c_out,)]
            if block == 0 and (stride != 1 or c_in != c_out): shapes += [(c_out, c_in, 1, 1), (c_out,), (c_out,)]
        c_in = c_out
    return shapes + [(1000, 512), (1000,)]


def small_shapes(n=200)->list:
    g = torch.Generator().manual_seed(0)
    return [(int(x),) for x in torch.randint(1000, 3000, (n,), generator=g)]


def params_with_grads(shapes):
    g = torch.Generator().manual_seed(0)
    ps = [torch.randn(s, generator=g).requires_grad_() for s in shapes]
    for p in ps: p.grad = torch.randn(p.shape, generator=g)
    return ps


def optimizers(ps, wd, decoupled):
    "name -> optimizer over `ps`, all with the same hyper-parameters."
    lr, betas, eps = 1e-3, (0.9, 0.99), 1e-5
    torch_cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    steppers = [weight_decay if decoupled else l2_reg,
                functools.partial(average_grad, dampening=True), average_sqr_grad, step_stat, adam_step]
    return {'fastnote Adam': Adam(ps, lr, *betas, eps, wd, decoupled),
            'by hand': Optimizer(ps, steppers, lr=lr, mom=betas[0], sqr_mom=betas[1], eps=eps, wd=wd),
            'torch foreach': torch_cls(ps, lr, betas=betas, eps=eps, weight_decay=wd, foreach=True),
            'torch fused': torch_cls(ps, lr, betas=betas, eps=eps, weight_decay=wd, fused=True)}


def time_steps(opts:dict, rounds:int, steps:int)->dict:
    "Median seconds per step of each optimizer, interleaving them round by round."
    for opt in opts.values(): opt.step(); opt.step()            # warm up: state made, caches hot
    times = {k: [] for k in opts}
    for _ in range(rounds):
        for k, opt in opts.items():
            start = time.perf_counter()
            for _ in range(steps): opt.step()
            times[k].append((time.perf_counter() - start) / steps)
    return {k: statistics.median(v) for k, v in times.items()}


def main(rounds=7):
    torch.set_num_threads(1)
    print(f"torch {torch.__version__}, 1 thread; median of {rounds} interleaved rounds; ratio = fastnote / peer (lower is faster)")
    for label, shapes, steps in [('ResNet-18, 62 tensors, 11.7M values', resnet18_shapes(), 3),
                                 ('200 small tensors, 0.4M values', small_shapes(), 30)]:
        for wd, decoupled, kind in [(0.01, True, 'AdamW'), (0., False, 'Adam')]:
            t = time_steps(optimizers(params_with_grads(shapes), wd, decoupled), rounds, steps)
            ms = ', '.join(f"{k} {v * 1e3:.2f} ms" for k, v in t.items())
            mine = t['fastnote Adam']
            print(f"{label}, {kind} (wd={wd}): {ms}")
            print(f"    fastnote / torch foreach = {mine / t['torch foreach']:.2f}x   "
                  f"by hand / fastnote Adam = {t['by hand'] / mine:.2f}x   fastnote / torch fused = {mine / t['torch fused']:.2f}x")


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=7, help='interleaved timing rounds (the median is reported)')
    main(parser.parse_args().rounds)
