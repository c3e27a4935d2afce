"""Agreement of a half-precision (bf16/fp16) profile with fp32: the same selections, token by token.

The profiler computes scores, z-scores and the selection in fp32 whatever the weights' dtype
(:mod:`babel.profile.profiler`); what still differs in half precision is ``h`` itself, so a
token's selection can flip where two z-scores are within rounding of each other. Measured as:

- ``selection_overlap``: the share of (token, layer, expert) selections that both runs make,
  ``|A ∩ B| / max(|A|, |B|)`` (under the cross-layer and top-k rules every token selects the
  same number of experts in both runs, so this is the share of the fp32 selections kept);
- ``identical_tokens``: the share of tokens whose whole selection is identical;
- ``max_frequency_diff``: the largest difference of an expert's frequency (share of tokens that
  select it) between the runs, over all layers and experts.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor, nn

from babel.construct.partition import Partition
from babel.construct.routing import contiguous_experts
from babel.core.config import SelectionRule
from babel.models.hooks import trace_ffn
from babel.profile.profiler import _Tally, run_batches


@dataclasses.dataclass(frozen=True)
class SelectionAgreement:
    """How far two runs' per-token selections agree (see the module docstring)."""

    tokens: int
    selection_overlap: float
    identical_tokens: float
    max_frequency_diff: float


@torch.no_grad()
def token_selections(model: nn.Module, partition: Partition, rule: SelectionRule,
                     input_ids: Tensor, attention_mask: Tensor, *, batch_size: int = 8,
                     bos_id: int | None = None, exclude_bos: bool = True) -> Tensor:
    """``[n_tokens, L, E]`` bool: the experts each counted token selects, in token order.

    The same scoring and selection as :func:`babel.profile.profiler.profile_chunks` (whose
    per-chunk counts are these summed over each chunk's tokens); padding and (by default) BOS
    are left out.
    """
    out = []
    with contiguous_experts(model, partition) as cpart:
        tally = _Tally(model, cpart, rule)
        with trace_ffn(model, tally.on_h):
            for valid, _ in run_batches(model, tally, input_ids, attention_mask,
                                        batch_size=batch_size, bos_id=bos_id,
                                        exclude_bos=exclude_bos):
                out.append(tally.batch_selection(valid)[valid].cpu())
    n_layers, n_exp = partition.n_layers, partition.n_experts
    return torch.cat(out) if out else torch.zeros(0, n_layers, n_exp, dtype=torch.bool)


def selection_agreement(a: Tensor, b: Tensor) -> SelectionAgreement:
    """Agreement of two ``[n_tokens, L, E]`` bool selections of the same tokens.

    Raises:
        ValueError: The selections have different shapes (other tokens or partitions).
    """
    if a.shape != b.shape:
        raise ValueError(f"selections of {list(a.shape)} and {list(b.shape)}: profile the "
                         f"same tokens with the same partition")
    n = a.shape[0]
    both = int((a & b).sum())
    larger = max(int(a.sum()), int(b.sum()))
    freq_diff = (a.double().mean(0) - b.double().mean(0)).abs() if n else torch.zeros(1)
    return SelectionAgreement(
        tokens=n,
        selection_overlap=both / larger if larger else 1.0,
        identical_tokens=float((a == b).flatten(1).all(1).double().mean()) if n else 1.0,
        max_frequency_diff=float(freq_diff.max()),
    )


def precision_agreement(reference: nn.Module, other: nn.Module, partition: Partition,
                        rule: SelectionRule, input_ids: Tensor, attention_mask: Tensor,
                        **kw) -> SelectionAgreement:
    """Agreement of ``other`` (e.g. the bf16 model) with ``reference`` (the fp32 model).

    Both runs use the same partition, rule and tokens; ``kw`` goes to :func:`token_selections`
    (``batch_size``, ``bos_id``, ``exclude_bos``).
    """
    a = token_selections(reference, partition, rule, input_ids, attention_mask, **kw)
    b = token_selections(other, partition, rule, input_ids, attention_mask, **kw)
    return selection_agreement(a, b)
