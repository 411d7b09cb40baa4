"""Unpadded execution: a padded batch's real tokens packed into rows, and back.

A batch padded to its longest sequence spends the padded positions' share of every linear layer,
GELU, LayerNorm and dropout on [PAD] tokens whose results nobody reads.  Packed, the same work
runs on the real tokens only:

    input_ids (B, T), attention_mask (B, T)  ->  packed rows (N, ...),  N = attention_mask.sum()

Every per-token step (embeddings, linears, activations, LayerNorm, dropout, residuals) works on
(N, C) exactly as on (B, T, C): it never looks at a neighbouring token.  Attention does look at
the neighbours, so it runs per group of sequences that have the same length L: S such sequences
are S * L consecutive rows, read as an (S, L, C) batch with nothing padded
(`layers.attention.packed_self_attention_forward`).  To make each group one block of rows, the
sequences are packed shortest first.

Position ids stay those of the padded layout (token t of a sequence is at position t), so every
real token gets the same numbers either way; padded positions come back as zeros.

Only right padding is packed (each row of the mask is ones, then zeros: what a tokenizer's
`padding=True` gives).  A batch with nothing padded, or with another mask, takes the padded path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Packing:
    """Where each real token of a (B, T) batch sits among the packed rows."""
    batch_shape: tuple[int, int]           # (B, T)
    index: np.ndarray                      # (N,) flat index b * T + t of each packed row
    position_ids: np.ndarray               # (N,) t, each packed token's position in its sequence
    groups: tuple[tuple[int, int, int], ...]   # (first row, S, L): S sequences of L tokens, S * L rows

    @property
    def num_tokens(self) -> int:
        return self.index.size

    def pack(self, x):
        """(B, T, ...) -> (N, ...): the real tokens' rows."""
        B, T = self.batch_shape
        return np.take(x.reshape(B * T, *x.shape[2:]), self.index, axis=0)

    def unpack(self, x):
        """(N, ...) -> (B, T, ...), zeros at the padded positions."""
        B, T = self.batch_shape
        out = np.zeros((B * T, *x.shape[1:]), dtype=x.dtype)
        out[self.index] = x
        return out.reshape(B, T, *x.shape[1:])


def pack_batch(attention_mask) -> Packing | None:
    """The packing of a right-padded (B, T) mask, or None when the padded path is the one to take
    (nothing padded, an empty sequence, or padding that is not at the end of each row)."""
    B, T = attention_mask.shape
    lengths = attention_mask.sum(1)                                          # (B,)
    if lengths.min() == T or lengths.min() == 0:
        return None
    if not np.array_equal(attention_mask != 0, np.arange(T)[None, :] < lengths[:, None]):
        return None                                                          # not right padding
    order = np.argsort(lengths, kind="stable")                               # shortest first
    sorted_lengths = lengths[order]
    position_ids = np.concatenate([np.arange(n) for n in sorted_lengths])
    index = np.repeat(order * T, sorted_lengths) + position_ids
    groups, row = [], 0
    values, counts = np.unique(sorted_lengths, return_counts=True)           # ascending, as packed
    for L, S in zip(values.tolist(), counts.tolist()):
        groups.append((row, S, L))
        row += S * L
    return Packing((B, T), index, position_ids, tuple(groups))
