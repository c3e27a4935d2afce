"""Parameter checks: each error names the parameter, the value and the fix; valid values pass
through with the documented conversion (papermill's guessed types included)."""
from __future__ import annotations

import math

import pytest

from babel.core.params import ParameterError, check_choice, check_number, check_str
from babel.data.languages import check_languages

NAN = float("nan")  # what papermill's -p makes of the code "nan" (Min Nan)


def test_check_choice():
    assert check_choice("metric", "pearson", ("centered", "pearson")) == "pearson"
    with pytest.raises(ParameterError) as err:
        check_choice("metric", "euclid", ("centered", "pearson"))
    msg = str(err.value)
    assert msg.startswith("metric ") and "['centered', 'pearson']" in msg and "'euclid'" in msg
    with pytest.raises(ParameterError, match=r"^allocation must be one of"):
        check_choice("allocation", NAN, ("global", "adaptive"))


def test_check_number_values_and_conversions():
    assert check_number("share", 0.5, low=0, high=1) == 0.5
    assert check_number("share", 1, low=0, high=1) == 1.0  # bounds are inclusive
    n = check_number("max_tokens", 1e3, kind=int, low=1)  # papermill's -p 1e3 is a float
    assert n == 1000 and type(n) is int
    assert type(check_number("share", 1, kind=float)) is float
    assert check_number("max_tokens", None, kind=int, allow_none=True) is None


@pytest.mark.parametrize("value,kind,fix", [
    (1.5, float, r"share must be in \[0, 1\], got 1.5"),
    (-0.1, float, r"share must be in \[0, 1\], got -0.1"),
    (True, float, r"share must be a number, got True"),  # a bool is not a number here
    ("0.5", float, r"share must be a number, got '0.5'"),
    (None, float, r"share must be a number, got None"),  # allow_none is off
    (NAN, float, r"share must be in \[0, 1\], got nan"),
    (NAN, int, r"share must be in \[0, 1\], got nan"),
    (0.5, int, r"share must be an integer, got 0.5"),
])
def test_check_number_errors_name_the_parameter_and_the_fix(value, kind, fix):
    with pytest.raises(ParameterError, match=f"^{fix}$"):
        check_number("share", value, kind=kind, low=0, high=1)


def test_check_number_open_bounds_are_named():
    with pytest.raises(ParameterError, match=r"^seq_len must be in \[2, None\], got 1$"):
        check_number("seq_len", 1, kind=int, low=2)


@pytest.mark.parametrize("value", ["", None, NAN, 3, ["gemma"]])
def test_check_str_errors(value):
    with pytest.raises(ParameterError) as err:
        check_str("model", value)
    assert str(err.value) == f"model must be a non-empty string, got {value!r}"


def test_check_str_passes_strings():
    assert check_str("model", "gemma-3-270m") == "gemma-3-270m"


def test_check_languages_values():
    assert check_languages("fr") == ["fr"]
    assert check_languages(("en", "sr-Latn")) == ["en", "sr-Latn"]
    everything = check_languages("all")
    assert "en" in everything and "zh-Hans" in everything and len(everything) > 10


def test_check_languages_papermill_nan_in_a_list_gets_the_not_a_string_hint():
    with pytest.raises(ParameterError) as err:
        check_languages(["en", NAN], name="pruning_languages")
    msg = str(err.value)
    assert msg.startswith("pruning_languages contains nan (float), not a string")
    assert "papermill" in msg and "-r pruning_languages nan" in msg


def test_check_languages_bare_papermill_nan_gets_the_not_a_string_hint():
    with pytest.raises(ParameterError, match="not a string"):
        check_languages(NAN)


@pytest.mark.parametrize("value", [[], 5, None])
def test_check_languages_wrong_container(value):
    with pytest.raises(ParameterError) as err:
        check_languages(value)
    assert str(err.value) == (f"languages must be a non-empty list of language codes or 'all', "
                              f"got {value!r}")


def test_check_languages_unknown_code_suggests_the_closest():
    with pytest.raises(ValueError, match=r"unknown language code 'fra'; did you mean 'fr'\?"):
        check_languages(["fra"])
    with pytest.raises(ValueError, match=r"did you mean 'zh-Hans'\?.*data/languages\.csv"):
        check_languages(["en", "zh"])
    assert math.isnan(NAN)  # the fixture value really is papermill's float
