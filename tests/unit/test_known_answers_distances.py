"""Known answers for the linguistic distances and Mantel tests (babel.families.distances).

URIEL is replaced by a hand-made miniature (``monkeypatch`` on ``uriel_data``): family
membership sets whose ``1 - shared / max(size)`` is worked out by hand, feature vectors with
hand-computed cosines, and languages planted at known coordinates whose geo vectors are exact
great-circle distances (computed here from unit vectors with ``arctan2``, not the module's
spherical law of cosines). Script, family and branch distances come from ``data/languages.csv``
(read by eye). Mantel statistics are checked against scipy's correlations and a one
permutation at a time loop; degenerate inputs (constant matrices, too few languages, shapes
that differ) against their documented NaN or error.
"""
from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import pearsonr, spearmanr

from babel.families import distances as dist
from babel.families.distances import (
    BRANCH,
    branch_distance,
    genetic_distance,
    geographic_distance,
    label_distance,
    linguistic_distances,
    mantel,
    mantel_table,
    partial_mantel,
    uriel_distance,
    uriel_languages,
    uriel_positions,
)

# ------------------------------------------------------------------ a miniature URIEL

#: Glottolog-like family nodes of each fake language (``fam`` features set to 1).
_FAMILIES = {
    "eng": {"IE", "Germanic", "West Germanic"},
    "deu": {"IE", "Germanic", "West Germanic"},  # same leaf as eng
    "fra": {"IE", "Romance"},
    "rus": {"IE", "Slavic"},
    "fin": {"Uralic"},
    "ekk": {"Uralic"},  # a single node, shared with fin
    "xxx": set(),  # in the table, but no family vector: not a URIEL language
}
_FAM_FEATS = ["IE", "Germanic", "West Germanic", "Romance", "Slavic", "Uralic", "Turkic"]

#: Planted positions (latitude, longitude) in degrees.
_POSITIONS = {
    "fin": (62.0, 26.0), "eng": (52.5, -1.5), "deu": (51.0, 10.0), "fra": (47.0, 2.0),
    "rus": (56.0, 38.0), "ekk": (-33.9, 151.2), "aaa": (0.0, 0.0), "aab": (0.0, 90.0),
    "aac": (-41.3, -72.8),
}
_FIXED = [(lat, lon) for lat in (-75, -45, -15, 15, 45, 75)
          for lon in (-160, -115, -70, -25, 20, 65, 110, 155)]

#: kNN feature vectors: syntax (S_), phonology (P_), inventory (INV_) and one other group.
_FEATURES = {  # S_a S_b S_c | P_a P_b | INV_a INV_b INV_c | X_a
    "fra": [0.0, 0.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0],
    "eng": [0.3, 0.4, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0],
    "deu": [0.4, 0.3, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 2.0],
    "fin": [0.0, 0.0, 0.0, 1.0, 0.0, 2.0, 2.0, 2.0, 3.0],
    "rus": [0.6, 0.8, 0.0, 2.0, 0.0, 0.0, 1.0, 0.0, 4.0],
}
_FEAT_NAMES = ["S_a", "S_b", "S_c", "P_a", "P_b", "INV_a", "INV_b", "INV_c", "X_a"]


def _unit(lat, lon):
    la, lo = np.radians(lat), np.radians(lon)
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)


def _great_circle(p, q) -> float:
    """Angle between two positions in units of 180 degrees (atan2 of |u x v| and u . v)."""
    u, v = _unit(*p), _unit(*q)
    return float(np.arctan2(np.linalg.norm(np.cross(u, v)), u @ v) / np.pi)


def _db(langs, feats, rows) -> dict:
    """A data file as uriel_data returns it; a second channel holds noise never to be read."""
    data = np.asarray(rows, dtype=np.float64)[:, :, None]
    noise = np.random.default_rng(0).integers(0, 2, data.shape).astype(np.float64)
    return {"langs": np.array(langs), "feats": np.array(feats),
            "data": np.concatenate([data, noise], axis=2)}


def _fake_uriel() -> dict[str, dict]:
    fam_langs = list(_FAMILIES)
    fam = _db(fam_langs, [f"F_{f}" for f in _FAM_FEATS],
              [[float(f in _FAMILIES[lang]) for f in _FAM_FEATS] for lang in fam_langs])
    geo_langs = list(_POSITIONS)
    fixed = _unit(*np.array(_FIXED, dtype=np.float64).T)
    geo = _db(geo_langs, [f"GC_{lat}_{lon}" for lat, lon in _FIXED],
              [np.arctan2(np.linalg.norm(np.cross(_unit(*_POSITIONS[lang]), fixed), axis=1),
                          fixed @ _unit(*_POSITIONS[lang])) / np.pi for lang in geo_langs])
    knn_langs = list(_FEATURES)
    knn = _db(knn_langs, _FEAT_NAMES, [_FEATURES[lang] for lang in knn_langs])
    return {"family_features": fam, "geocoord_features": geo, "feature_predictions": knn}


@pytest.fixture
def fake_uriel(monkeypatch):
    files = _fake_uriel()
    monkeypatch.setattr(dist, "uriel_data", lambda name: files[name])
    return files


def test_uriel_languages_are_those_with_a_family_vector(fake_uriel):
    """Every fake language but ``xxx`` (an all-zero family vector) has a family."""
    assert uriel_languages() == {"eng", "deu", "fra", "rus", "fin", "ekk"}


def test_genetic_distance_by_hand(fake_uriel):
    """``1 - shared / max(size)``: eng/deu share all 3 nodes (0), eng/fra share IE of 3
    (2/3), fra/rus IE of 2 (1/2), fin/ekk their only node (0), other families 1; the
    language without a family vector shares nothing (1) and is 0 from itself."""
    codes = ["eng", "deu", "fra", "rus", "fin", "ekk", "xxx"]
    expected = np.array([
        [0, 0, 2 / 3, 2 / 3, 1, 1, 1],
        [0, 0, 2 / 3, 2 / 3, 1, 1, 1],
        [2 / 3, 2 / 3, 0, 1 / 2, 1, 1, 1],
        [2 / 3, 2 / 3, 1 / 2, 0, 1, 1, 1],
        [1, 1, 1, 1, 0, 0, 1],
        [1, 1, 1, 1, 0, 0, 1],
        [1, 1, 1, 1, 1, 1, 0],
    ])
    np.testing.assert_allclose(genetic_distance(codes), expected, atol=1e-12)
    np.testing.assert_allclose(uriel_distance("genetic", codes[:4]), expected[:4, :4],
                               atol=1e-12)
    # two languages without any family node: nothing shared, nothing to divide by (no 0/0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_allclose(genetic_distance(["xxx", "xxx"]), [[0, 1], [1, 0]])


def test_feature_distances_are_cosine_distances_of_their_own_group(fake_uriel):
    """Cosine distance of each prefix's features only: syntax eng (0.3, 0.4) vs deu (0.4, 0.3)
    has cosine 0.24 / 0.25 = 0.96; rus (0.6, 0.8) is parallel to eng (0); fra is orthogonal
    to the three (1); fin has no syntax at all, which counts as orthogonal (1)."""
    codes = ["eng", "deu", "fra", "fin", "rus"]
    s = uriel_distance("syntactic", codes)
    expected = np.array([
        [0, 0.04, 1, 1, 0],
        [0.04, 0, 1, 1, 0.04],
        [1, 1, 0, 1, 1],
        [1, 1, 1, 0, 1],
        [0, 0.04, 1, 1, 0],
    ])
    np.testing.assert_allclose(s, expected, atol=1e-12)
    r = 1 - 1 / math.sqrt(2)  # (1, 0) or (0, 1) against (1, 1)
    phon = np.array([  # eng (1, 0), deu (0, 1), fra (1, 1), fin (1, 0), rus (2, 0)
        [0, 1, r, 0, 0],
        [1, 0, r, 1, 1],
        [r, r, 0, r, r],
        [0, 1, r, 0, 0],
        [0, 1, r, 0, 0],
    ])
    np.testing.assert_allclose(uriel_distance("phonological", codes), phon, atol=1e-12)
    q = 1 - 1 / math.sqrt(3)  # (1, 0, 0) or (0, 1, 0) against (1, 1, 1)
    inv = np.array([  # eng (1, 0, 0), deu (0, 1, 0), fra (1, 1, 1), fin (2, 2, 2), rus = deu
        [0, 1, q, q, 1],
        [1, 0, q, q, 0],
        [q, q, 0, 0, q],
        [q, q, 0, 0, q],
        [1, 0, q, q, 0],
    ])
    d = uriel_distance("inventory", codes)
    np.testing.assert_allclose(d, inv, atol=1e-12)
    assert d[2, 3] == 0.0 and (d >= 0).all()  # 1 - cos(fra, fin) rounds to -2e-16: clipped


def test_positions_are_recovered_from_exact_geo_vectors(fake_uriel):
    """Geo vectors hold exact distances to the fixed points: the fit finds the planted
    coordinates (north, south, east and west of Greenwich) with a residual of ~0."""
    codes = ["fin", "ekk", "aac", "eng", "aab"]
    pos = uriel_positions(codes)
    assert list(pos.columns) == ["code", "lat", "lon", "rmse"]
    assert list(pos.code) == codes
    planted = np.array([_POSITIONS[c] for c in codes])
    np.testing.assert_allclose(pos.lat, planted[:, 0], atol=1e-6)
    np.testing.assert_allclose(pos.lon, planted[:, 1], atol=1e-6)
    assert (pos.rmse < 1e-7).all()


def test_position_rmse_is_that_of_the_fitted_distances(fake_uriel, monkeypatch):
    """With a known error added to the geo vector, ``rmse`` is the root mean square
    difference between the vector and the great-circle distances from the fitted point."""
    files = dict(fake_uriel)
    geo = dict(files["geocoord_features"])
    data = geo["data"].copy()
    data[:, :, 0] += 0.01 * np.sin(np.arange(data.shape[1]))[None]  # a bias no point fits
    geo["data"] = data
    files["geocoord_features"] = geo
    monkeypatch.setattr(dist, "uriel_data", lambda name: files[name])
    pos = uriel_positions(["deu", "ekk"]).set_index("code")
    fixed = _FIXED
    for code in ("deu", "ekk"):
        row = pos.loc[code]
        fitted = np.array([_great_circle((row.lat, row.lon), q) for q in fixed])
        vec = data[list(geo["langs"]).index(code), :, 0]
        assert row.rmse == pytest.approx(np.sqrt(np.mean((fitted - vec) ** 2)), rel=1e-6)
        assert 0.005 < row.rmse < 0.01  # the sine bias is not absorbed by moving the point
        assert abs(row.lat - _POSITIONS[code][0]) < 2 and abs(row.lon - _POSITIONS[code][1]) < 2


def test_fit_starts_from_the_nearest_node_of_the_two_degree_grid(monkeypatch):
    """The start grid has nodes at odd degrees (latitudes -89..89, longitudes -179..179, every
    2). Positions planted at (10.6, 20.7), (-40.7, -100.4) and (70.3, 178.8) are well inside
    their cells, so each fit starts from its nearest node: (11, 21), (-41, -101), (71, 179)."""
    import scipy.optimize

    planted = {"p1": (10.6, 20.7), "p2": (-40.7, -100.4), "p3": (70.3, 178.8)}
    geo = _db(list(planted), [f"GC_{lat}_{lon}" for lat, lon in _FIXED],
              [[_great_circle(planted[c], q) for q in _FIXED] for c in planted])
    monkeypatch.setattr(dist, "uriel_data", lambda name: {"geocoord_features": geo}[name])
    real, starts = scipy.optimize.least_squares, []

    def spy(fun, x0, **kw):
        starts.append([float(v) for v in x0])
        return real(fun, x0, **kw)

    monkeypatch.setattr(scipy.optimize, "least_squares", spy)
    pos = uriel_positions(list(planted))
    assert starts == [[11.0, 21.0], [-41.0, -101.0], [71.0, 179.0]]
    np.testing.assert_allclose(pos[["lat", "lon"]].to_numpy(), list(planted.values()),
                               atol=1e-6)


def test_geographic_distance_is_the_great_circle_over_half_the_circumference(fake_uriel):
    """(0, 0) to (0, 90) is a quarter circle: 0.5; the others by unit vectors."""
    codes = ["aaa", "aab", "eng", "ekk", "aac"]
    d = geographic_distance(codes)
    expected = np.array([[_great_circle(_POSITIONS[a], _POSITIONS[b]) for b in codes]
                         for a in codes])
    np.testing.assert_allclose(d, expected, atol=1e-7)
    assert d[0, 1] == pytest.approx(0.5, abs=1e-7)
    np.testing.assert_array_equal(np.diag(d), 0.0)
    np.testing.assert_allclose(uriel_distance("geographic", codes[:2]), d[:2, :2], atol=1e-12)


def test_great_circle_angle_of_antipodes_and_of_a_point_with_itself():
    """For (12, 10) the cosine of the angle rounds to -1 - 2e-16 against its antipode
    (-12, -170) and to 1 + 2e-16 against itself: clipped, the angles are exactly 180 and 0
    degrees (not NaN). A quarter circle along the equator or a meridian is 90 degrees."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert dist._angle(12.0, 10.0, -12.0, -170.0) == 180.0
        assert dist._angle(12.0, 10.0, 12.0, 10.0) == 0.0
        np.testing.assert_allclose(dist._angle(np.array([0.0, 0.0]), 0.0,
                                               np.array([0.0, 90.0]), np.array([90.0, 0.0])),
                                   [90.0, 90.0], atol=1e-12)


def test_unknown_kind_and_unknown_code_are_refused(fake_uriel):
    with pytest.raises(ValueError, match="kind must be one of"):
        uriel_distance("lexical", ["eng", "deu"])
    with pytest.raises(KeyError, match=r"URIEL has no \['zzz'\]"):
        uriel_distance("syntactic", ["eng", "zzz"])
    with pytest.raises(KeyError, match=r"URIEL has no \['zzz'\]"):
        uriel_distance("genetic", ["zzz", "eng"])


def test_label_and_branch_distances_from_the_language_table():
    """languages.csv: en, de, fi Latin script, ru Cyrillic; fi Uralic, the others
    Indo-European; en/de Germanic, ru Slavic."""
    langs = ["en", "de", "ru", "fi"]
    np.testing.assert_array_equal(label_distance(langs, "script"),
                                  [[0, 0, 1, 0], [0, 0, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]])
    np.testing.assert_array_equal(label_distance(langs, "family"),
                                  [[0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 1, 0]])
    assert label_distance(langs, "script").dtype == np.float64
    np.testing.assert_array_equal(branch_distance(langs),
                                  [[0, 0, .5, 1], [0, 0, .5, 1], [.5, .5, 0, 1], [1, 1, 1, 0]])


def test_linguistic_distances_keep_known_languages_in_order(fake_uriel, monkeypatch):
    """ar (arb) is not in the miniature URIEL and a language without a URIEL code is
    dropped; the others keep their order, with every URIEL kind plus script, family and
    branch computed on them."""
    real = dist.get_language

    def get_language(code):
        lang = real(code)
        return dataclasses.replace(lang, uriel_code=None) if code == "tr" else lang

    monkeypatch.setattr(dist, "get_language", get_language)
    res = linguistic_distances(["fr", "ar", "en", "tr", "fi", "de"])
    assert res.langs == ("fr", "en", "fi", "de") and res.dropped == ("ar", "tr")
    assert set(res.matrices) == {*dist.URIEL_KINDS, "script", "family", BRANCH}
    codes = ["fra", "eng", "fin", "deu"]
    for kind in dist.URIEL_KINDS:
        np.testing.assert_allclose(res.matrices[kind], uriel_distance(kind, codes), atol=1e-7,
                                   err_msg=kind)
    np.testing.assert_allclose(res.matrices["genetic"],
                               [[0, 2 / 3, 1, 2 / 3], [2 / 3, 0, 1, 0], [1, 1, 0, 1],
                                [2 / 3, 0, 1, 0]], atol=1e-12)
    np.testing.assert_array_equal(res.matrices["script"], np.zeros((4, 4)))
    np.testing.assert_array_equal(res.matrices["family"],
                                  [[0, 0, 1, 0], [0, 0, 1, 0], [1, 1, 0, 1], [0, 0, 1, 0]])
    np.testing.assert_array_equal(res.matrices[BRANCH],
                                  [[0, .5, 1, .5], [.5, 0, 1, 0], [1, 1, 0, 1], [.5, 0, 1, 0]])


def test_linguistic_distances_need_two_known_languages(fake_uriel):
    """Two known languages give 2 x 2 matrices; one gives none."""
    two = linguistic_distances(["ar", "en", "ru"], kinds=("genetic",))
    assert two.langs == ("en", "ru") and two.dropped == ("ar",)
    assert set(two.matrices) == {"genetic", "script", "family", BRANCH}
    np.testing.assert_allclose(two.matrices["genetic"], [[0, 2 / 3], [2 / 3, 0]], atol=1e-12)
    np.testing.assert_array_equal(two.matrices["script"], [[0, 1], [1, 0]])
    one = linguistic_distances(["ar", "en"], kinds=("genetic",))
    assert one.langs == ("en",) and one.dropped == ("ar",) and one.matrices == {}


# ------------------------------------------------------------------ Mantel tests

def _points(n: int, seed: int) -> np.ndarray:
    pts = np.random.default_rng(seed).normal(size=(n, 2))
    return np.linalg.norm(pts[:, None] - pts[None], axis=-1)


def _upper(d):
    return np.asarray(d)[np.triu_indices(len(d), 1)]


def _loop_p(x, y, r, corr, n_permutations, seed):
    """One permutation at a time, the same permutations as the implementation's generator."""
    n = len(x)
    perms = np.random.default_rng(seed).permuted(np.tile(np.arange(n), (n_permutations, 1)),
                                                 axis=1)
    hits = sum(corr(_upper(x[np.ix_(p, p)]), _upper(y)) >= r - 1e-12 for p in perms)
    return (1 + hits) / (1 + n_permutations)


def _spearman(a, b):
    return spearmanr(a, b)[0]


def _pearson(a, b):
    return pearsonr(a, b)[0]


def _weak_pair():
    """Two weakly related 8 x 8 distances: many permutations beat r, so p moves with them."""
    x = _points(8, 3)
    noise = np.random.default_rng(5).uniform(0, 2, (8, 8))
    y = 0.3 * x + noise + noise.T
    np.fill_diagonal(y, 0.0)
    return x, y


def test_mantel_defaults_are_spearman_1000_permutations_seed_0():
    """Without options: Spearman's r of the upper triangles and the p of 1000 permutations
    drawn with seed 0 (the loop), reported in the result."""
    x, y = _weak_pair()
    m = mantel(x, y)
    assert (m.method, m.n_permutations, m.n_languages) == ("spearman", 1000, 8)
    assert m.r == pytest.approx(_spearman(_upper(x), _upper(y)), abs=1e-12)
    assert m.r != pytest.approx(_pearson(_upper(x), _upper(y)), abs=1e-3)
    assert 0.05 < m.p_value < 0.95
    assert m.p_value == pytest.approx(_loop_p(x, y, m.r, _spearman, 1000, 0), abs=1e-12)
    assert isinstance(m.p_value, float)
    p = mantel(x, y, method="pearson", n_permutations=40, seed=2)
    assert (p.method, p.n_permutations) == ("pearson", 40)
    assert p.p_value == pytest.approx(_loop_p(x, y, p.r, _pearson, 40, 2), abs=1e-12)


def test_pearson_permutations_of_an_asymmetric_matrix_are_correlated_one_by_one():
    """Pearson leaves x as given. Here x is symmetric plus 4 above the diagonal: its own r is
    that of the symmetric part (a constant shift of the triangle), but permuting rows and
    columns brings a different mix of shifted and unshifted values into each permuted
    triangle, so every permutation has its own mean. Each is still Pearson's r of its own
    triangle: p equals the loop's (scipy's pearsonr, one permutation at a time), for the
    Mantel and the partial test."""
    sym, y = _weak_pair()
    x = sym + 4 * np.triu(np.ones((8, 8)), 1)
    z = _points(8, 9)
    m = mantel(x, y, method="pearson", n_permutations=100, seed=6)
    assert m.r == pytest.approx(_pearson(_upper(sym), _upper(y)), abs=1e-12)
    assert m.p_value == pytest.approx(_loop_p(x, y, m.r, _pearson, 100, 6), abs=1e-12)

    def part(a, b):
        rab, raz, rbz = _pearson(a, b), _pearson(a, _upper(z)), _pearson(b, _upper(z))
        return (rab - raz * rbz) / math.sqrt((1 - raz ** 2) * (1 - rbz ** 2))

    pm = partial_mantel(x, y, z, method="pearson", n_permutations=100, seed=6)
    assert pm.r == pytest.approx(part(_upper(x), _upper(y)), abs=1e-12)
    assert pm.p_value == pytest.approx(_loop_p(x, y, pm.r, part, 100, 6), abs=1e-12)


def test_mantel_r_ignores_the_scale_of_the_distances():
    """Correlations are scale free: distances in thousandths give the same r and p (the
    centred triangles then have norms far below 1)."""
    x, y = _weak_pair()
    for method in ("pearson", "spearman"):
        big = mantel(x, y, method=method, n_permutations=50, seed=1)
        small = mantel(x * 1e-3, y * 1e-4, method=method, n_permutations=50, seed=1)
        assert small.r == pytest.approx(big.r, abs=1e-12)
        assert small.p_value == big.p_value
        assert big.r == pytest.approx((_pearson if method == "pearson" else _spearman)(
            _upper(x), _upper(y)), abs=1e-12)


def test_mantel_with_ties_uses_average_ranks():
    """Branch-like distances (0, 0.5, 1) are full of ties: Spearman's r is scipy's."""
    x = branch_distance(["fr", "es", "it", "de", "en", "ru", "ar", "fi"])
    y = _points(8, 7)
    m = mantel(x, y, n_permutations=30, seed=3)
    assert m.r == pytest.approx(_spearman(_upper(x), _upper(y)), abs=1e-12)
    assert m.p_value == pytest.approx(_loop_p(x, y, m.r, _spearman, 30, 3), abs=1e-12)


def test_three_languages_and_ties_with_the_observed_r():
    """Three languages suffice. With y = x, the identity permutation (about one draw in six)
    reproduces r = 1 up to rounding and counts as reaching it; no other permutation does."""
    x = np.array([[0.0, 1.0, 2.0], [1.0, 0.0, 4.0], [2.0, 4.0, 0.0]])
    perms = np.random.default_rng(0).permuted(np.tile(np.arange(3), (60, 1)), axis=1)
    identity = int((perms == np.arange(3)).all(1).sum())
    assert 3 < identity < 20
    for method in ("pearson", "spearman"):
        m = mantel(x, x, method=method, n_permutations=60, seed=0)
        assert m.r == pytest.approx(1.0) and m.n_languages == 3
        assert m.p_value == pytest.approx((1 + identity) / 61, abs=1e-12)
    # single-precision matrices are computed in double: the permuted copies of x still
    # reproduce r to rounding (in float32 they would miss it by ~1e-8 and not count)
    for y in (x, np.array([[0.0, 0.1, 0.7], [0.1, 0.0, 1.3], [0.7, 1.3, 0.0]])):
        y32 = y.astype(np.float32)
        m = mantel(y32, y32, method="pearson", n_permutations=60, seed=0)
        assert m.p_value == pytest.approx((1 + identity) / 61, abs=1e-12)


def test_constant_distances_give_nan_without_warnings():
    """A matrix with one distance everywhere has no variance: r and p are NaN (no
    correlation to test), quietly, for Mantel and partial Mantel alike."""
    x, y = _weak_pair()
    flat = np.ones((8, 8)) - np.eye(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("pearson", "spearman"):
            for a, b in ((flat, y), (x, flat)):
                m = mantel(a, b, method=method, n_permutations=20)
                assert math.isnan(m.r) and math.isnan(m.p_value)
            for a, b, c in ((x, y, flat), (flat, x, y), (x, flat, y)):
                m = partial_mantel(a, b, c, method=method, n_permutations=20)
                assert math.isnan(m.r) and math.isnan(m.p_value)


def test_bad_matrices_are_refused():
    x, _ = _weak_pair()
    with pytest.raises(ValueError, match="needs >= 3 languages, got 2"):
        mantel(x[:2, :2], x[:2, :2])
    with pytest.raises(ValueError, match=r"need a square distance matrix, got shape \(2, 3\)"):
        mantel(x[:2, :3], x[:2, :3])  # not a distance matrix, before the language count
    with pytest.raises(ValueError, match="differ in shape"):
        mantel(x, x[:5, :5])
    with pytest.raises(ValueError, match="differ in shape"):
        partial_mantel(x, x, x[:5, :5])
    with pytest.raises(ValueError, match="differ in shape"):
        partial_mantel(x, x[:5, :5], x)
    with pytest.raises(ValueError, match="needs >= 3 languages, got 2"):
        partial_mantel(x[:2, :2], x[:2, :2], x[:2, :2])
    with pytest.raises(ValueError, match="need a square distance matrix, got shape"):
        mantel(x[:4, :6], x[:4, :6], method="pearson")
    with pytest.raises(ValueError, match="method must be 'spearman' or 'pearson'"):
        mantel(x, x, method="kendall")
    with pytest.raises(ValueError, match="method must be 'spearman' or 'pearson'"):
        partial_mantel(x, x, x, method="kendall")


def test_refusals_name_the_shapes_in_full():
    """Matrices of different shapes are refused with both shapes, the first argument's first:
    8 x 8 against 5 x 5, and for the partial test a 5 x 5 x against 8 x 8 y and z."""
    x, _ = _weak_pair()
    tail = "; compute them on the same languages"
    with pytest.raises(ValueError) as err:
        mantel(x, x[:5, :5])
    assert str(err.value) == "distance matrices differ in shape: (8, 8) vs (5, 5)" + tail
    with pytest.raises(ValueError) as err:
        partial_mantel(x[:5, :5], x, x)  # x against y, even where y and z agree
    assert str(err.value) == "distance matrices differ in shape: (5, 5) vs (8, 8)" + tail
    with pytest.raises(ValueError) as err:
        mantel(x[:2, :2], x[:2, :2])
    assert str(err.value) == "a Mantel test needs >= 3 languages, got 2"


def test_partial_mantel_defaults_and_formula():
    """Without options: Spearman, 1000 permutations, seed 0; r is the partial correlation
    formula on scipy's correlations, p the loop over the same permutations."""
    rng = np.random.default_rng(11)
    z = _points(7, 1)
    x = z + _points(7, 2) + rng.uniform(0, 0.1, (7, 7))
    x = (x + x.T) / 2
    np.fill_diagonal(x, 0.0)
    y = z + _points(7, 4)
    m = partial_mantel(x, y, z)
    assert (m.method, m.n_permutations, m.n_languages) == ("spearman", 1000, 7)

    def part(a, b):
        rab, raz, rbz = _spearman(a, b), _spearman(a, _upper(z)), _spearman(b, _upper(z))
        return (rab - raz * rbz) / math.sqrt((1 - raz ** 2) * (1 - rbz ** 2))

    assert m.r == pytest.approx(part(_upper(x), _upper(y)), abs=1e-10)
    assert 0.05 < m.p_value < 0.95
    assert m.p_value == pytest.approx(_loop_p(x, y, m.r, part, 1000, 0), abs=1e-12)
    assert isinstance(m.r, float) and isinstance(m.p_value, float)


def test_partial_mantel_on_collinear_predictors_raises_no_warning():
    """y an affine function of z (r_yz = 1) leaves nothing to correlate; whatever rounding
    makes of 0 / 0, 1 / 0 or the square root of -0, it is computed quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for seed in range(40):
            x, z = _points(5, 100 + seed), _points(5, 200 + seed)
            y = 3 * z + 1
            np.fill_diagonal(y, 0.0)
            partial_mantel(x, y, z, method="pearson", n_permutations=5)
            partial_mantel(x, z, z, method="pearson", n_permutations=5)
            partial_mantel(z, x, z, method="pearson", n_permutations=5)


def test_mantel_table_rows_order_and_values():
    """Simple tests sorted by r (1, then partial, then -1, NaN last), then the partial tests
    whose predictor and control both exist; each row equals the test run on its own."""
    act = _points(8, 3)
    _, mid = _weak_pair()
    preds = {"flat": np.ones((8, 8)) - np.eye(8), "rev": act.max() - act, "mid": mid,
             "square": act ** 2}
    for d in preds.values():
        np.fill_diagonal(d, 0.0)
    partials = [("mid", "square"), ("absent", "mid"), ("mid", "absent"), ("square", "mid")]
    t = mantel_table(act, preds, partials=partials, method="pearson", n_permutations=30,
                     seed=4)
    assert list(t.columns) == ["predictor", "controlling_for", "r", "p", "n_languages"]
    assert list(t.index) == list(range(6))
    assert list(t.predictor) == ["square", "mid", "rev", "flat", "mid", "square"]
    assert list(t.controlling_for) == ["", "", "", "", "square", "mid"]
    assert (t.n_languages == 8).all()
    for _, row in t.iterrows():
        if row.controlling_for:
            ref = partial_mantel(act, preds[row.predictor], preds[row.controlling_for],
                                 method="pearson", n_permutations=30, seed=4)
        else:
            ref = mantel(act, preds[row.predictor], method="pearson", n_permutations=30,
                         seed=4)
        if math.isnan(ref.r):
            assert math.isnan(row.r) and math.isnan(row.p)
        else:
            assert (row.r, row.p) == (pytest.approx(ref.r, abs=1e-12), ref.p_value)
    r_mid = t.r.iloc[1]
    assert r_mid == pytest.approx(_pearson(_upper(act), _upper(mid)), abs=1e-12)
    assert t.r.iloc[0] < 1 - 1e-3  # Pearson: act and act ** 2 are not linearly related
    assert t.r.iloc[2] == pytest.approx(-1.0)
    assert t.p.iloc[0] == pytest.approx(_loop_p(act, preds["square"], t.r.iloc[0], _pearson,
                                                30, 4), abs=1e-12)


def test_mantel_table_defaults():
    """Defaults: Spearman, 1000 permutations, seed 0, the four partial tests of PARTIALS."""
    act, y = _weak_pair()
    preds = {"genetic": y, "script": _points(8, 9), BRANCH: _points(8, 10)}
    t = mantel_table(act, preds)
    simple = t[t.controlling_for == ""].set_index("predictor")
    ref = mantel(act, y, method="spearman", n_permutations=1000, seed=0)
    assert simple.at["genetic", "r"] == pytest.approx(ref.r, abs=1e-12)
    assert simple.at["genetic", "p"] == ref.p_value
    part = t[t.controlling_for != ""]
    assert list(zip(part.predictor, part.controlling_for)) == list(dist.PARTIALS)
    pref = partial_mantel(act, y, preds["script"], method="spearman", n_permutations=1000,
                          seed=0)
    row = part.iloc[0]
    assert (row.r, row.p) == (pytest.approx(pref.r, abs=1e-12), pref.p_value)
    assert isinstance(t, pd.DataFrame)


@pytest.mark.parametrize("method", ["spearman", "pearson"])
def test_non_square_matrices_are_refused(method):
    """Two 4 x 6 matrices of one shape are not distance matrices: refused for both methods
    (Spearman used to rank the leading 4 x 4 block silently)."""
    a = np.arange(24.0).reshape(4, 6)
    with pytest.raises(ValueError, match=r"need a square distance matrix, got shape \(4, 6\)"):
        dist.mantel(a, a + 1, method=method, n_permutations=9)
    with pytest.raises(ValueError, match="need a square distance matrix"):
        dist.partial_mantel(a, a + 1, a + 2, method=method, n_permutations=9)
    with pytest.raises(ValueError, match="need a square distance matrix"):
        dist.mantel(np.zeros(5), np.zeros(5), method=method, n_permutations=9)
