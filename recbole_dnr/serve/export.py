"""The reranker's inference forward for model servers: ONNX (onnxruntime, Triton's onnxruntime
backend) or TorchScript (TorchServe).

The exported graph takes the batch a :class:`~recbole_dnr.serve.Recommender` builds, as named
tensors, those of :data:`INPUTS` the model reads (the exporter drops the others; docs/serving.md
lists them per model): ``user_id [B]``, ``item_id [B, n]`` (retriever order), ``score [B, n]`` (x),
``history_item [B, H]``, ``history_label [B, H]``, ``history_len [B]`` (int64 but x), and returns
the reranker's scores ``[B, n]``. Retrieval (the FAISS or exact top-k) stays outside: a server runs
it first.
"""

import contextlib
import os
import warnings

import torch

from recbole_dnr.errors import UserInputError, missing_extra
from recbole_dnr.fields import HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN, LABEL, REQUEST_ID, SCORE, SLATE_MASK

INPUTS = ["user_id", "item_id", SCORE, HISTORY_ITEM, HISTORY_LABEL, HISTORY_LEN]


class InferenceForward(torch.nn.Module):
    """``model.predict`` as a function of plain tensors (what exporters trace)."""

    def __init__(self, model, uid_field, iid_field):
        super().__init__()
        self.model, self.uid_field, self.iid_field = model, uid_field, iid_field

    def forward(self, user_id, item_id, score, history_item, history_label, history_len):
        batch = {self.uid_field: user_id, self.iid_field: item_id, SCORE: score, HISTORY_ITEM: history_item,
                 HISTORY_LABEL: history_label, HISTORY_LEN: history_len,
                 LABEL: torch.zeros_like(score), SLATE_MASK: torch.zeros_like(score, dtype=torch.bool),
                 REQUEST_ID: torch.zeros_like(user_id)}
        return self.model.predict(_Batch(batch))


class _Batch(dict):
    """The dict a model reads a batch from (``Interaction``'s item access, without its checks)."""

    @property
    def interaction(self):
        return self


def check_exportable(model):
    """Raise :class:`UserInputError` if ``model`` (or the backbone it wraps) cannot be traced."""
    for part in (model, getattr(model, "backbone", None)):
        reason = getattr(part, "export_blocker", None)
        if reason:
            raise UserInputError(f"{type(part).__name__} cannot be exported (ONNX, TorchScript): {reason}; "
                                 f"serve it with torch through Recommender (recbole-dnr recommend, the HTTP service)")


def example_inputs(recommender, batch=4):
    """A real batch of ``batch`` users (their recommend() lists) as the exported inputs."""
    return recommender.batch_tensors(recommender.user_ids[:batch])


def export_onnx(recommender, path, opset=17):
    """Write the reranker's forward as ONNX to ``path`` (dynamic batch; n and H fixed by the run)."""
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise missing_extra("ONNX export needs onnx and onnxruntime", "onnx onnxruntime", "serve") from None
    check_exportable(recommender.model)
    module = InferenceForward(recommender.model, recommender.uid, recommender.iid).eval()
    inputs = example_inputs(recommender)
    args = tuple(inputs[k] for k in INPUTS)
    tmp = path + ".tmp"
    with torch.no_grad(), _no_fused_attention(), warnings.catch_warnings():
        # the TorchScript-based exporter, on purpose: torch's dynamo exporter (2.13, onnxscript 0.7) writes
        # a Caser graph onnxruntime refuses (a Squeeze of a batch-sized axis); this one exports every
        # reranker family equal to eager within 1e-5 (tests/serve/test_serve.py)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*", category=DeprecationWarning)
        torch.onnx.export(module, args, tmp, input_names=INPUTS, output_names=["scores"], opset_version=opset,
                          dynamic_axes={**{k: {0: "batch"} for k in INPUTS}, "scores": {0: "batch"}}, dynamo=False)
    os.replace(tmp, path)
    return path


@contextlib.contextmanager
def _no_fused_attention():
    # nn.TransformerEncoderLayer's eval fast path is one fused op ONNX has no counterpart for;
    # the unfused path computes the same function (the export test compares within 1e-5)
    was = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(was)


def export_torchscript(recommender, path):
    """Write the reranker's forward as a traced TorchScript module to ``path``."""
    check_exportable(recommender.model)
    module = InferenceForward(recommender.model, recommender.uid, recommender.iid).eval()
    inputs = example_inputs(recommender)
    with torch.no_grad():
        traced = torch.jit.trace(module, tuple(inputs[k] for k in INPUTS), check_trace=False)
    tmp = path + ".tmp"
    traced.save(tmp)
    os.replace(tmp, path)
    return path


class OnnxReranker:
    """An exported reranker run by onnxruntime: ``scores(inputs) -> [B, n]`` numpy."""

    def __init__(self, path, threads=None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def scores(self, inputs):
        return self.session.run(["scores"], {k: inputs[k].numpy() for k in self.names})[0]
