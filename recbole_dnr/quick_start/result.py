"""``RunResult``: what one training run gives back, in one shape for every caller
(``run_recbole_dnr``, a benchmark cell, a search trial)."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

# The run's figures as dict keys (``result["test_result"]``): RecBole's result dict, which
# ``HyperTuning`` reads, plus ours. A key whose value is None is absent, as it was from the dict.
_ALIASES = {"best_valid_result": "valid", "test_result": "test"}
_KEYS = ("best_valid_score", "valid_score_bigger", "best_valid_result", "test_result", "model", "epochs",
         "best_epoch", "valid_curve", "train_loss_curve", "seconds", "model_file", "list_stats",
         "predictions_file", "resume_file")
_OPTIONAL = {"model_file", "list_stats", "predictions_file", "resume_file"}


@dataclass(eq=False)
class RunResult(Mapping):
    """One run: its metrics at the selected epoch and how it got there.

    Also reads as RecBole's result dict (``result["best_valid_result"]``, ``result["test_result"]``,
    ``result.get("model_file")``, ``dict(result)``); ``per_request`` is not among its keys."""

    model: str
    valid: dict  # metrics at the selected (best valid) epoch
    test: dict  # metrics of that checkpoint on test (evaluated once)
    best_valid_score: float  # valid_metric at the selected epoch
    valid_score_bigger: bool
    valid_curve: list = field(default_factory=list)  # valid_metric after each evaluation, a resumed run's earlier too
    train_loss_curve: list = field(default_factory=list)  # training loss per epoch (a tuple loss: its terms summed)
    epochs: Optional[int] = None  # epochs trained
    best_epoch: Optional[int] = None  # the selected epoch (1-based)
    seconds: float = 0.0  # build, training and test; a resumed run's earlier training included
    model_file: Optional[str] = None  # the tested checkpoint: what recbole_dnr.serve.Recommender loads
    list_stats: Optional[dict] = None  # the candidate lists' statistics (the list pipeline)
    predictions_file: Optional[str] = None  # save_predictions: True
    resume_file: Optional[str] = None  # the finished resume state, kept with keep_state=True
    # on request: {"request_id": [R], <metric>: [R] per test request, nan where undefined}
    per_request: Optional[dict] = field(default=None, repr=False)

    def __getitem__(self, key):
        if key not in _KEYS:
            raise KeyError(key)
        value = getattr(self, _ALIASES.get(key, key))
        if value is None and key in _OPTIONAL:
            raise KeyError(key)
        return value

    def __iter__(self):
        return (k for k in _KEYS if not (k in _OPTIONAL and getattr(self, k) is None))

    def __len__(self):
        return sum(1 for _ in self)
