"""Layers shared by the backbones, with CPU training speed in mind (docs/performance.md).

Profiling a PRM training step on 2 CPU cores showed 39% of the time in ``aten::bernoulli_``:
torch's CPU dropout draws one Mersenne-Twister number per element and converts it to double.
:func:`dropout` draws 16-bit uniforms four to a 64-bit draw of the same (seeded) generator and
applies the mask in one fused kernel each way; keep probability 1 - round(65536 p) / 65536.
On other devices it is ``F.dropout``.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_dnr.errors import UserInputError

_LEVELS = 1 << 16


class _MaskedScale(torch.autograd.Function):
    """y = x * m for a fixed float mask m; the backward is the same product (one kernel each way)."""

    @staticmethod
    def forward(ctx, x, mask):
        ctx.save_for_backward(mask)
        return x * mask

    @staticmethod
    def backward(ctx, grad):
        (mask,) = ctx.saved_tensors
        return grad * mask, None


def keep_mask(shape, p, device="cpu"):
    """Bool mask of ``shape``, each entry True with probability 1 - round(65536 p) / 65536."""
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(1 << 63), None)
    threshold = round(p * _LEVELS) - _LEVELS // 2  # int16 lanes are uniform on [-32768, 32767]
    return (bits.view(torch.int16)[:n] >= threshold).view(shape)


def dropout(x, p, training=True):
    """Inverted dropout, as ``F.dropout(x, p, training)``."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    # uint8 -> float converts in vectorised code; bool -> float and where(mask, s, 0) do not (4x slower)
    scale = keep_mask(x.shape, p, x.device).view(torch.uint8).to(x.dtype).mul_(1.0 / (1.0 - p))
    return _MaskedScale.apply(x, scale)


class Dropout(nn.Dropout):
    """``nn.Dropout`` through :func:`dropout` (same parameters, same state dict)."""

    def forward(self, x):
        return dropout(x, self.p, self.training)


def make_dropout(p, fast=True):
    """:class:`Dropout` (``fast_path: True``) or torch's ``nn.Dropout`` (the reference)."""
    return Dropout(p) if fast else nn.Dropout(p)


def make_transformer_layer(d_model, n_heads, inner_size, dropout_prob, attn_dropout_prob, fast=True):
    """A post-norm, batch-first encoder layer: :class:`TransformerLayer`, or with ``fast=False``
    torch's ``nn.TransformerEncoderLayer`` (attention dropout = ``dropout_prob`` there)."""
    if fast:
        return TransformerLayer(d_model, n_heads, inner_size, dropout_prob, attn_dropout_prob)
    if attn_dropout_prob != dropout_prob:
        raise UserInputError(f"fast_path: False uses torch's encoder layer, whose attention dropout is dropout_prob "
                             f"({dropout_prob}); attn_dropout_prob={attn_dropout_prob} needs fast_path: True")
    return nn.TransformerEncoderLayer(d_model, n_heads, inner_size, dropout_prob, batch_first=True)


class TransformerLayer(nn.TransformerEncoderLayer):
    """``nn.TransformerEncoderLayer`` (post-norm, batch first) with a leaner training path.

    Same parameters and state dict; evaluation keeps torch's fused inference kernel. Training
    computes attention explicitly (q k^T / sqrt(d_h), softmax, dropout on the weights, then v),
    which is what torch's math path does minus its fully-masked-row handling (no mask here),
    and uses :func:`dropout`. With ``attn_dropout_prob: 0`` attention goes through
    ``F.scaled_dot_product_attention`` (a fused kernel on CPU).
    """

    def __init__(self, d_model, n_heads, inner_size, dropout_prob, attn_dropout_prob):
        super().__init__(d_model, n_heads, inner_size, dropout_prob, batch_first=True)
        self.attn_dropout_prob = attn_dropout_prob

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal=False):
        if attn_mask is not None or key_padding_mask is not None:
            return super()._sa_block(x, attn_mask, key_padding_mask, is_causal)
        attn = self.self_attn
        B, n, D = x.shape
        h = attn.num_heads
        qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).view(B, n, 3, h, D // h).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, h, n, D/h]
        p = self.attn_dropout_prob if self.training else 0.0
        if p > 0:
            weights = torch.softmax((q * (1.0 / math.sqrt(D // h))) @ k.transpose(-1, -2), dim=-1)
            out = dropout(weights, p) @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v)
        out = F.linear(out.transpose(1, 2).reshape(B, n, D), attn.out_proj.weight, attn.out_proj.bias)
        return dropout(out, self.dropout1.p, self.training)

    def _ff_block(self, x):
        x = self.linear2(dropout(self.activation(self.linear1(x)), self.dropout.p, self.training))
        return dropout(x, self.dropout2.p, self.training)
