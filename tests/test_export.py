"""`Learner.export` and `load_learner` as a user meets them: a file made by a training script, loaded by another process
that has never seen the script's classes; and files made to run code, which must be refused without running it."""
import io, os, sys, textwrap, zipfile
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from conftest import ROOT, run

from fastnote import DataLoaders, Learner, load_learner, accuracy
from fastnote.checkpoint import CheckpointError, safe_load
from fastnote.export import EXPORT_FORMAT, loss_recipe, rebuild_loss

TRAIN = textwrap.dedent('''
    import sys, torch
    from torch import nn
    from torch.utils.data import TensorDataset
    from sklearn.datasets import load_digits
    from fastnote import DataLoaders, Learner, accuracy
    class ScriptOnlyCNN(nn.Module):                      # defined here only: the loading process never sees it
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten())
            self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(8 * 64, 10))
        def forward(self, x): return self.head(self.body(x))
    d = load_digits()
    x, y = torch.tensor(d.images, dtype=torch.float32)[:, None] / 16, torch.tensor(d.target)
    torch.manual_seed(0)
    dls = DataLoaders.from_dsets(TensorDataset(x[:1500], y[:1500]), TensorDataset(x[1500:], y[1500:]), bs=64, seed=0,
                                 loss_func=nn.CrossEntropyLoss(), vocab=[f'digit {i}' for i in range(10)])
    learn = Learner(dls, ScriptOnlyCNN(), lr=1e-2, metrics=accuracy, path=sys.argv[1])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2)
    learn.export('digits.pt2')
    torch.save({'x': x[1500:], 'names': [learn.predict(xi)[0] for xi in x[1500:]], 'preds': learn.get_preds()[0]},
               f'{sys.argv[1]}/expected.pt')
''')

LOAD = textwrap.dedent('''
    import sys, torch
    from fastnote import load_learner
    inf = load_learner(sys.argv[1] + '/digits.pt2')
    exp = torch.load(sys.argv[1] + '/expected.pt', weights_only=True)
    names = [inf.predict(xi)[0] for xi in exp['x']]
    preds, _ = inf.get_preds(dl=[(exp['x'][i:i + 50],) for i in range(0, len(exp['x']), 50)])
    print(sum(a == b for a, b in zip(names, exp['names'])), len(names), (preds - exp['preds']).abs().max().item())
''')


def test_a_fresh_process_without_the_training_code_predicts_the_same_classes(tmp_path):
    trainer, reader = tmp_path/'trainer', tmp_path/'reader'
    trainer.mkdir(); reader.mkdir()
    (trainer/'train.py').write_text(TRAIN)
    res = run([sys.executable, 'train.py', str(tmp_path)], cwd=trainer)
    assert res.returncode == 0, res.stderr[-3000:]
    (reader/'load.py').write_text(LOAD)
    res = run([sys.executable, 'load.py', str(tmp_path)], cwd=reader)     # a folder without train.py
    assert res.returncode == 0, res.stderr[-3000:]
    same, n, max_diff = res.stdout.split()
    assert int(n) == 297 and int(same) == 297, res.stdout
    assert float(max_diff) == 0.0, res.stdout                                   # the same program, the same numbers


class Payload:
    "Unpickling this runs a shell command that creates `marker`."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))


def with_member(data:bytes, suffix:str, payload:bytes)->bytes:
    src, buf = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as dst:
        for item in src.infolist(): dst.writestr(item, payload if item.filename.endswith(suffix) else src.read(item))
    return buf.getvalue()


@pytest.fixture
def exported(tmp_path):
    learn = Learner(DataLoaders([(torch.randn(8, 3), torch.randint(0, 2, (8,)))]), nn.Linear(3, 2), nn.CrossEntropyLoss(),
                    path=tmp_path)
    return learn, learn.export('m.pt2')


def pickled(obj)->bytes:
    buf = io.BytesIO(); torch.save(obj, buf); return buf.getvalue()


@pytest.mark.parametrize('where', ['whole file', 'meta', 'sample inputs', 'a weight', 'weights config'])
def test_a_file_made_to_run_code_is_refused_and_runs_nothing(exported, tmp_path, where):
    learn, f = exported
    marker = tmp_path/'ran'
    state = safe_load(f)
    if where == 'whole file': f.write_bytes(pickled(Payload(marker)))
    elif where == 'meta': f.write_bytes(pickled({'meta': {'format': EXPORT_FORMAT, 'x': Payload(marker)}, 'program': b''}))
    else:
        if where == 'weights config':     # say the weight is pickled, and make it a payload: torch loads those with weights_only=False
            cfg = zipfile.ZipFile(io.BytesIO(state['program'])).read('archive/data/weights/model_weights_config.json')
            assert b'"use_pickle": false' in cfg
            state['program'] = with_member(state['program'], 'model_weights_config.json',
                                           cfg.replace(b'"use_pickle": false', b'"use_pickle": true'))
        suffix = {'sample inputs': 'sample_inputs/model.pt', 'a weight': 'weights/weight_0',
                  'weights config': 'weights/weight_0'}[where]
        state['program'] = with_member(state['program'], suffix, pickled(Payload(marker)))
        f.write_bytes(pickled(state))
    with pytest.raises(CheckpointError, match=r'refused|does not load|not written by Learner.export|not a torch.export'):
        load_learner(f)
    assert not marker.exists(), f"the payload in the {where} ran"
    assert 'TORCH_FORCE_WEIGHTS_ONLY_LOAD' not in os.environ          # the forced mode ends with the load


def test_what_the_file_holds_is_data(exported):
    learn, f = exported
    state = torch.load(f, weights_only=True)                                   # the outer file: tensors and plain data
    assert set(state) == {'meta', 'program', 'fastnote checksum'} and isinstance(state['program'], bytes)
    meta = state['meta']
    assert meta['inputs'] == [{'shape': [3], 'dtype': 'float32'}] and meta['output_kind'] == 'single-label'
    assert meta['loss']['module'] == 'CrossEntropyLoss' and meta['model'] == 'Linear'
    names = zipfile.ZipFile(io.BytesIO(state['program'])).namelist()
    assert 'archive/models/model.json' in names and not any(n.endswith(('.so', '.py')) for n in names)


def test_multi_label_and_two_input_models_round_trip(tmp_path):
    class TwoInputs(nn.Module):
        def __init__(self): super().__init__(); self.a, self.b = nn.Linear(3, 4), nn.Linear(2, 4)
        def forward(self, x, z): return self.a(x) + self.b(z)
    torch.manual_seed(0)
    batches = [(torch.randn(6, 3), torch.randn(6, 2), (torch.rand(6, 4) > 0.5).float())]
    learn = Learner(DataLoaders(batches, batches, vocab=list('wxyz')), TwoInputs(), nn.BCEWithLogitsLoss(), path=tmp_path)
    inf = load_learner(learn.export('two.pt2'))
    item = (torch.randn(3), torch.randn(2))
    got, want = inf.predict(item), learn.predict(item)
    assert got[0] == want[0] and torch.equal(got[1], want[1]) and torch.allclose(got[2], want[2])
    assert isinstance(got[0], list) and got[1].dtype == torch.bool
    with pytest.raises(TypeError, match='takes 2 input'): inf.predict(torch.randn(3))
    with pytest.raises(ValueError, match=r'input 1 of the exported model must be \(batch, 2\) float32'):
        inf.predict((torch.randn(3), torch.randn(5)))


def test_losses_are_stored_by_name_or_not_at_all():
    for loss in (nn.CrossEntropyLoss(weight=torch.tensor([1., 2.]), label_smoothing=0.1), nn.BCEWithLogitsLoss(pos_weight=torch.ones(3)),
                 nn.MSELoss(reduction='sum'), F.cross_entropy, nn.HuberLoss(delta=2.)):
        back = rebuild_loss(loss_recipe(loss))
        if not isinstance(loss, nn.Module): assert back is loss; continue
        assert type(back) is type(loss) and vars(back).keys() == vars(loss).keys()
        for k in loss_recipe(loss)['kwargs']:
            a, b = getattr(back, k), getattr(loss, k)
            assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, (loss, k)
    assert loss_recipe(lambda p, t: (p - t).pow(2).mean()) is None
    assert loss_recipe(nn.CrossEntropyLoss(weight=torch.ones(2))).get('kwargs')['weight'].tolist() == [1., 1.]
    with pytest.raises(CheckpointError, match='does not know'): rebuild_loss({'module': 'os.system'})


def test_export_refuses_what_it_cannot_store(tmp_path):
    learn = Learner(DataLoaders([(['a', 'b'], torch.zeros(2))]), nn.Linear(3, 1), F.mse_loss, path=tmp_path)
    with pytest.raises(TypeError, match='export needs tensor inputs'): learn.export('x.pt2')
    with pytest.raises(CheckpointError, match='not written by Learner.export'):
        torch.save({'model': {}}, tmp_path/'other.pth'); load_learner(tmp_path/'other.pth')
    with pytest.raises(FileNotFoundError): load_learner(tmp_path/'missing.pt2')
