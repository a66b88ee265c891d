"""Compatibility fixes for RecBole 1.2.1 on today's Python stack.

Every fix lives here, with the reason beside it; ``tests/test_compat.py`` shows for each
one that the problem is real on the installed versions and that the fix removes it.

1. numpy 2 removed ``np.float_``/``np.complex_``/``np.unicode_``; RecBole's
   ``Config.compatibility_settings`` assigns them and crashes before any config exists.
   :func:`numpy_aliases` installs the removed short aliases (``np.float``, ``np.bool``...)
   from names that exist in numpy 1 *and* 2, which is all RecBole's code uses.
2. torch >= 2.6 loads with ``weights_only=True`` by default; RecBole checkpoints pickle the
   whole ``Config`` (trainer.py ``_save_checkpoint``), so ``Trainer.evaluate(load_best_model=True)``
   and ``resume_checkpoint`` raise ``UnpicklingError``. :func:`load_checkpoint` passes
   ``weights_only=False`` explicitly: our own checkpoints are trusted files we wrote.
3. ``recbole.quick_start`` imports ray at module import (ray 2.6.3 needs ``pkg_resources``
   and ``np.bool8``, both gone from today's setuptools/numpy). recbole_dnr never imports
   ``recbole.quick_start``; it has its own quick_start. :func:`assert_ray_free` is what the
   test uses to keep it that way.
4. pandas 2.2+ warns (FutureWarning) at every load about RecBole's chained
   ``df[col].fillna(..., inplace=True)`` (dataset.py:501,648,650); the calls still work on
   pandas < 3 (pinned in setup.cfg). :func:`silence_pandas_chained_fillna` hides that one
   warning, only when raised from recbole.data.dataset.
5. scipy >= 1.15 removed the private ``dok_matrix._update`` that RecBole's graph models (LightGCN,
   NGCF, NCL, GCMC, SpectralCF) use to build their adjacency; :func:`scipy_dok_update` restores it.
6. RecBole's ``sine.py`` switches autograd anomaly detection on at import; :func:`keep_anomaly_mode`
   puts it back.
7. RecBole's ``utils.ensure_dir`` checks, then creates: two runs starting together (two benchmark
   grids, a test's two processes) both see ``./log/<Model>`` missing and the second ``makedirs`` raises
   ``FileExistsError`` in ``init_logger``. :func:`race_free_ensure_dir` makes it ``exist_ok``.
8. torch >= 2.4 deprecates ``torch.cuda.amp.GradScaler(...)``, which RecBole's ``Trainer._train_epoch``
   (trainer.py:235) builds every epoch, so every run printed a FutureWarning about code the user cannot
   change. :func:`silence_recbole_grad_scaler` hides that one warning, only when raised from RecBole's trainer.
9. torch deprecates the ``torch.sparse.FloatTensor(indices, values, shape)`` constructor that RecBole's graph
   models (LightGCN, NGCF, ..., as CoRR's ``retriever_model``) build their adjacency with; the call still works.
   :func:`silence_recbole_sparse_constructor` hides that UserWarning, only when raised from RecBole's models.
10. torch's "tensor from a list of numpy.ndarrays is extremely slow" UserWarning from RecBole's DMF:
   :func:`silence_recbole_list_of_arrays`.
11. RecBole's ``Interaction.sort`` (interaction.py:347; the general models' full-sort data loader uses it)
   calls ``np.argsort`` on a torch tensor: numpy 2 falls back to wrapping the result with the tensor's
   one-argument ``__array_wrap__``, deprecated (DeprecationWarning) and due to fail in a later numpy.
   :func:`interaction_argsort` gives that module an ``np`` whose ``argsort`` sorts the tensor's numpy view.
   (Its descending sort fails on today's torch either way, a reversed array's negative stride; RecBole
   sorts ascending only.)
12. pandas 2.1+ warns (FutureWarning) that ``Series.agg(len)`` "cannot aggregate" when RecBole splits
   a ``token_seq`` side feature (dataset.py:1217, any ``.item``/``.user`` field such as ml-100k's
   ``class``); on pandas < 3 the call still returns the lengths RecBole wants.
   :func:`silence_recbole_agg_len` hides that one warning from RecBole's dataset module.
13. RecBole's ``Config._init_parameters_category`` (configurator.py:100) puts its module-level argument
   lists in ``self.parameters``, and a config whose dataset has a RecBole yaml extends
   ``parameters["Dataset"]`` with that yaml's keys in place (configurator.py:283; ml-100k's holds KG
   keys), so every later config of the process carries them: our list-cache key, which hashes the
   ``Dataset`` keys, changed for a dataset built after an ml-100k config in the same process.
   :func:`per_config_parameters` gives each config copies of the lists.

Atomic, checksummed writes of our own files live in :mod:`recbole_dnr.storage` (not a compat fix).
"""

import contextlib
import os
import sys
import warnings

import numpy as np
import torch

# name -> target that exists in numpy 1.x and 2.x alike
_NUMPY_ALIASES = {
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "complex": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
}


def numpy_aliases():
    """Fix 1: install the deprecated numpy aliases RecBole 1.2.1 still uses (metrics.py, dataset.py)."""
    for name, target in _NUMPY_ALIASES.items():
        setattr(np, name, target)


def load_checkpoint(path, map_location="cpu", pickle_module=None):
    """Fix 2: ``torch.load`` of a RecBole checkpoint (pickles a Config) on torch >= 2.6."""
    extra = {} if pickle_module is None else {"pickle_module": pickle_module}
    return torch.load(path, map_location=map_location, weights_only=False, **extra)


@contextlib.contextmanager
def trusted_torch_load():
    """Fix 2 for RecBole's own trainers (RecBole models run through our entry point): inside the
    block, ``torch.load`` defaults to ``weights_only=False``, as RecBole's checkpoints need."""
    original = torch.load

    def load(*args, **kwargs):
        kwargs.setdefault("weights_only", False)
        return original(*args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def assert_ray_free():
    """Fix 3: True when importing recbole_dnr pulled in neither ray nor recbole.quick_start."""
    return "ray" not in sys.modules and "recbole.quick_start" not in sys.modules


def silence_pandas_chained_fillna():
    """Fix 4: drop RecBole's chained-assignment FutureWarning (harmless on pandas < 3)."""
    warnings.filterwarnings("ignore", message=".*chained assignment.*", category=FutureWarning,
                            module=r"recbole\.data\.dataset")


def scipy_dok_update():
    """Fix 5: RecBole 1.2.1's graph models (LightGCN, NGCF, NCL, GCMC, SpectralCF) fill their
    adjacency with ``dok_matrix._update``, a private method recent scipy removed; restore it."""
    import scipy.sparse as sp

    if not hasattr(sp.dok_matrix, "_update"):
        def _update(self, data):
            if data:
                keys = np.array(list(data.keys()), dtype=np.int64)
                self[keys[:, 0], keys[:, 1]] = np.array(list(data.values()), dtype=self.dtype)

        sp.dok_matrix._update = _update


def keep_anomaly_mode():
    """Fix 6: RecBole 1.2.1's ``sequential_recommender/sine.py`` calls
    ``torch.autograd.set_detect_anomaly(True)`` at import, and importing any sequential model
    imports it, so every later run (ours included) pays anomaly detection's cost on each op.
    Import it once here and put the switch back where it was."""
    import importlib

    import torch

    was = torch.is_anomaly_enabled()
    importlib.import_module("recbole.model.sequential_recommender.sine")
    torch.autograd.set_detect_anomaly(was)


def _makedirs_exist_ok(dir_path):
    os.makedirs(dir_path, exist_ok=True)


def race_free_ensure_dir():
    """Fix 7: swap the body of RecBole's ``ensure_dir`` for ``os.makedirs(exist_ok=True)``. The
    code object is replaced in place, so every module that imported the function by name
    (logger, trainer, dataset, data utils) gets the fix."""
    from recbole.utils import utils

    utils.ensure_dir.__code__ = _makedirs_exist_ok.__code__


def silence_recbole_grad_scaler():
    """Fix 8: drop the ``torch.cuda.amp.GradScaler`` deprecation warning raised by RecBole's trainer."""
    warnings.filterwarnings("ignore", message=r".*torch\.cuda\.amp\.GradScaler.*", category=FutureWarning,
                            module=r"recbole\.trainer\.trainer")


def silence_recbole_sparse_constructor():
    """Fix 9: drop the legacy sparse-constructor deprecation warning raised by RecBole's graph models
    (with a shape, LightGCN; without, NGCF)."""
    warnings.filterwarnings("ignore", message=r".*torch\.sparse\.SparseTensor\(indices, values, .*",
                            category=UserWarning, module=r"recbole\.model\.")


def silence_recbole_list_of_arrays():
    """Fix 10: drop torch's "tensor from a list of numpy.ndarrays is extremely slow" warning raised by
    RecBole's DMF (dmf.py:214, once per model: its interaction matrix)."""
    warnings.filterwarnings("ignore", message=r"Creating a tensor from a list of numpy\.ndarrays",
                            category=UserWarning, module=r"recbole\.model\.")


def silence_recbole_agg_len():
    """Fix 12: drop pandas' ``Series.agg(len)`` FutureWarning raised from RecBole's dataset module."""
    warnings.filterwarnings("ignore", message=r".*in Series\.agg cannot aggregate.*", category=FutureWarning,
                            module=r"recbole\.data\.dataset")


def per_config_parameters():
    """Fix 13: each RecBole ``Config`` gets its own copies of the argument lists it may extend."""
    from recbole.config import configurator

    original = configurator.Config._init_parameters_category
    if getattr(original, "copies_lists", False):
        return

    def _init_parameters_category(self):
        original(self)
        self.parameters = {category: list(args) for category, args in self.parameters.items()}

    _init_parameters_category.copies_lists = True
    configurator.Config._init_parameters_category = _init_parameters_category


def silence_recbole_warnings():
    """Fixes 4, 8, 9, 10 and 12 together: the warnings raised from RecBole's code that the user cannot change."""
    silence_recbole_agg_len()
    silence_pandas_chained_fillna()
    silence_recbole_grad_scaler()
    silence_recbole_sparse_constructor()
    silence_recbole_list_of_arrays()


class _TensorArgsortNumpy:
    """numpy, except ``argsort`` of a torch tensor sorts its numpy view and returns a tensor (as
    numpy 2's fallback does today, through ``Tensor.__array_wrap__``)."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def argsort(a, *args, **kwargs):
        if isinstance(a, torch.Tensor):
            return torch.from_numpy(np.argsort(a.detach().cpu().numpy(), *args, **kwargs))
        return np.argsort(a, *args, **kwargs)


def interaction_argsort():
    """Fix 11: ``recbole.data.interaction`` uses ``np`` for one call, ``np.argsort(<tensor>)``."""
    from recbole.data import interaction

    if not isinstance(interaction.np, _TensorArgsortNumpy):
        interaction.np = _TensorArgsortNumpy()
