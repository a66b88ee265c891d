"""The model classes a checkpoint names: custom rerankers imported before loading (``--import``),
and a missing class reported as one line naming the fix instead of an unpickling traceback.

A checkpoint pickles its config, which holds the model class by import path (``module.Class``):
a class in an importable module loads with no help; one in a module off ``sys.path`` (or defined in
the training script itself, ``__main__``) needs ``--import <module or file.py>``.
"""

import importlib
import importlib.util
import os
import pickle
import sys
import types

from recbole_dnr import storage
from recbole_dnr.errors import UserInputError


def class_path(cls):
    """``module:QualName`` of a model class (what a bundle's manifest records)."""
    return f"{cls.__module__}:{cls.__qualname__}"


def import_modules(names, where="--import"):
    """Import each of ``names``: a module name (``my_models``) or a ``.py`` file, imported under its
    file's stem (so the classes it registers resolve as they did in training). ``where`` names what
    listed them in an error (the flag, or a grid yaml's ``import:``)."""
    for name in names or []:
        if name.endswith(".py") or os.sep in name:
            if not os.path.isfile(name):
                raise UserInputError(f"{where} {name}: no such file")
            module_name = os.path.splitext(os.path.basename(name))[0]
            if module_name in sys.modules:
                continue
            spec = importlib.util.spec_from_file_location(module_name, os.path.abspath(name))
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[module_name]
                raise
        else:
            try:
                importlib.import_module(name)
            except ModuleNotFoundError as err:
                if err.name != name.split(".")[0] and err.name != name:
                    raise
                raise UserInputError(f"{where} {name}: no module of that name on sys.path; pass its .py file "
                                     "instead, or add its folder to PYTHONPATH") from None


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return super().find_class(module, name)
        except (ImportError, AttributeError, UserInputError):  # UserInputError: a DNR_<X> of an unknown X
            found = _registered(name)
            if found is not None:  # registered by an --import of another module (e.g. a script's class)
                return found
            if module == "__main__" or module.startswith("recbole_dnr."):  # a script's class, or a wrapper of one
                hint = "<the module or .py file that defines it (for DNR_<X>: X)>"
            else:
                hint = f"{module} (or its .py file)"
            raise UserInputError(f"the model class {name} (from {module}) is not importable in this process: pass "
                                 f"--import {hint} to the command, or import it before Recommender.load") from None


def _registered(name):
    from recbole_dnr.registry import get_model

    try:
        return get_model(name)
    except UserInputError:
        return None


# what torch.load uses to unpickle (its ``pickle_module``): pickle, with the missing class named
PICKLE = types.ModuleType("recbole_dnr_checkpoint_pickle")
PICKLE.Unpickler = _Unpickler
PICKLE.load = lambda f, **kw: _Unpickler(f, **kw).load()


def read(path):
    """The object saved at ``path`` by :func:`recbole_dnr.storage.save` (checksum checked); a model
    class this process cannot import is a :class:`UserInputError` naming the fix."""
    return storage.load(path, pickle_module=PICKLE)
