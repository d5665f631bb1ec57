"""A client library written for torch: the Hugging Face Trainer builds fastnote's optimizers from
`optimizer_cls_and_kwargs`, with its own param groups (weight decay by torch's name, none on biases), and fastnote's
Adam ends where the Trainer's default torch AdamW ends, bit for bit."""
import pytest, torch
from torch import nn

transformers = pytest.importorskip('transformers')
from fastnote import SGD, RMSProp, Adam


class Regressor(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(4, 16), nn.LayerNorm(16), nn.Tanh(), nn.Linear(16, 1))
    def forward(self, x, labels=None):
        out = self.net(x)
        return {'loss': nn.functional.mse_loss(out, labels), 'logits': out}


class Data(torch.utils.data.Dataset):
    def __init__(self):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(64, 4, generator=g); self.y = self.x @ torch.randn(4, 1, generator=g)
    def __len__(self): return len(self.x)
    def __getitem__(self, i): return {'x': self.x[i], 'labels': self.y[i]}


def train(tmp_path, optimizer_cls_and_kwargs=None, **kw):
    args = transformers.TrainingArguments(output_dir=str(tmp_path), **kw, max_steps=8, per_device_train_batch_size=8,
                                          learning_rate=1e-3, weight_decay=0.1, report_to=[], save_strategy='no',
                                          use_cpu=True, seed=0, data_seed=0, disable_tqdm=True, lr_scheduler_type='constant')
    trainer = transformers.Trainer(model=Regressor(), args=args, train_dataset=Data(),
                                   optimizer_cls_and_kwargs=optimizer_cls_and_kwargs)
    trainer.train()
    return trainer


@pytest.mark.parametrize('cls,kwargs', [(SGD, dict(lr=1e-2, mom=0.9)), (RMSProp, dict(lr=1e-3)), (Adam, dict(lr=1e-3))])
def test_the_trainer_builds_and_trains_each_optimizer(tmp_path, cls, kwargs):
    trainer = train(tmp_path, (cls, kwargs))
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, 'optimizer') else trainer.optimizer
    assert isinstance(opt, cls)
    assert sorted(g['wd'] for g in opt.param_groups) == [0.0, 0.1]     # the Trainer's weight_decay groups, understood
    assert trainer.state.global_step == 8


def test_fastnote_adam_in_the_trainer_equals_its_default_adamw(tmp_path):
    mine = train(tmp_path/'mine', (Adam, dict(lr=1e-3, sqr_mom=0.999, eps=1e-8)))
    ref = train(tmp_path/'ref', optim='adamw_torch')                       # torch's AdamW, multi-tensor
    assert type(ref.optimizer.optimizer if hasattr(ref.optimizer, 'optimizer') else ref.optimizer) is torch.optim.AdamW
    for a, b in zip(mine.model.parameters(), ref.model.parameters()): assert torch.equal(a, b)
