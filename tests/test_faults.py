"""Faults around a run: a full disk, a size limit, a read-only folder, a stale `RANK`, a callback's `cleanup` that fails
while another error is on its way, a NaN loss at a checkpoint. Each says what happened and loses nothing saved."""
import errno, os, subprocess, sys, textwrap, warnings
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fastnote import (Learner, DataLoaders, Callback, CheckpointCallback, CSVLogger, atomic_save, safe_load, rank_distrib,
                      num_distrib)

ROOT = Path(__file__).resolve().parents[1]


def batches(n=3, bs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(bs, 4, generator=g), torch.randint(0, 3, (bs,), generator=g)) for _ in range(n)]


def learner(path, **kw):
    torch.manual_seed(0)
    learn = Learner(DataLoaders(batches(), batches(1, seed=1)), nn.Linear(4, 3), F.cross_entropy, path=path, **kw)
    learn.progress.show_table = False
    return learn


LIMITED_SAVE = textwrap.dedent('''
    import resource, signal, sys, torch
    from fastnote import atomic_save
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)        # a write past the limit fails with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.RLIM_INFINITY))
    try: atomic_save({'w': torch.zeros(100_000)}, sys.argv[1])
    except OSError as e: print(type(e).__name__, e.errno, e)
''')

def test_a_save_past_the_size_limit_says_so_and_keeps_the_old_file(tmp_path):
    "RLIMIT_FSIZE makes the disk look full at 20 kB: the error names the file, the previous one stays whole, no temporary is left."
    target = tmp_path/'m.pth'
    atomic_save({'w': torch.ones(3)}, target)
    res = subprocess.run([sys.executable, '-c', LIMITED_SAVE, str(target)], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith(f'OSError {errno.EFBIG} '), res.stdout
    assert f"the file would pass this process's size limit (ulimit -f) writing {target}; the previous file, if any, is unchanged" in res.stdout
    assert torch.equal(safe_load(target)['w'], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['m.pth']


@pytest.mark.skipif(not hasattr(os, 'geteuid') or os.geteuid() == 0, reason='root writes in read-only folders')
def test_saving_into_a_read_only_folder_names_it_and_keeps_the_old_file(tmp_path):
    learn = learner(tmp_path)
    learn.fit(1)
    saved = learn.save('m')
    before = saved.read_bytes()
    saved.parent.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match=f'no permission to write in {saved.parent} writing {saved}'):
            learn.save('m')
        with pytest.raises(PermissionError, match='no permission to write in'):
            learn.fit(1, cbs=CheckpointCallback())
    finally: saved.parent.chmod(0o700)
    assert saved.read_bytes() == before
    assert sorted(p.name for p in saved.parent.iterdir()) == ['m.pth']


def test_a_stale_rank_does_not_silence_saving(tmp_path, monkeypatch):
    "A RANK left in the environment, without WORLD_SIZE or a process group, is not a distributed run: this process writes."
    monkeypatch.setenv('RANK', '1'); monkeypatch.delenv('WORLD_SIZE', raising=False)
    assert (rank_distrib(), num_distrib()) == (0, 1)
    learn = learner(tmp_path)
    learn.fit(1, cbs=[CheckpointCallback(), CSVLogger()])
    assert learn.save('m').is_file()
    assert (tmp_path/'models'/'checkpoint.pth').is_file() and (tmp_path/'history.csv').is_file()


class Boom(Exception): "The error of the fit itself."

class BadCleanup(Callback):
    "A callback whose cleanup fails."
    def cleanup(self): raise RuntimeError('cleanup broke')

class Flag(Callback):
    "Notes that its cleanup ran."
    order = 99
    def __init__(self): self.cleaned = False
    def cleanup(self): self.cleaned = True

class Fails(Callback):
    def before_batch(self): raise Boom('the real error')


def test_a_failing_cleanup_does_not_replace_the_error_being_handled(tmp_path):
    flag = Flag()
    learn = learner(tmp_path, cbs=[BadCleanup(), flag])
    with pytest.raises(Boom, match='the real error') as info: learn.fit(1, cbs=Fails())
    assert flag.cleaned                                                     # every cleanup ran
    assert any('BadCleanup.cleanup() also raised RuntimeError: cleanup broke' in n for n in info.value.__notes__), info.value.__notes__
    learn.remove_cb(BadCleanup)
    learn.fit(1)                                                            # and the Learner still trains


def test_a_failing_cleanup_after_a_good_fit_is_raised(tmp_path):
    flag = Flag()
    learn = learner(tmp_path, cbs=[BadCleanup(), flag])
    with pytest.raises(RuntimeError, match='cleanup broke'): learn.fit(1)
    assert flag.cleaned


def test_a_checkpoint_not_written_at_a_nan_loss_says_so(tmp_path):
    class NaNLoss(Callback):
        order = 70                                         # after the Recorder, before CheckpointCallback (80)
        def after_batch(self):
            if self.learn.training and self.learn.iter == 1: self.learn.loss = torch.tensor(float('nan'))
    learn = learner(tmp_path)
    with pytest.warns(UserWarning, match=r'CheckpointCallback: no checkpoint at epoch 0, batch 2: the last loss \(nan\) holds NaN or inf'):
        learn.fit(1, cbs=[CheckpointCallback(every_n_batches=1), NaNLoss()])
    assert (tmp_path/'models'/'checkpoint.pth').is_file()                   # the batches before and after it were saved


def test_a_checkpoint_with_a_flipped_bit_is_refused_by_name(tmp_path):
    "torch loads a zip whose bytes changed without a word; the checksum fastnote stores with every checkpoint does not."
    from fastnote import CheckpointError
    learn = learner(tmp_path)
    learn.fit(1, cbs=CheckpointCallback())
    path = tmp_path/'models'/'checkpoint.pth'
    w = learn.model.weight.detach()
    data = bytearray(path.read_bytes()); at = bytes(data).find(w.numpy().tobytes())
    assert at > 0
    data[at + 1] ^= 0x10; path.write_bytes(bytes(data))
    assert not torch.equal(torch.load(path, weights_only=True)['model']['weight'], w)
    with pytest.raises(CheckpointError, match=r"checkpoint.pth is corrupted: its contents do not match the checksum"):
        learner(tmp_path).fit(2, resume_from='checkpoint')


SAVING_LOOP = textwrap.dedent('''
    import sys, torch
    from fastnote import atomic_save
    big = {'w': torch.randn(8_000_000)}                      # 32 MB: most of the time is spent inside torch.save
    print('ready', flush=True)
    try:
        while True: atomic_save(big, sys.argv[1])
    except KeyboardInterrupt: print('KeyboardInterrupt'); sys.exit(0)
    except BaseException as e: print(type(e).__name__, e); sys.exit(1)
''')

def test_ctrl_c_during_saves_arrives_as_keyboard_interrupt(tmp_path):
    "A SIGINT while a process saves over and over: each time a KeyboardInterrupt (not torch's 'unexpected pos'), and a whole file."
    import signal, time
    results = []
    for i in range(6):
        proc = subprocess.Popen([sys.executable, '-c', SAVING_LOOP, str(tmp_path/'ck.pth')], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert proc.stdout.readline().strip() == 'ready'
        time.sleep(0.6 + 0.37 * i)                           # a different moment of a save each time
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
        results.append((proc.returncode, out.strip()))
    assert all(r == (0, 'KeyboardInterrupt') for r in results), results
    assert safe_load(tmp_path/'ck.pth')['w'].numel() == 8_000_000 and [p.name for p in tmp_path.iterdir()] == ['ck.pth']
