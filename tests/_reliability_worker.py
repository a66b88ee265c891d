"""Child process for tests/test_reliability.py (a file, so it can be started, killed and resumed).

    python tests/_reliability_worker.py train <settings.json> <out.json> [EPOCH:STEP]
        train + test like ``run_recbole_dnr``; with ``EPOCH:STEP`` the process SIGKILLs itself at
        that optimisation step (θ or φ, 1-based) of that 0-based epoch, as an outside ``kill -9`` would.
    python tests/_reliability_worker.py lists <settings.json> <out.json>
        build the candidate lists; report whether this process wrote the cache, and a digest of the lists.
"""

import hashlib
import json
import os
import signal
import sys
import time

import torch


def train(cfg, out, kill_at):
    from recbole_dnr.quick_start import run_recbole_dnr
    from recbole_dnr.trainer.list_trainer import ListTrainer

    steps = {}  # 0-based epoch -> optimisation steps taken in it
    now = {"epoch": None}
    before = [0.0]  # training time of the killed processes, as the resumed run restored it
    sync, train_epoch = ListTrainer.sync_gradients, ListTrainer._train_epoch

    def counting_epoch(self, train_data, epoch_idx, *a, **kw):
        now["epoch"] = epoch_idx
        before[0] = self.fit_seconds_before
        return train_epoch(self, train_data, epoch_idx, *a, **kw)

    def counting_sync(self, params, n_lists):  # called once per θ step and once per φ step
        e = now["epoch"]
        steps[e] = steps.get(e, 0) + 1
        if kill_at == (e, steps[e]):
            os.kill(os.getpid(), signal.SIGKILL)
        return sync(self, params, n_lists)

    ListTrainer.sync_gradients, ListTrainer._train_epoch = counting_sync, counting_epoch
    curve = []  # what RecBole's callback hook saw: a resumed run replays the restored evaluations first
    started = time.perf_counter()
    result = run_recbole_dnr(config_dict=cfg, callback_fn=lambda epoch, score: curve.append([epoch, score]))
    wall = time.perf_counter() - started  # this process's run, lists and test included
    with open(out, "w") as f:
        json.dump({"test": result["test_result"], "valid": result["best_valid_result"], "steps": steps,
                   "curve": curve, "seconds": result["seconds"], "fit_seconds_before": before[0], "wall": wall}, f)


def lists(cfg, out):
    from recbole_dnr import storage
    from recbole_dnr.quick_start.quick_start import build

    saved = []
    real_save = storage.save

    def recording_save(obj, path):
        saved.append(os.path.basename(str(path)))
        return real_save(obj, path)

    storage.save = recording_save
    lists = build(config_dict=cfg)[2][0].requests.lists
    splits = lists.build()
    digest = hashlib.sha1()
    for split in splits:
        for key in sorted(split.inter.interaction):
            digest.update(key.encode())
            digest.update(split.inter[key].numpy().tobytes())
    lists_file = os.path.basename(lists.cache_path())
    with open(out, "w") as f:
        json.dump({"wrote_lists": lists_file in saved, "digest": digest.hexdigest()}, f)


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, settings, out = sys.argv[1:4]
    with open(settings) as f:
        cfg = json.load(f)
    if mode == "train":
        train(cfg, out, tuple(map(int, sys.argv[4].split(":"))) if len(sys.argv) > 4 else None)
    else:
        lists(cfg, out)
