"""recbole_dnr: two-stage recommendation (retriever -> reranker) and DNR for RecBole."""

import importlib.util

# On Python 3.12+ pip cannot install RecBole with its dependencies (ray<=2.6.3 has no wheel there),
# so setup.cfg leaves it out and the README's extra step installs it: name that step, not a traceback.
if importlib.util.find_spec("recbole") is None:
    raise ImportError("recbole_dnr needs RecBole 1.2.1, which is not installed: "
                      "pip install --no-deps recbole==1.2.1")

from recbole_dnr import compat  # noqa: E402

compat.numpy_aliases()  # before any RecBole metric or dataset code runs
compat.scipy_dok_update()  # here too, not only in Config: a served checkpoint builds its model without one
compat.silence_recbole_warnings()
compat.interaction_argsort()
compat.per_config_parameters()  # a KG model's config would extend every later config's Dataset keys
compat.keep_anomaly_mode()  # before anything imports RecBole's sequential models
compat.race_free_ensure_dir()  # two runs starting together both create ./log/<Model>

from recbole_dnr import evaluator  # noqa: E402,F401  (registers the list metrics with RecBole)
from recbole_dnr import registry  # noqa: E402


def _builtin_models():
    from recbole_dnr import model  # noqa: F401  (its classes register themselves and the DNR_<X> resolvers)


registry.add_model_source(_builtin_models)  # loaded on the first look-up, so the registry imports no model

from recbole_dnr.version import VERSION as __version__  # noqa: E402,F401


def __getattr__(name):
    # ``from recbole_dnr import Recommender`` without importing the serving code for training runs
    if name in ("Recommender", "Lists"):
        from recbole_dnr import serve

        return getattr(serve, name)
    raise AttributeError(f"module 'recbole_dnr' has no attribute '{name}'")
