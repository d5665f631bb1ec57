"""A client library written for torch: Lightning trains with a fastnote optimizer and torch's OneCycleLR (momentum
cycled through fastnote's `mom`), to the same weights as the same run on torch's AdamW, and its LearningRateMonitor
logs the real momentum."""
import pytest, torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

L = pytest.importorskip('lightning')
from fastnote import Adam


class Regressor(L.LightningModule):
    def __init__(self, make_opt):
        super().__init__()
        torch.manual_seed(0)
        self.net, self.make_opt = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1)), make_opt
    def training_step(self, batch, i):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)
    def configure_optimizers(self):
        opt = self.make_opt(self.parameters())
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=24)     # cycle_momentum=True
        return {'optimizer': opt, 'lr_scheduler': {'scheduler': sched, 'interval': 'step'}}


def fit(make_opt, tmp_path):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(96, 4, generator=g); y = x @ torch.randn(4, 1, generator=g)
    model = Regressor(make_opt)
    monitor = L.pytorch.callbacks.LearningRateMonitor(logging_interval='step', log_momentum=True)
    trainer = L.Trainer(max_epochs=3, accelerator='cpu', devices=1, logger=L.pytorch.loggers.CSVLogger(tmp_path),
                        callbacks=[monitor], enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, log_every_n_steps=1, deterministic=True)
    trainer.fit(model, DataLoader(TensorDataset(x, y), batch_size=12))
    return model


def logged_momentum(folder)->list:
    "The momentum LearningRateMonitor wrote to the CSV log, step by step."
    import csv
    rows = list(csv.DictReader(open(next(folder.rglob('metrics.csv')))))
    col = next(c for c in rows[0] if 'momentum' in c)
    return [float(r[col]) for r in rows if r.get(col)]


def test_lightning_trains_with_fastnote_and_onecycle_like_torch_adamw(tmp_path):
    mine = fit(lambda ps: Adam(ps, 1e-3, sqr_mom=0.999, eps=1e-8, wd=0.01), tmp_path/'mine')
    ref = fit(lambda ps: torch.optim.AdamW(ps, 1e-3, weight_decay=0.01), tmp_path/'ref')
    for a, b in zip(mine.parameters(), ref.parameters()): assert torch.equal(a, b)           # bit for bit
    moms = logged_momentum(tmp_path/'mine')
    assert len(moms) == 24 and max(moms) == pytest.approx(0.95) and min(moms) < 0.86   # the real momentum, cycled
    assert moms == logged_momentum(tmp_path/'ref')
