"""The floor's vocabulary: the error every usage mistake raises, and our model type."""

from enum import Enum


class UserInputError(ValueError):
    """A mistake in what the user asked for (model, dataset, option, file): the message says what
    is wrong and how to fix it; the command line prints it without a traceback."""


def missing_extra(what, pip_args, extra, otherwise=""):
    """The error for an optional feature whose packages are missing: ``what`` needs them; the fix for an
    installed wheel (``pip install <pip_args>``) and for a checkout (the ``extra`` of setup.cfg)."""
    return UserInputError(f'{what}: pip install {pip_args} (from a checkout: pip install ".[{extra}]"){otherwise}')


class ModelType(Enum):
    """Plug-in model types; values are disjoint from RecBole's ``ModelType`` (1..6)."""

    RERANK = 8
