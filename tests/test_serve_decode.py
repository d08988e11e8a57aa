"""The serving fast path builds exactly the array `schema.to_model_input` defines, or says why not."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandas._libs.parsers import STR_NA_VALUES

from container.errors import InputError
from container.schema import Feature, Schema, csv_dtypes, to_model_input
from container.serving.decode import NA_VALUES, InputDecoder
from container.serving.encode import CSV, JSON, encode_csv, encode_json, negotiate
from container.serving.errors import HttpError

NUMERIC = Schema(
    "numbers",
    "y",
    (Feature("a", "numeric"), Feature("b", "numeric"), Feature("c", "numeric")),
    (0, 1),
    1,
)
MIXED = Schema(
    "mixed",
    "y",
    (Feature("colour", "categorical"), Feature("size", "numeric"), Feature("code", "categorical")),
    ("no", "yes"),
    "yes",
)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def reference_rows(rows: list[list[Any]], schema: Schema) -> np.ndarray:
    """What training-side code makes of the same values (JSON null included, as None)."""
    frame = pd.DataFrame(rows, columns=schema.feature_names, dtype=object)
    return to_model_input(frame, schema)


def reference_csv(text: str, schema: Schema, header: bool) -> np.ndarray:
    frame = pd.read_csv(
        io.StringIO(text),
        skipinitialspace=True,
        dtype=csv_dtypes(schema),
        header=0 if header else None,
        names=None if header else schema.feature_names,
    )
    return to_model_input(frame, schema)


def assert_same(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.dtype == reference.dtype
    assert ours.shape == reference.shape
    if ours.dtype == np.float64:
        np.testing.assert_array_equal(ours, reference)
        return
    for mine, theirs in zip(ours.ravel().tolist(), reference.ravel().tolist(), strict=True):
        if isinstance(theirs, float) and math.isnan(theirs):
            assert isinstance(mine, float) and math.isnan(mine)
        else:
            assert type(mine) is type(theirs) and mine == theirs


# Bounded so that "%.3e" cannot round up to inf, which we refuse on purpose (see decode.py).
finite = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False)
json_number = st.one_of(
    finite, st.integers(-(10**15), 10**15), st.none(), finite.map(repr), st.integers().map(str)
)
category_text = st.text(alphabet="abxyz019 -_.", min_size=1, max_size=6)
json_category = st.one_of(category_text, st.integers(-50, 50), finite, st.booleans(), st.none())


@SETTINGS
@given(st.lists(st.lists(json_number, min_size=3, max_size=3), min_size=1, max_size=8))
def test_numeric_json_rows_match_to_model_input(rows: list[list[Any]]) -> None:
    assert_same(InputDecoder(NUMERIC).from_rows(rows), reference_rows(rows, NUMERIC))


@SETTINGS
@given(
    st.lists(st.tuples(json_category, json_number, json_category).map(list), min_size=1, max_size=8)
)
def test_mixed_json_rows_match_to_model_input(rows: list[list[Any]]) -> None:
    assert_same(InputDecoder(MIXED).from_rows(rows), reference_rows(rows, MIXED))


def test_records_in_any_key_order_match_rows() -> None:
    decoder = InputDecoder(MIXED)
    records = [
        {"code": "007", "size": 3, "colour": "red"},
        {"size": None, "colour": None, "code": 1},
    ]
    rows = [["red", 3, "007"], [None, None, 1]]
    assert_same(decoder.from_json(orjson.dumps(records)), reference_rows(rows, MIXED))
    assert_same(decoder.from_json(orjson.dumps({"instances": rows})), reference_rows(rows, MIXED))


csv_number = st.one_of(
    finite.map(repr),
    st.integers(-(10**12), 10**12).map(str),
    finite.map(lambda x: f"{x:.3e}"),
    st.sampled_from(["", "NA", "nan", "null", "N/A"]),
)
csv_category = st.one_of(category_text, st.sampled_from(["", "NA", "None", "007", "7.0"]))
spaces = st.sampled_from(["", " ", "  "])


def csv_text(rows: list[list[str]], header: list[str] | None, pad: list[str]) -> str:
    lines = [",".join(header)] if header else []
    for row in rows:
        lines.append(",".join(p + v for p, v in zip(pad, row, strict=False)))
    return "\n".join(lines) + "\n"


@SETTINGS
@given(
    st.lists(st.lists(csv_number, min_size=3, max_size=3), min_size=1, max_size=8),
    st.booleans(),
    st.lists(spaces, min_size=3, max_size=3),
)
def test_numeric_csv_matches_to_model_input(
    rows: list[list[str]], header: bool, pad: list[str]
) -> None:
    # pandas skips a line with nothing on it; so do we, so keep each row non-blank.
    rows = [row if any(row) else ["1", *row[1:]] for row in rows]
    text = csv_text(rows, NUMERIC.feature_names if header else None, pad)
    ours = InputDecoder(NUMERIC).from_csv(text.encode())
    assert_same(ours, reference_csv(text, NUMERIC, header))


@SETTINGS
@given(
    st.lists(st.tuples(csv_category, csv_number, csv_category).map(list), min_size=1, max_size=8),
    st.booleans(),
    st.lists(spaces, min_size=3, max_size=3),
)
def test_mixed_csv_matches_to_model_input(
    rows: list[list[str]], header: bool, pad: list[str]
) -> None:
    rows = [row if any(v.strip() for v in row) else ["a", *row[1:]] for row in rows]
    text = csv_text(rows, MIXED.feature_names if header else None, pad)
    ours = InputDecoder(MIXED).from_csv(text.encode())
    assert_same(ours, reference_csv(text, MIXED, header))


def test_csv_header_may_reorder_columns_and_quoted_fields_parse() -> None:
    text = 'code,colour,size\n"0,7", red,1.5\n042,"",\n'
    ours = InputDecoder(MIXED).from_csv(text.encode())
    assert ours.tolist()[0] == ["red", 1.5, "0,7"]
    assert ours[1, 0] != ours[1, 0] and ours[1, 1] != ours[1, 1]  # both missing (NaN)
    assert ours[1, 2] == "042"


def test_fast_numeric_path_returns_float_matrix() -> None:
    matrix = InputDecoder(NUMERIC).from_csv(b"0.0, 0.0, 0.0\n1,2,3\n")
    assert matrix.dtype == np.float64 and matrix.tolist() == [[0, 0, 0], [1, 2, 3]]


def test_na_markers_are_pandas_defaults() -> None:
    assert frozenset(STR_NA_VALUES) == NA_VALUES


@pytest.mark.parametrize(
    ("schema", "rows", "feature"),
    [
        (NUMERIC, [[1, "abc", 3]], "b"),
        (NUMERIC, [[1, 2, "1_000"]], "c"),
        (NUMERIC, [[1, 2, "nan"]], "c"),
        (MIXED, [["red", "big", "007"]], "size"),
    ],
)
def test_values_to_model_input_rejects_are_rejected_naming_the_feature(
    schema: Schema, rows: list[list[Any]], feature: str
) -> None:
    with pytest.raises(InputError, match=f"'{feature}'"):
        reference_rows(rows, schema)
    with pytest.raises(HttpError, match=f"feature '{feature}'") as caught:
        InputDecoder(schema).from_rows(rows)
    assert caught.value.status == 400


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[[1, true, 3]]", "feature 'b' is numeric but has the value True"),
        (b"[[1, 2, [3]]]", "feature 'c' is numeric"),
        (b"[[1, 2, 1e999]]", "not valid JSON"),
        (b"[[1, 2, 1" + b"0" * 400 + b"]]", "number is infinity"),
        (b'[[1, 2, "inf"]]', "feature 'c' is numeric but has the value 'inf'"),
        (b"[[1, 2]]", "row 1 has 2 values but the model takes 3 features (a, b, c)"),
        (b"[[1, 2, 3], [1, 2, 3, 4]]", "row 2 has 4 values"),
        (b'[{"a": 1, "b": 2}]', "record 1 lacks feature(s) c"),
        (b'[{"a": 1, "b": 2, "c": 3, "d": 4}]', "has unknown feature(s) d"),
        (b"[[1, 2, 3], {}]", "row 2 is not a list"),
        (b"[]", "no rows"),
        (b"{nope", "not valid JSON"),
        (b'"text"', "must be a list of rows"),
    ],
)
def test_malformed_json_is_a_400_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(HttpError) as caught:
        InputDecoder(NUMERIC).from_json(body)
    assert caught.value.status == 400
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"1,2\n", "row 1 has 2 values"),
        (b"a,b,x\n1,2,3\n", "header row does not match the model's features: missing c"),
        (b"a,b,c\n", "header row but no data rows"),
        (b"1,2,inf\n", "feature 'c' is numeric but has the value 'inf'"),
        (b"1,2,1e400\n", "feature 'c' has the value '1e400', which is not a finite number"),
        (b"1,2,x\n", "row 1: feature 'c' is numeric but has the value 'x'"),
        (b"\xff\xfe,1,2\n", "not UTF-8"),
        (b'1,2,"3\n', "cannot be parsed"),
        (b"\n\n", "no rows"),
    ],
)
def test_malformed_csv_is_a_400_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(HttpError) as caught:
        InputDecoder(NUMERIC).from_csv(body)
    assert caught.value.status == 400
    assert message in caught.value.message


def test_json_response_names_label_probabilities_and_version() -> None:
    proba = np.array([[0.2, 0.8], [0.9, 0.1]])
    body = orjson.loads(encode_json(proba, [0, 1], ["0", "1"], "abc"))
    assert body == {
        "predictions": [
            {"label": 1, "probabilities": {"0": 0.2, "1": 0.8}},
            {"label": 0, "probabilities": {"0": 0.9, "1": 0.1}},
        ],
        "classes": [0, 1],
        "model_version": "abc",
    }


def test_csv_response_has_a_header_and_one_row_per_input() -> None:
    text = encode_csv(np.array([[0.25, 0.75]]), ["no", "yes, really"], ["no", "yes, really"])
    assert text.decode() == 'label,no,"yes, really"\n"yes, really",0.25,0.75\n'


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("", JSON),
        ("*/*", JSON),
        ("text/csv", CSV),
        ("text/csv;q=0.9, application/json", CSV),
        ("application/json; charset=utf-8", JSON),
        ("image/png", None),
    ],
)
def test_accept_negotiation(accept: str, expected: str | None) -> None:
    assert negotiate(accept) == expected
