"""Each compatibility fix: the problem is real on the installed stack, and the fix removes it."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from recbole.config import Config as RecBoleConfig

from recbole_dnr import compat
from recbole_dnr.config import Config


@pytest.mark.skipif(int(np.__version__.split(".")[0]) < 2, reason="numpy 1.x still has np.float_")
def test_numpy2_breaks_recbole_config_and_fix_works():
    with pytest.raises(AttributeError):
        RecBoleConfig.compatibility_settings(None)  # RecBole's own patch touches np.float_
    compat.numpy_aliases()
    assert np.float is np.float64 and np.bool is np.bool_ and np.long is np.int_
    # RecBole's metrics use np.float; with the fix a Config builds and a metric runs
    Config(model="BPR", dataset="ml-100k", config_dict={"state": "ERROR"})
    from recbole.evaluator.metrics import GAUC  # noqa: F401


@pytest.mark.skipif(tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 6),
                    reason="torch < 2.6 loads full pickles by default")
def test_torch_weights_only_breaks_checkpoints_and_fix_works(tmp_path):
    config = Config(model="BPR", dataset="ml-100k", config_dict={"state": "ERROR"})
    path = tmp_path / "ckpt.pth"
    torch.save({"config": config, "state_dict": {"w": torch.ones(2)}}, path, pickle_protocol=4)
    with pytest.raises(Exception) as err:
        torch.load(path)  # what RecBole's Trainer.evaluate(load_best_model=True) does
    assert "weights_only" in str(err.value).lower() or "Weights only" in str(err.value)
    loaded = compat.load_checkpoint(path)
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(2)) and loaded["config"]["model"] == "BPR"


def test_recbole_quick_start_needs_ray_and_we_never_import_it():
    code = "import recbole.quick_start"
    broken = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    ours = subprocess.run(
        [sys.executable, "-c", "import recbole_dnr.quick_start, recbole_dnr.trainer, recbole_dnr.data, "
         "recbole_dnr.model; from recbole_dnr import compat; assert compat.assert_ray_free()"],
        capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr
    # recbole.quick_start imports ray at module import: it fails here, or it pulls ray in
    if broken.returncode == 0:
        check = subprocess.run([sys.executable, "-c", code + "; import sys; assert 'ray' in sys.modules"])
        assert check.returncode == 0
    else:
        assert "ray" in broken.stderr or "pkg_resources" in broken.stderr or "bool8" in broken.stderr


def _shown_after(silence, msg, category, recbole_module):
    """Files of the warnings still shown once ``silence`` ran: ``msg`` raised from ``recbole_module``
    and from user code."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        silence()
        warnings.warn_explicit(msg, category, "recbole.py", 1, module=recbole_module)
        warnings.warn_explicit(msg, category, "mine.py", 1, module="mycode")
    return [w.filename for w in caught]


def _raised(statement, needle, category):
    """The message of the ``category`` warning containing ``needle`` that ``statement`` raises, run in a
    fresh process: torch raises its C++ warnings once per process, and earlier tests may have used it."""
    code = ("import warnings, numpy as np, torch\n"
            "with warnings.catch_warnings(record=True) as real:\n"
            f"    warnings.simplefilter('always')\n    {statement}\n"
            f"print(next(str(w.message) for w in real if issubclass(w.category, {category.__name__}) "
            f"and {needle!r} in str(w.message)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_pandas_chained_fillna_warning_is_silenced_only_from_recbole():
    msg = "A value is trying to be set on a copy ... through chained assignment using an inplace method."
    assert _shown_after(compat.silence_pandas_chained_fillna, msg, FutureWarning,
                        "recbole.data.dataset.dataset") == ["mine.py"]


def test_pandas_agg_len_warning_is_real_and_silenced_only_from_recbole():
    code = ("import warnings, pandas as pd\nwith warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n    pd.Series([[1, 2], [3]]).agg(len)\n"
            "print(next(str(x.message) for x in w if issubclass(x.category, FutureWarning)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    msg = done.stdout.strip()
    assert "Series.agg cannot aggregate" in msg
    assert _shown_after(compat.silence_recbole_agg_len, msg, FutureWarning,
                        "recbole.data.dataset.dataset") == ["mine.py"]


def test_recbole_grad_scaler_warning_is_real_and_silenced_only_from_recbole():
    # what RecBole's trainer.py:235 calls every epoch
    msg = _raised("torch.cuda.amp.GradScaler(enabled=False)", "GradScaler", FutureWarning)
    assert _shown_after(compat.silence_recbole_grad_scaler, msg, FutureWarning, "recbole.trainer.trainer") == ["mine.py"]


@pytest.mark.parametrize("shape", [(2, 2), None], ids=["lightgcn-shape", "ngcf-no-shape"])
def test_recbole_sparse_constructor_warning_is_real_and_silenced_only_from_recbole(shape):
    # what RecBole's lightgcn.py:125 (with a shape) and ngcf.py:137 (without) call, and 13 other graph-model lines
    size = f", torch.Size({shape})" if shape else ""
    msg = _raised(f"torch.sparse.FloatTensor(torch.tensor([[0], [1]]), torch.tensor([1.0]){size})",
                  "torch.sparse.SparseTensor", UserWarning)
    assert _shown_after(compat.silence_recbole_sparse_constructor, msg, UserWarning,
                        "recbole.model.general_recommender.ngcf") == ["mine.py"]


def test_recbole_list_of_arrays_warning_is_real_and_silenced_only_from_recbole():
    # what RecBole's dmf.py:214 calls: torch.LongTensor([row, col]) with two numpy arrays
    msg = _raised("torch.LongTensor([np.arange(2), np.arange(2)])", "list of numpy.ndarrays", UserWarning)
    assert _shown_after(compat.silence_recbole_list_of_arrays, msg, UserWarning,
                        "recbole.model.general_recommender.dmf") == ["mine.py"]


def test_scipy_dok_update_is_gone_and_fix_restores_it():
    import scipy.sparse as sp

    from recbole_dnr import compat

    saved = sp.dok_matrix.__dict__.get("_update")
    if saved is not None:
        del sp.dok_matrix._update
    try:
        assert not hasattr(sp.dok_matrix((2, 2)), "_update")  # what LightGCN would hit on this scipy
        compat.scipy_dok_update()
        m = sp.dok_matrix((3, 4), dtype=np.float32)
        m._update({(0, 1): 1.0, (2, 3): 2.0})
        assert m.toarray().tolist() == [[0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 2]]
    finally:
        if saved is not None:
            sp.dok_matrix._update = saved
    # in force once the package is imported, without a Config (a served LightGCN checkpoint builds none)
    done = subprocess.run([sys.executable, "-c", "import scipy.sparse as sp, recbole_dnr; "
                           "assert hasattr(sp.dok_matrix, '_update')"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_importing_recbole_dnr_leaves_anomaly_mode_as_it_was():
    """Fix 6: RecBole's sine.py switches anomaly detection on at import (every op then records a
    traceback); importing our models, which import RecBole's sequential models, must not."""
    import subprocess
    import sys

    code = ("import torch; import recbole_dnr.model, recbole.model.sequential_recommender.sine; "
            "print(torch.is_anomaly_enabled())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False"
    code = "import recbole.model.sequential_recommender.sine, torch; print(torch.is_anomaly_enabled())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "True"  # the RecBole behaviour the fix undoes


def test_recbole_ensure_dir_survives_a_folder_made_between_check_and_create(tmp_path, monkeypatch):
    """Fix 7: RecBole's ensure_dir checks, then creates; when another process creates the folder in
    between (two runs starting together), RecBole's own body raises FileExistsError."""

    import recbole_dnr  # noqa: F401 (installs the fix)
    from recbole.utils import ensure_dir
    from recbole.utils import logger

    made = tmp_path / "log" / "PRM"
    made.mkdir(parents=True)
    monkeypatch.setattr(os.path, "exists", lambda p: False)  # the check ran before the other process's mkdir
    ensure_dir(str(made))
    assert logger.ensure_dir is ensure_dir  # the name init_logger calls is the fixed function
    original = """def ensure_dir(dir_path):\n    if not os.path.exists(dir_path):\n        os.makedirs(dir_path)\n"""
    scope = {"os": os}
    exec(original, scope)  # RecBole 1.2.1's body (recbole/utils/utils.py): the race is real
    with pytest.raises(FileExistsError):
        scope["ensure_dir"](str(made))


def test_recbole_interaction_sort_argsorts_a_tensor_and_fix_sorts_its_numpy_view():
    from recbole.data.interaction import Interaction

    key = torch.tensor([3, 1, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises((DeprecationWarning, TypeError)):  # numpy 2: the tensor's old __array_wrap__
            np.argsort(key, kind="stable")
        inter = Interaction({"user_id": key.clone(), "item_id": torch.tensor([10, 11, 12, 13]),
                             "t": torch.tensor([5.0, 9.0, 1.0, 2.0])})
        inter.sort(by="user_id")  # under the fix: no warning, and the stable order of the ties kept
        assert inter["item_id"].tolist() == [11, 13, 12, 10] and isinstance(inter["user_id"], torch.Tensor)
        inter.sort(by=["user_id", "t"])  # as RecBole's sequential datasets sort: by user, then time
        assert inter["item_id"].tolist() == [13, 11, 12, 10]


def test_recbole_config_leaks_dataset_keys_and_fix_keeps_them_per_config():
    """In a fresh process: RecBole's own Config of another dataset, after one of ml-100k (whose RecBole yaml
    holds KG keys), carries ml-100k's Dataset keys; with the fix (importing recbole_dnr) it does not."""
    code = ("import numpy as np\n"  # RecBole's own Config on numpy 2 needs the removed long aliases
            "np.float_, np.complex_, np.unicode_ = np.float64, np.complex128, np.str_\n{pre}\n"
            "from recbole.config import Config\n"
            "kw = dict(model='BPR', config_dict={{'data_path': 'unused', 'gpu_id': ''}})\n"
            "Config(dataset='ml-100k', **kw)\n"
            "print('kg_reverse_r' in Config(dataset='other', **kw).parameters['Dataset'])")

    def run(pre):
        done = subprocess.run([sys.executable, "-c", code.format(pre=pre)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.strip().splitlines()[-1]

    assert run("") == "True"  # the leak is real
    assert run("import recbole_dnr") == "False"
