"""The floor's vocabulary: the error every usage mistake raises, and our model type."""

from enum import Enum


class UserInputError(ValueError):
    """A mistake in what the user asked for (model, dataset, option, file): the message says what
    is wrong and how to fix it; the command line prints it without a traceback."""


class ModelType(Enum):
    """Plug-in model types; values are disjoint from RecBole's ``ModelType`` (1..6)."""

    RERANK = 8
