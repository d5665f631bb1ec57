"""The random problems the optimizer tests share (and the scripts in `data/` that record fastai's fixtures on them):
parameters of mixed shapes, deterministic noisy gradients, three param groups, the relative difference of two runs, and
a two-epoch `fit_one_cycle` of a small model."""
import torch


def make_params(shapes, # the shape of each parameter tensor
                seed:int=0, dtype=torch.float32)->list:
    "Standard normal parameter tensors of these shapes, from `seed`, that require gradients."
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_() for s in shapes]


def set_grads(ps:list, # the parameters
              t:int, # the step: each step has its own gradients
              scales:list, # the size of the noise of each tensor
              drop:float=0., # the fraction of gradients that are None at this step
              none=()): # positions of parameters whose gradient is None at this step, whatever `drop` draws
    "The gradients of step `t`: noise of a different size per tensor, plus 0.1 p; some of them None."
    g = torch.Generator().manual_seed(10_000 + t)
    for i, (p, scale) in enumerate(zip(ps, scales)):
        skip = torch.rand(1, generator=g).item() < drop
        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
        p.grad = None if skip or i in none else scale * noise + 0.1 * p.detach()


def three_groups(ps:list, lr:float)->list:
    "Three param groups of two parameters each (of six), the second with three times the learning rate."
    return [{'params': ps[:2]}, {'params': ps[2:4], 'lr': 3 * lr}, {'params': ps[4:]}]


def max_rel_diff(a:list, b:list)->float:
    "The largest difference between two lists of tensors, relative to the largest value of each tensor of `b`."
    return max(((x.detach() - y.detach()).abs().max() / y.detach().abs().max()).item() for x, y in zip(a, b))


def one_cycle_fit(opt_func, moms=(0.95, 0.85, 0.95)):
    "A `Learner` of a 2-4-1 MLP on random regression data after `fit_one_cycle(2, lr_max=1e-2)`, and the weights it started from."
    from fastnote import Learner, DataLoaders
    g = torch.Generator().manual_seed(1)
    batches = lambda n: [(torch.randn(8, 2, generator=g), torch.randn(8, 1, generator=g)) for _ in range(n)]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    learn = Learner(DataLoaders(batches(6), batches(1)), model, torch.nn.MSELoss(), opt_func=opt_func)
    learn.progress.show_table = False
    before = [p.detach().clone() for p in model.parameters()]
    learn.fit_one_cycle(2, lr_max=1e-2, moms=moms)
    return learn, before
