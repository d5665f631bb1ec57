"""Time per step of the trust chapter's optimizers (fastnote.trust) on ResNet-18's 62 parameter tensors, one thread:

- `RAdam` against `torch.optim.RAdam(foreach=True)` with the same hyper-parameters (target: at most 1.0x);
- `Lamb` and `Larc`, which torch does not have, against fastai 2.8.12's when fastai is importable (it is not a
  fastnote dependency: run from an environment that has both, e.g. `PYTHONPATH=. /path/to/fastai/venv/bin/python
  bench/trust.py`), and always against the torch step closest to theirs: foreach Adam for Lamb (Lamb does Adam's
  work plus two norms per tensor) and foreach SGD with momentum for Larc (plus the norms and the layer rates).

The optimizers take turns round by round and medians are reported, so a noisy machine slows all of them alike.
Prints ratios (fastnote / peer); lower is faster. Run: `make bench`, or `python bench/trust.py --rounds 9`.
"""
import argparse, sys
from pathlib import Path
import torch
sys.path.insert(0, str(Path(__file__).parent))
from optimizers import resnet18_shapes, params_with_grads, time_steps
from fastnote import RAdam, Lamb, Larc


def fastai_optimizers():
    "fastai's RAdam, Lamb and Larc if fastai can be imported, else None."
    try: from fastai.optimizer import RAdam as FRAdam, Lamb as FLamb, Larc as FLarc
    except ImportError: return None
    return FRAdam, FLamb, FLarc


def cases(shapes, fastai):
    "name -> {label: optimizer}: each of fastnote's optimizers and its peers over their own copy of the same parameters."
    lr, wd = 1e-3, 0.01
    ps = lambda: params_with_grads(shapes)
    radam = {'fastnote RAdam': RAdam(ps(), lr, sqr_mom=0.999, eps=1e-8, wd=wd, decouple_wd=True),
             'torch RAdam foreach': torch.optim.RAdam(ps(), lr, weight_decay=wd, decoupled_weight_decay=True, foreach=True)}
    lamb = {'fastnote Lamb': Lamb(ps(), lr, wd=wd),
            'torch AdamW foreach': torch.optim.AdamW(ps(), lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=wd, foreach=True)}
    larc = {'fastnote Larc': Larc(ps(), lr, wd=wd),
            'torch SGD momentum foreach': torch.optim.SGD(ps(), lr, momentum=0.9, weight_decay=wd, foreach=True)}
    if fastai:
        FRAdam, FLamb, FLarc = fastai
        radam['fastai RAdam'] = FRAdam(ps(), lr, sqr_mom=0.999, eps=1e-8, wd=wd)
        lamb['fastai Lamb'] = FLamb(ps(), lr, wd=wd)
        larc['fastai Larc'] = FLarc(ps(), lr, wd=wd)
    return {'RAdam': radam, 'Lamb': lamb, 'Larc': larc}


def main(rounds=5):
    torch.set_num_threads(1)
    fastai = fastai_optimizers()
    print(f"torch {torch.__version__}, 1 thread, ResNet-18's 62 tensors (11.7M values); median of {rounds} interleaved "
          f"rounds; ratio = fastnote / peer (lower is faster); fastai {'found' if fastai else 'not installed: its rows are left out'}")
    for name, opts in cases(resnet18_shapes(), fastai).items():
        t = time_steps(opts, rounds, steps=2)
        mine = t[f'fastnote {name}']
        print(f"{name}: " + ', '.join(f"{k} {v * 1e3:.1f} ms" for k, v in t.items()))
        print('    ' + '   '.join(f"fastnote / {k} = {mine / v:.2f}x" for k, v in t.items() if not k.startswith('fastnote')))


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rounds', type=int, default=5, help='interleaved timing rounds (the median is reported)')
    main(parser.parse_args().rounds)
