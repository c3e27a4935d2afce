"""Diagnostics of an expert construction (notebook 01): balance, cohesion, exactness, scores.

- :func:`expert_sizes` / :func:`is_balanced`: every expert of every layer has N/E neurons.
- :func:`cohesion_table`: mean within-expert cosine similarity of the clustered weight rows per
  layer, for the chosen partition and a random equal-size partition with the same E and seed.
- :func:`exactness`: a mixture of experts that selects every expert must reproduce the dense
  logits (the mask multiplies by exactly 1), and reordering neurons into contiguous experts
  must leave the function unchanged up to summation order.
- :func:`scoring_chunks` and :func:`expert_score_tensor`: expert scores ``Σ|h|`` of
  ``score_tokens`` tokens **per language** (each language's profiling items packed by
  :func:`babel.data.chunking.chunk_texts` under that budget), so every language of the
  experiment is scored with the same weight.
- :func:`selection_per_layer`: mean raw score and selected experts per token of each layer
  under a selection rule (where in depth the cross-layer rule puts its selections).
- :func:`design_choices`: the table of choices the paper leaves open, with this run's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from babel.construct.partition import Partition, cohesion, get_partition
from babel.construct.routing import contiguous_partition, permuted_copy, routed_forward
from babel.construct.selection import expert_scores, select
from babel.core.config import PartitionConfig, SelectionRule
from babel.data.chunking import TokenChunks, chunk_texts
from babel.data.corpus import load_items
from babel.models.ffn import body
from babel.models.hooks import trace_ffn


def expert_sizes(partition: Partition) -> np.ndarray:
    """``[L, E]`` neurons per expert."""
    return np.stack([np.bincount(layer, minlength=partition.n_experts)
                     for layer in partition.labels])


def is_balanced(partition: Partition) -> bool:
    """Whether every expert of every layer has exactly ``N / E`` neurons."""
    return bool((expert_sizes(partition) == partition.expert_size).all())


def cohesion_table(model: nn.Module, partition: Partition, *,
                   model_name: str | None = None) -> pd.DataFrame:
    """Cohesion per layer of ``partition`` ("chosen") and of a random partition ("random").

    Both are measured on the rows ``partition`` clustered (its projection); the random
    partition has the same number of experts and seed (cached like any partition).

    Returns:
        Columns ``chosen`` and ``random``, index ``layer``.
    """
    cfg = partition.config
    rand = get_partition(model, PartitionConfig(n_experts=cfg.n_experts, method="random",
                                                seed=cfg.seed), model_name=model_name)
    df = pd.DataFrame({"chosen": cohesion(model, partition, projection=cfg.projection),
                       "random": cohesion(model, rand, projection=cfg.projection)})
    df.index.name = "layer"
    return df


@torch.no_grad()
def exactness(model: nn.Module, partition: Partition, input_ids: Tensor, *,
              kind: str = "cross_layer", max_new_tokens: int = 8) -> dict[str, Any]:
    """Compare the dense model with the all-experts mixture and the neuron-reordered model.

    Args:
        model: A causal LM.
        partition: Its expert partition.
        input_ids: ``[1, T]`` prompt ids.
        kind: Selection rule kind of the mixture (share 1: every expert selected).
        max_new_tokens: Greedy tokens compared between the dense and reordered models.

    Returns:
        ``moe_all_experts_max_abs_diff``, ``reordered_max_abs_diff``,
        ``reordered_moe_max_abs_diff`` (max |Δ logits| against the dense model) and
        ``same_greedy_continuation``; plus ``"continuation_ids"`` (the dense greedy ids,
        a list) for display.
    """
    rule = SelectionRule(kind, share=1.0)
    dense = model(input_ids=input_ids).logits
    full = routed_forward(model, partition, rule, input_ids).logits
    reordered = permuted_copy(model, partition)
    dense_reordered = reordered(input_ids=input_ids).logits
    full_reordered = routed_forward(reordered, contiguous_partition(partition), rule,
                                    input_ids).logits
    gen = model.generate(input_ids, max_new_tokens=max_new_tokens, do_sample=False)
    gen_reordered = reordered.generate(input_ids, max_new_tokens=max_new_tokens,
                                       do_sample=False)
    return {
        "moe_all_experts_max_abs_diff": float((dense - full).abs().max()),
        "reordered_max_abs_diff": float((dense - dense_reordered).abs().max()),
        "reordered_moe_max_abs_diff": float((dense - full_reordered).abs().max()),
        "same_greedy_continuation": bool(torch.equal(gen, gen_reordered)),
        "continuation_ids": gen[0].tolist(),
    }


def scoring_chunks(tokenizer: Any, langs: Sequence[str], *, score_tokens: int,
                   seq_len: int = 64, source: str = "builtin",
                   split: str = "profiling") -> dict[str, TokenChunks]:
    """Token chunks of each language: ``score_tokens`` content tokens **per language**.

    Each language's ``split`` items are packed on their own by
    :func:`babel.data.chunking.chunk_texts` with the budget ``max_tokens=score_tokens``
    (fewer when the split is shorter), so every language is scored with the same weight.
    """
    return {lang: chunk_texts([it.text for it in load_items(lang, source=source, split=split)],
                              tokenizer, seq_len=seq_len, max_tokens=score_tokens)
            for lang in langs}


@torch.no_grad()
def expert_score_tensor(model: nn.Module, partition: Partition,
                        chunks: TokenChunks) -> Tensor:
    """Expert scores ``Σ|h|`` of every real token (padding dropped): ``[T, L, E]``."""
    order = partition.order_tensor()
    scores: dict[int, list[Tensor]] = {}

    def grab(i: int, h: Tensor) -> None:
        scores.setdefault(i, []).append(
            expert_scores(h, order[i], partition.n_experts).reshape(-1, partition.n_experts))

    with trace_ffn(model, grab):
        body(model)(input_ids=chunks.input_ids, attention_mask=chunks.attention_mask)
    valid = chunks.attention_mask.reshape(-1).bool()
    return torch.stack([torch.cat(scores[i])[valid] for i in sorted(scores)], dim=1)


def selection_per_layer(scores: Tensor, rule: SelectionRule) -> pd.DataFrame:
    """Mean raw score and selected experts per token of each layer.

    Args:
        scores: ``[T, L, E]`` expert scores.
        rule: The selection rule.

    Returns:
        Index ``layer``; columns ``mean raw score`` and ``selected experts / token``.
    """
    sel = select(scores, rule)
    df = pd.DataFrame({"mean raw score": scores.mean((0, 2)).numpy(),
                       "selected experts / token": sel.float().sum(-1).mean(0).numpy()})
    df.index.name = "layer"
    return df


def design_choices(partition: PartitionConfig, rule: SelectionRule) -> pd.DataFrame:
    """The choices the paper leaves open: this run's value and the alternatives."""
    rows = [
        ("which weight rows are clustered", partition.projection,
         "gate, up, gate+up; in for plain FFNs"),
        ("balanced clustering", partition.method,
         "kmeans (exact N/E per expert), random, coactivation"),
        ("experts per layer E", str(partition.n_experts), "any divisor of N"),
        ("expert score", "Σ|h| over the expert's neurons (h = input of down)", "—"),
        ("z-normalization", "per token, over the E experts of each layer", "—"),
        ('"highly activated"', rule.kind, "cross_layer, per_layer_topk, z_threshold"),
        ("r", f"{rule.share:g}", "ablated in notebook 03"),
    ]
    return pd.DataFrame(rows, columns=["question", "this run", "alternatives"]).set_index(
        "question")
