"""Do activation patterns follow language families or scripts? Similarities, clusters, tests.

Input everywhere is a stack of per-language frequency matrices ``freq[n_lang, L, E]``
(:func:`babel.profiling.frequency_tensor`), or any ``[n_lang, ...]`` array (raw neurons:
``Profile.neuron_frequency``). Design choices the paper leaves open, taken here:

- **Similarity** of two languages = similarity of their flattened frequency vectors (all L·E
  experts, or one layer's E for per-layer curves). Four metrics:

  - ``"centered"`` (default): cosine after subtracting each expert's mean frequency over the
    languages analysed, so only how a language *deviates* from the average language counts.
    Without it the experts every language selects (the shared, always-on structure) dominate
    and every pair scores close to 1. It depends on the language set: adding languages moves
    the mean.
  - ``"cosine"``: cosine of the raw frequencies (shown for contrast).
  - ``"pearson"``: correlation of the two vectors (each centred over its own experts): removes
    a language's overall level, keeps the shared profile.
  - ``"jaccard"``: overlap of the two languages' top-k experts, ``k = top_share`` of the
    experts compared (all L·E, or E per layer).

- **Clusters**: average linkage (UPGMA, scipy) on ``1 - similarity``, cut at the number of
  groups of the labelling it is compared with; agreement = adjusted Rand index and NMI
  (sklearn). The ARI's p-value shuffles the labels (vectorised contingency tables).
- **Separation** of a labelling: mean similarity of same-label pairs minus mean similarity of
  different-label pairs (unordered pairs). Its permutation test shuffles labels over
  languages; with ``strata`` labels are shuffled only within strata and only within-stratum
  pairs count (family effect among same-script pairs, or script effect among same-family
  pairs). One-sided p = (1 + #{null >= observed}) / (1 + P).
- **Bootstrap**: each language's token chunks are resampled with replacement (multinomial
  chunk weights), frequency = Σ counts / Σ tokens, similarities recomputed; percentile
  intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from babel.families.similarity import language_labels
from babel.families.stats import cluster_tree


def _palette(values: Sequence[str], cmap: str) -> dict[str, tuple]:
    import matplotlib.pyplot as plt

    uniq = sorted(set(values))
    colours = plt.get_cmap(cmap, max(len(uniq), 2))
    return {v: colours(i) for i, v in enumerate(uniq)}


def clustermap(sim: np.ndarray, langs: Sequence[str], *, title: str = "",
               fields: Sequence[str] = ("family", "script"), tree: np.ndarray | None = None,
               centre: float | None = 0.0):
    """seaborn clustermap of a similarity matrix with family and script colour bars.

    Returns:
        The seaborn ``ClusterGrid`` (``.figure`` to save).
    """
    import matplotlib.patches as mpatches
    import seaborn as sns

    tree = cluster_tree(sim) if tree is None else tree
    df = pd.DataFrame(sim, index=list(langs), columns=list(langs))
    colour_bars, handles = {}, []
    for f, cmap in zip(fields, ("tab20", "Set3", "tab10")):
        lab = language_labels(langs, f)
        pal = _palette(lab, cmap)
        colour_bars[f] = pd.Series([pal[v] for v in lab], index=df.index)
        handles += [mpatches.Patch(color=c, label=f"{f}: {v}") for v, c in pal.items()]
    n = len(langs)
    g = sns.clustermap(df, row_linkage=tree, col_linkage=tree,
                       row_colors=pd.DataFrame(colour_bars), cmap="vlag", center=centre,
                       figsize=(max(6, 0.42 * n + 4), max(5, 0.42 * n + 2)),
                       dendrogram_ratio=(0.12, 0.12), cbar_pos=(0.02, 0.85, 0.03, 0.12))
    g.ax_heatmap.set_xlabel("")
    g.ax_heatmap.set_ylabel("")
    g.figure.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5),
                    fontsize=7, frameon=False)
    if title:
        g.figure.suptitle(title, y=1.02)
    return g
