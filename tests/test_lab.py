"""The optimizer lab as a user imports it: dynamics the chapters claim, parity with torch.optim on every surface,
reproducibility, schedules on torch optimizers, clear errors, and pictures that hold the trajectories' own points."""
import math, os
import pytest
import torch
from hypothesis import given, settings, assume, strategies as st
import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt

from fastnote import (SURFACES, Surface, Trajectory, GIF, trajectory, get_surface, plot_surface, plot_trajectories,
                      animate_trajectories, SGD, Adam, RMSProp, SchedCos, SchedLin)

BASE = ['canyon', 'rosenbrock', 'beale', 'two_minima']


def test_every_surface_has_a_noisy_twin():
    assert list(SURFACES) == BASE + [f'noisy_{n}' for n in BASE]
    for name in BASE:
        exact, noisy = SURFACES[name], SURFACES[f'noisy_{name}']
        assert exact.noise == 0 < noisy.noise
        assert noisy.f is exact.f and noisy.minimum == exact.minimum
        assert isinstance(get_surface(name), Surface)


@pytest.mark.parametrize('lr,mom', [(0.05, 0.9), (0.1, 0.9), (0.15, 0.9), (0.19, 0.9), (0.19, 0.7)])
def test_momentum_beats_sgd_100_times_on_the_canyon(lr, mom):
    "The issue's bar: the same lr and number of steps, a loss 100 times lower with momentum."
    sgd = trajectory(SGD, 'canyon', n_steps=100, lr=lr).losses[-1]
    assert trajectory(SGD, 'canyon', n_steps=100, lr=lr, mom=mom).losses[-1] < sgd / 100


@settings(max_examples=40, deadline=None)
@given(x=st.floats(-9, 9), y=st.floats(-2.5, 2.5), lr=st.floats(1e-3, 1.))
def test_adams_first_step_is_lr_in_each_coordinate(x, y, lr):
    p = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
    SURFACES['canyon'](p).backward()
    assume(p.grad.abs().min() > 1e-2)                # |g| >> eps: the step is lr * |g| / (|g| + eps)
    for opt_func, kw in ((Adam, dict(wd=0.)), (torch.optim.Adam, {}), (torch.optim.AdamW, dict(weight_decay=0.))):
        step = trajectory(opt_func, 'canyon', start=(x, y), n_steps=1, lr=lr, **kw).points.diff(dim=0)[0]
        assert torch.allclose(step.abs(), torch.full((2,), lr, dtype=torch.float64), rtol=2e-3), opt_func
        assert (step.sign() == -p.grad.sign()).all()


PAIRS = {   # fastnote's optimizer and torch's, with the same rule
    'SGD with momentum': ((SGD, dict(lr=1e-3, mom=0.9)), (torch.optim.SGD, dict(lr=1e-3, momentum=0.9))),
    'RMSProp': ((RMSProp, dict(lr=1e-3, sqr_mom=0.99)), (torch.optim.RMSprop, dict(lr=1e-3, alpha=0.99))),
    'AdamW': ((Adam, dict(lr=1e-2, wd=0.01, eps=1e-8, sqr_mom=0.999)), (torch.optim.AdamW, dict(lr=1e-2, weight_decay=0.01))),
}

@pytest.mark.parametrize('surface', list(SURFACES))
@pytest.mark.parametrize('pair', list(PAIRS))
def test_same_trajectory_as_torch(surface, pair):
    (mine, kw_mine), (ref, kw_ref) = PAIRS[pair]
    a = trajectory(mine, surface, n_steps=100, seed=4, **kw_mine)
    b = trajectory(ref, surface, n_steps=100, seed=4, **kw_ref)
    assert a.losses.isfinite().all()
    torch.testing.assert_close(a.points, b.points, rtol=0, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), noise=st.floats(0.01, 10), name=st.sampled_from(BASE))
def test_a_seed_gives_one_trajectory_and_leaves_global_rng_alone(seed, noise, name):
    state = torch.get_rng_state()
    a = trajectory(Adam, name, n_steps=20, lr=0.01, noise=noise, seed=seed)
    torch.manual_seed(seed + 1)                        # the global generator has no say
    b = trajectory(Adam, name, n_steps=20, lr=0.01, noise=noise, seed=seed)
    c = trajectory(Adam, name, n_steps=20, lr=0.01, noise=noise, seed=seed + 1)
    torch.set_rng_state(state)
    assert torch.equal(a.points, b.points) and torch.equal(a.losses, b.losses)
    assert not torch.equal(a.points, c.points)
    state2 = torch.get_rng_state()
    trajectory(Adam, name, n_steps=5, lr=0.01, noise=noise, seed=seed)
    assert torch.equal(torch.get_rng_state(), state2)


def test_noise_adds_variances():
    "noise on a noisy surface: standard deviations combine as independent noises do, sqrt(s1² + s2²)."
    moves = torch.stack([trajectory(SGD, 'noisy_canyon', start=(0, 0), n_steps=1, lr=1., noise=math.sqrt(3), seed=s).points[1]
                         for s in range(3000)])
    assert (moves.std(0) - 2).abs().max() < 0.1 and moves.mean(0).abs().max() < 0.15


def test_losses_are_the_exact_surface_at_the_points():
    t = trajectory(Adam, 'noisy_beale', n_steps=50, lr=0.01, seed=1)
    torch.testing.assert_close(t.losses, SURFACES['beale'](t.points), rtol=0, atol=0)
    assert isinstance(t, Trajectory) and t.points.dtype == torch.float64
    points, losses = t                                 # it unpacks as the issue says
    assert points.shape == (51, 2) and losses.shape == (51,)


class RecordingSGD(torch.optim.SGD):
    "torch's SGD, noting (lr, momentum) before every step."
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []
        RecordingSGD.last = self
    def step(self, closure=None):
        self.seen.append((self.param_groups[0]['lr'], self.param_groups[0]['momentum']))
        return super().step(closure)


def test_schedules_drive_torch_optimizers_by_fastnote_names():
    trajectory(RecordingSGD, 'rosenbrock', n_steps=5, lr=1e-3, momentum=0.5,
               scheds={'lr': SchedLin(1e-3, 0.), 'mom': SchedCos(0.95, 0.85)})
    seen = RecordingSGD.last.seen
    assert [round(lr, 12) for lr, _ in seen] == [1e-3, 8e-4, 6e-4, 4e-4, 2e-4]
    assert seen[0][1] == pytest.approx(0.95) and seen[-1][1] == pytest.approx(SchedCos(0.95, 0.85)(0.8))


def test_divergence_warns_and_fills_nan():
    with pytest.warns(UserWarning, match=r"diverged on beale at step \d+ of 30"):
        t = trajectory(SGD, 'beale', n_steps=30, lr=1., start=(4, 4))
    bad = (~t.losses.isfinite()).nonzero()[0, 0].item()
    assert t.losses[:bad].isfinite().all() and t.points[bad + 1:].isnan().all()
    ax_map, _ = plot_trajectories({'too fast': t}, 'beale')   # a diverged run still draws
    plt.close(ax_map.figure)


BAD_CALLS = [
    (dict(start=(1,)), ValueError, r"start must be a point \(x, y\): two finite numbers, got \(1,\)"),
    (dict(start=[[1, 2]]), ValueError, r"got \[\[1, 2\]\]"),
    (dict(start=(0, math.inf)), ValueError, "two finite numbers"),
    (dict(start=None, surface='canyons'), ValueError, r"unknown surface 'canyons'.*did you mean 'canyon'"),
    (dict(surface='valley'), ValueError, r"unknown surface 'valley': expected one of \['canyon'"),
    (dict(surface=None), TypeError, "surface must be a name in SURFACES or a Surface, got None"),
    (dict(n_steps=-3), ValueError, "n_steps must be >= 0, got -3"),
    (dict(n_steps=True), TypeError, "n_steps must be an integer, got True"),
    (dict(seed=1.5), TypeError, "seed must be an integer, got 1.5 of type float"),
    (dict(noise=math.nan), ValueError, "noise must be a finite number, got nan"),
    (dict(noise=-0.1), ValueError, r"got -0.1"),
    (dict(opt_func=None), TypeError, "opt_func must make an optimizer"),
    (dict(opt_func=lambda ps, lr: None), TypeError, "must return a torch.optim.Optimizer, got a NoneType"),
    (dict(scheds={'beta1': SchedLin(0.9, 0.8)}), ValueError, "no hyper-parameter 'beta1'"),
    (dict(scheds={'lr': [0.1, 0.2]}), TypeError, r"scheds\['lr'\] must be a schedule"),
    (dict(scheds={'lr': SchedLin(0.1, -0.1)}), ValueError, "lr must be >= 0"),
    (dict(lr=math.inf), ValueError, "lr must be a finite number"),
]

@pytest.mark.parametrize('kwargs,exc,match', BAD_CALLS, ids=[str(k) for k, *_ in BAD_CALLS])
def test_bad_input_is_refused_naming_the_value(kwargs, exc, match):
    args = dict(opt_func=SGD, surface='canyon', n_steps=10, lr=0.1) | kwargs
    with pytest.raises(exc, match=match): trajectory(**args)


def test_custom_surface():
    bowl = Surface('bowl', lambda x, y: (x - 1)**2 + (y + 2)**2, minimum=(1, -2), xlim=(-3, 3), ylim=(-4, 2), start=(-2, 1))
    t = trajectory(SGD, bowl, n_steps=50, lr=0.1, mom=0.5)
    torch.testing.assert_close(t.points[-1], torch.tensor([1., -2.], dtype=torch.float64), rtol=0, atol=1e-6)
    assert bowl.noisy(0.5).name == 'noisy_bowl' and bowl.noisy(0.5).noise == 0.5 and bowl.noise == 0
    with pytest.raises(ValueError, match="noise must be >= 0, got -1"): bowl.noisy(-1)
    with pytest.raises(ValueError, match=r"start must be a point"): Surface('b', bowl.f, (0, 0), (-1, 1), (-1, 1), 'here')
    plt.close(plot_surface(bowl).figure)


def test_plot_draws_the_trajectories_points():
    runs = {'SGD': trajectory(SGD, 'rosenbrock', n_steps=30, lr=1e-3), 'Adam': trajectory(Adam, 'rosenbrock', n_steps=20, lr=0.05)}
    ax_map, ax_loss = plot_trajectories(runs, 'rosenbrock')
    paths = {l.get_label(): l for l in ax_map.get_lines()}
    for label, t in runs.items():
        x, y = paths[label].get_data()
        assert torch.equal(torch.as_tensor(x), t.points[:, 0]) and torch.equal(torch.as_tensor(y), t.points[:, 1])
    losses = {l.get_label(): l for l in ax_loss.get_lines()}
    torch.testing.assert_close(torch.as_tensor(losses['Adam'].get_ydata()), runs['Adam'].losses.clamp_min(1e-15))
    assert ax_loss.get_yscale() == 'log' and ax_map.get_title() == 'rosenbrock' and ax_map.figure is ax_loss.figure
    plt.close(ax_map.figure)


@pytest.mark.parametrize('runs', [{}, [trajectory(SGD, 'canyon', n_steps=2, lr=0.1)], {'a': (torch.zeros(3), torch.zeros(3))},
                                  {'a': 'SGD'}], ids=['empty', 'a list', 'points not (n, 2)', 'a string'])
def test_plots_refuse_what_is_not_a_trajectory(runs):
    with pytest.raises(TypeError, match="runs"): plot_trajectories(runs, 'canyon')
    with pytest.raises(TypeError, match="runs"): animate_trajectories(runs, 'canyon')


def test_animation_is_a_gif_of_the_steps(tmp_path):
    from PIL import Image
    runs = {'SGD': trajectory(SGD, 'canyon', n_steps=20, lr=0.19), 'momentum': trajectory(SGD, 'canyon', n_steps=20, lr=0.19, mom=0.7)}
    gif = animate_trajectories(runs, 'canyon', fname=tmp_path/'c.gif', n_frames=60, fps=10, hold=1.5)
    assert gif.n_frames == 21                           # one frame per step when there are fewer steps than frames
    assert (tmp_path/'c.gif').read_bytes() == gif.data
    with Image.open(tmp_path/'c.gif') as im:
        assert im.format == 'GIF' and im.size == (9 * 72, int(3.3 * 72)) and im.info.get('loop') == 0
        durations = []
        for i in range(im.n_frames): im.seek(i); durations.append(im.info['duration'])
    assert durations[:-1] == [100] * 20 and durations[-1] == 1600
    assert gif._repr_html_().startswith('<img src="data:image/gif;base64,R0lG')   # 'GIF8' in base64
    assert animate_trajectories(runs, 'canyon', n_frames=5).n_frames == 5
    assert not list(tmp_path.glob('.*.tmp'))


@pytest.mark.parametrize('kwargs,match', [(dict(n_frames=1), "n_frames must be >= 2, got 1"),
                                          (dict(fps=0), "fps must be > 0, got 0"),
                                          (dict(hold=-1), "hold must be >= 0, got -1"),
                                          (dict(surface='beal'), "did you mean 'beale'")])
def test_animation_bad_input(kwargs, match):
    runs = {'SGD': trajectory(SGD, 'canyon', n_steps=5, lr=0.1)}
    with pytest.raises(ValueError, match=match): animate_trajectories(runs, **({'surface': 'canyon'} | kwargs))


def test_a_failed_gif_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path/'anim.gif'
    target.write_bytes(b'the old animation')
    def fail(*args): raise OSError("disk full")
    monkeypatch.setattr(os, 'replace', fail)
    with pytest.raises(OSError, match="disk full"): GIF(b'GIF89a new').save(target)
    assert target.read_bytes() == b'the old animation' and list(tmp_path.iterdir()) == [target]


def test_trajectory_steps_an_optimizer_with_modes_in_train_mode_and_records_its_eval_point():
    "Schedule-free: the gradient is taken at y (train mode), the point recorded is x (eval mode), as a hand-written loop does."
    from fastnote.after_adam import AdamWScheduleFree
    t = trajectory(AdamWScheduleFree, 'rosenbrock', n_steps=30, lr=0.05)
    surface = get_surface('rosenbrock')
    point = torch.tensor(surface.start, dtype=torch.float64).requires_grad_()
    opt, seen = AdamWScheduleFree([point], lr=0.05), []
    for _ in range(30):
        opt.train(); opt.zero_grad(); surface(point).backward(); opt.step(); opt.eval()
        seen.append(point.detach().clone())
    assert torch.equal(t.points[1:], torch.stack(seen)) and not torch.equal(t.points[-1], t.points[-2])
