"""Linguistic distances between languages (URIEL data shipped with lang2vec) and Mantel tests.

**Where the distances come from.** lang2vec's PyPI release (1.1.2, the only one on PyPI) has
no ``distance()`` function (URIEL's precomputed distances arrived later and are not on PyPI),
and its module imports ``pkg_resources``, which setuptools >= 81 no longer ships, so
``import lang2vec.lang2vec`` fails in this environment. Its *data* ships inside the wheel
(``lang2vec/data/*.npz``): it is read here directly (located through the installed
distribution); nothing is downloaded. The distances follow URIEL's descriptions (Littell et
al. 2017), computed here from the shipped vectors, so they are close to but not guaranteed
identical with lang2vec's later ``distance()``:

- ``genetic``: ``1 - |shared Glottolog family nodes| / max(|nodes of a|, |nodes of b|)`` from
  the ``fam`` membership vectors (1 for different top-level families, 0 for the same leaf);
- ``geographic``: great-circle distance / half the circumference. URIEL's ``geo`` vector of a
  language holds its great-circle distance (in units of 180°) to 299 fixed points; the
  language's position is recovered from it by least squares;
- ``syntactic``, ``phonological``, ``inventory``: cosine distance between the kNN-imputed
  URIEL vectors (``syntax_knn``, ``phonology_knn``, ``inventory_knn``).

Identity distances complete them: ``script`` (0 same ISO 15924 script, 1 different) and
``family`` (0 same top-level family, 1 different), from ``data/languages.csv``, and the
genealogy at branch resolution, ``genealogical (branch)`` (:func:`branch_distance`: 0 same
branch, 0.5 same family in another branch, 1 different family).

**Mantel tests** correlate the upper triangles of two distance matrices (Spearman by
default) and permute rows and columns of the first together; the partial Mantel test
(Smouse et al. 1986; vegan's ``mantel.partial``) correlates x and y controlling for z and
permutes x. p-values are one-sided (association at least as positive), all vectorised.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.metadata
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from babel.data.languages import get_language
from babel.families.similarity import language_labels

URIEL_KINDS: tuple[str, ...] = ("genetic", "geographic", "syntactic", "phonological",
                                "inventory")


_KNN = {"syntactic": "S_", "phonological": "P_", "inventory": "INV_"}


@functools.lru_cache(maxsize=4)
def uriel_data(name: str) -> dict[str, np.ndarray]:
    """One of lang2vec's shipped data files (``family_features``, ``geocoord_features``, ...).

    Located through the installed distribution's metadata, not by importing ``lang2vec``
    (its module fails to import, and the wheel also installs a ``lang2vec.py`` script that
    shadows the package when ``bin/`` is first on ``sys.path``).
    """
    try:
        dist = importlib.metadata.distribution("lang2vec")
    except importlib.metadata.PackageNotFoundError as err:
        raise ModuleNotFoundError("lang2vec is not installed: pip install lang2vec "
                                  "(its data ships in the wheel)") from err
    path = Path(dist.locate_file(f"lang2vec/data/{name}.npz"))
    if not path.is_file():
        raise FileNotFoundError(f"lang2vec's data file {path} is missing: reinstall lang2vec "
                                f"(pip install --force-reinstall lang2vec)")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def uriel_languages() -> set[str]:
    """ISO 639-3 codes with a URIEL family vector."""
    db = uriel_data("family_features")
    return {str(c) for c, row in zip(db["langs"], db["data"][:, :, 0]) if (row == 1).any()}


def _rows(db: dict, codes: Sequence[str], prefix: str = "") -> np.ndarray:
    index = {str(c): i for i, c in enumerate(db["langs"])}
    missing = [c for c in codes if c not in index]
    if missing:
        raise KeyError(f"URIEL has no {missing}: drop them (linguistic_distances does) or fix "
                       f"uriel_code in data/languages.csv")
    cols = [i for i, f in enumerate(db["feats"]) if str(f).startswith(prefix)]
    return db["data"][[index[c] for c in codes]][:, cols, 0].astype(np.float64)


def _cosine_distance(x: np.ndarray) -> np.ndarray:
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    d = 1.0 - x @ x.T
    np.fill_diagonal(d, 0.0)
    return np.maximum(d, 0.0)


def genetic_distance(codes: Sequence[str]) -> np.ndarray:
    """``1 - shared family nodes / max(path lengths)`` from URIEL's ``fam`` vectors."""
    fam = _rows(uriel_data("family_features"), codes) == 1
    shared = fam.astype(float) @ fam.T.astype(float)
    size = fam.sum(1)
    d = 1.0 - shared / np.maximum(np.maximum(size[:, None], size[None, :]), 1)
    np.fill_diagonal(d, 0.0)
    return d


def _angle(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle angle in degrees (inputs in degrees, broadcast)."""
    a, b = np.radians(lat1), np.radians(lat2)
    c = np.cos(a) * np.cos(b) * np.cos(np.radians(lon1 - lon2)) + np.sin(a) * np.sin(b)
    return np.degrees(np.arccos(np.clip(c, -1.0, 1.0)))


def uriel_positions(codes: Sequence[str]) -> pd.DataFrame:
    """Latitude and longitude of each language, recovered from URIEL's ``geo`` vector.

    Returns:
        ``code, lat, lon, rmse`` (rmse of the fitted distances in units of 180°).
    """
    from scipy.optimize import least_squares

    db = uriel_data("geocoord_features")
    geo = _rows(db, codes)
    pts = np.array([[float(v) for v in str(f)[3:].split("_")] for f in db["feats"]])
    lat = np.arange(-89.0, 90.0, 2.0)
    lon = np.arange(-179.0, 180.0, 2.0)
    glat, glon = (g.ravel() for g in np.meshgrid(lat, lon, indexing="ij"))
    grid = _angle(glat[:, None], glon[:, None], pts[None, :, 0], pts[None, :, 1]) / 180.0
    rows = []
    for code, v in zip(codes, geo):
        start = int(np.argmin(((grid - v[None]) ** 2).sum(1)))
        fit = least_squares(lambda p, v=v: _angle(p[0], p[1], pts[:, 0], pts[:, 1]) / 180 - v,
                            x0=[glat[start], glon[start]])
        rows.append({"code": code, "lat": fit.x[0], "lon": fit.x[1],
                     "rmse": float(np.sqrt(np.mean(fit.fun ** 2)))})
    return pd.DataFrame(rows)


def geographic_distance(codes: Sequence[str]) -> np.ndarray:
    """Great-circle distance / half circumference between recovered positions."""
    pos = uriel_positions(codes)
    la, lo = pos.lat.to_numpy(), pos.lon.to_numpy()
    d = _angle(la[:, None], lo[:, None], la[None, :], lo[None, :]) / 180.0
    np.fill_diagonal(d, 0.0)
    return d


def uriel_distance(kind: str, codes: Sequence[str]) -> np.ndarray:
    """``[n, n]`` URIEL distance of one kind between ISO 639-3 codes (module docstring)."""
    if kind == "genetic":
        return genetic_distance(codes)
    if kind == "geographic":
        return geographic_distance(codes)
    if kind in _KNN:
        return _cosine_distance(_rows(uriel_data("feature_predictions"), codes, _KNN[kind]))
    raise ValueError(f"kind must be one of {URIEL_KINDS}, got {kind!r}")


def label_distance(langs: Sequence[str], field: str) -> np.ndarray:
    """0 where two languages share ``field`` (script, family, branch) in languages.csv, else 1."""

    lab = np.asarray(language_labels(langs, field))
    return (lab[:, None] != lab[None, :]).astype(np.float64)


#: Name of the branch-resolution genealogical distance among the predictors.
BRANCH = "genealogical (branch)"

#: Partial Mantel tests of :func:`mantel_table`: ``(predictor, controlling for)``.
PARTIALS: tuple[tuple[str, str], ...] = (("genetic", "script"), ("script", "genetic"),
                                         (BRANCH, "script"), ("script", BRANCH))


def branch_distance(codes: Sequence[str]) -> np.ndarray:
    """Genealogical distance at branch resolution, from ``data/languages.csv``.

    Values: ``0`` for the same branch (genus; e.g. French and Spanish, both Romance),
    ``0.5`` for the same top-level family but another branch (French and German,
    Indo-European), ``1`` for different families (French and Arabic). The diagonal is 0.

    Args:
        codes: Language codes of ``data/languages.csv`` (``fr``, ``sr-Cyrl``, ...).

    Returns:
        ``[n, n]`` symmetric distance matrix.
    """
    langs = [get_language(c) for c in codes]
    fam = np.array([lg.family for lg in langs], dtype=object)
    br = np.array([f"{lg.family}/{lg.branch}" for lg in langs], dtype=object)
    same_family = fam[:, None] == fam[None, :]
    same_branch = br[:, None] == br[None, :]
    return np.where(same_branch, 0.0, np.where(same_family, 0.5, 1.0))


@dataclasses.dataclass(frozen=True)
class LinguisticDistances:
    """Distances among the languages URIEL knows.

    Attributes:
        langs: Languages kept (in the input order).
        dropped: Languages without a URIEL code or vector.
        matrices: ``{kind: [n, n]}`` for URIEL kinds plus ``script``, ``family`` and
            ``genealogical (branch)`` (:data:`BRANCH`).
    """

    langs: tuple[str, ...]
    dropped: tuple[str, ...]
    matrices: dict[str, np.ndarray]


def linguistic_distances(langs: Sequence[str], *,
                         kinds: Sequence[str] = URIEL_KINDS) -> LinguisticDistances:
    """URIEL, script, family and branch distances; languages URIEL lacks are dropped (listed)."""

    known = uriel_languages()
    keep, codes, dropped = [], [], []
    for lang in langs:
        code = get_language(lang).uriel_code
        if code and code in known:
            keep.append(lang)
            codes.append(code)
        else:
            dropped.append(lang)
    mats = {k: uriel_distance(k, codes) for k in kinds} if len(keep) >= 2 else {}
    if len(keep) >= 2:
        mats |= {f: label_distance(keep, f) for f in ("script", "family")}
        mats[BRANCH] = branch_distance(keep)
    return LinguisticDistances(tuple(keep), tuple(dropped), mats)


@dataclasses.dataclass(frozen=True)
class MantelResult:
    """A (partial) Mantel correlation and its permutation p-value."""

    r: float
    p_value: float
    n_permutations: int
    n_languages: int
    method: str


def _upper(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError(f"need a square distance matrix, got shape {d.shape}")
    return d[np.triu_indices(d.shape[0], 1)]


def _ranked(d: np.ndarray, method: str) -> np.ndarray:
    """The matrix with its upper triangle replaced by ranks (Spearman) or left (Pearson)."""
    from scipy.stats import rankdata

    if method == "pearson":
        return np.asarray(d, dtype=np.float64)
    if method != "spearman":
        raise ValueError(f"method must be 'spearman' or 'pearson', got {method!r}")
    n = d.shape[0]
    i, j = np.triu_indices(n, 1)
    out = np.zeros((n, n))
    out[i, j] = out[j, i] = rankdata(np.asarray(d)[i, j])
    return out


def _std(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(-1, keepdims=True)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.where(norm > 0, x / np.where(norm > 0, norm, 1), np.nan)


def _permuted_upper(d: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """``[P, m]`` upper triangles of ``d`` with rows and columns permuted together."""
    n = d.shape[0]
    i, j = np.triu_indices(n, 1)
    perm = np.random.default_rng(seed).permuted(np.tile(np.arange(n), (n_permutations, 1)),
                                                axis=1)
    return d[perm[:, i], perm[:, j]]


def _check(x: np.ndarray, *others: np.ndarray) -> int:
    shape = np.asarray(x).shape
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"need a square distance matrix, got shape {shape}")
    n = shape[0]
    if n < 3:
        raise ValueError(f"a Mantel test needs >= 3 languages, got {n}")
    for o in others:
        if np.asarray(o).shape != np.asarray(x).shape:
            raise ValueError(f"distance matrices differ in shape: {np.asarray(x).shape} vs "
                             f"{np.asarray(o).shape}; compute them on the same languages")
    return n


def mantel(x: np.ndarray, y: np.ndarray, *, method: Literal["spearman", "pearson"] = "spearman",
           n_permutations: int = 1000, seed: int = 0) -> MantelResult:
    """Correlation of two distance matrices; rows/columns of ``x`` permuted together."""
    n = _check(x, y)
    xr, yr = _ranked(x, method), _ranked(y, method)
    ys = _std(_upper(yr))
    r = float(_std(_upper(xr)) @ ys)
    null = _std(_permuted_upper(xr, n_permutations, seed)) @ ys
    p = (1 + (null >= r - 1e-12).sum()) / (1 + n_permutations) if np.isfinite(r) else np.nan
    return MantelResult(r, float(p), n_permutations, n, method)


def _partial(rxy: np.ndarray, rxz: np.ndarray, ryz: float) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rxy - rxz * ryz) / np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))


def partial_mantel(x: np.ndarray, y: np.ndarray, z: np.ndarray, *,
                   method: Literal["spearman", "pearson"] = "spearman",
                   n_permutations: int = 1000, seed: int = 0) -> MantelResult:
    """Correlation of ``x`` and ``y`` controlling for ``z`` (``x`` permuted)."""
    n = _check(x, y, z)
    xr = _ranked(x, method)
    ys, zs = _std(_upper(_ranked(y, method))), _std(_upper(_ranked(z, method)))
    xs = _std(_upper(xr))
    ryz = float(ys @ zs)
    r = float(_partial(xs @ ys, xs @ zs, ryz))
    px = _std(_permuted_upper(xr, n_permutations, seed))
    null = _partial(px @ ys, px @ zs, ryz)
    p = (1 + (null >= r - 1e-12).sum()) / (1 + n_permutations) if np.isfinite(r) else np.nan
    return MantelResult(r, float(p), n_permutations, n, method)


def mantel_table(activation: np.ndarray, predictors: Mapping[str, np.ndarray], *,
                 partials: Sequence[tuple[str, str]] = PARTIALS,
                 method: Literal["spearman", "pearson"] = "spearman",
                 n_permutations: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Mantel test of ``activation`` distance against each predictor, then the partial ones.

    Args:
        activation: ``[n, n]`` activation distance (``1 - similarity``).
        predictors: ``{name: [n, n] distance}`` on the same languages.
        partials: ``(predictor, control)`` pairs for partial Mantel tests.
        method: Correlation of upper triangles.
        n_permutations: Permutations.
        seed: RNG seed.

    Returns:
        One row per test: ``predictor, controlling_for, r, p, n_languages`` (sorted: simple
        tests by r, then partial tests).
    """
    rows = []
    for name, d in predictors.items():
        m = mantel(activation, d, method=method, n_permutations=n_permutations, seed=seed)
        rows.append({"predictor": name, "controlling_for": "", "r": m.r, "p": m.p_value,
                     "n_languages": m.n_languages})
    simple = pd.DataFrame(rows).sort_values("r", ascending=False, na_position="last")
    rows = []
    for name, ctrl in partials:
        if name in predictors and ctrl in predictors:
            m = partial_mantel(activation, predictors[name], predictors[ctrl], method=method,
                               n_permutations=n_permutations, seed=seed)
            rows.append({"predictor": name, "controlling_for": ctrl, "r": m.r, "p": m.p_value,
                         "n_languages": m.n_languages})
    return pd.concat([simple, pd.DataFrame(rows)], ignore_index=True)


def select_languages_matrix(d: np.ndarray, langs: Sequence[str],
                            keep: Sequence[str]) -> np.ndarray:
    """The sub-matrix of ``d`` (rows/cols in ``langs`` order) for the languages ``keep``."""
    idx = [list(langs).index(lang) for lang in keep]
    return np.asarray(d)[np.ix_(idx, idx)]
