"""Request body -> the array the fitted pipeline takes, validated against the model's signature.

`schema.to_model_input` is the definition of that array (float64 when every feature is numeric,
else an object matrix of floats and str/NaN); it goes through pandas, which costs more than a
small model's predict, so this module builds the same array directly from the parsed JSON or CSV
and only falls back to value-by-value conversion when the fast path sees something unusual.
`tests/test_serve_decode.py` checks the two agree.

Beyond `to_model_input`, a request is refused (400) for a wrong feature count, unknown or missing
feature names, booleans or nested values in numeric features, and infinite values, which every
pipeline here would reject later with a less helpful message.
"""

from __future__ import annotations

import csv
import io
import math
import re
from typing import Any

import numpy as np
import orjson

from container.schema import Schema
from container.serving.errors import bad_request

# pandas' default CSV missing-value markers (pandas._libs.parsers.STR_NA_VALUES): a CSV read for
# training turns these into NaN, so a CSV request must too.
NA_VALUES = frozenset(
    {
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    }
)
# The decimal forms pandas parses; Python's float() also takes "1_000", "infinity" and non-ASCII
# digits, which pandas (and so training) would not.
_NUMBER_TEXT = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_PLAIN_NUMERIC_CSV = frozenset("0123456789.eE+-, \t")
_NAN = float("nan")
_NUMBER_TYPES = {int, float}


def _preview(names: list[str]) -> str:
    shown = ", ".join(names[:10])
    return shown + (f", ... ({len(names)} in all)" if len(names) > 10 else "")


class InputDecoder:
    """Turns one model's request bodies into its input array."""

    def __init__(self, schema: Schema):
        self.names = schema.feature_names
        self.name_set = frozenset(self.names)
        self.numeric = tuple(f.kind == "numeric" for f in schema.features)
        self.numeric_only = all(self.numeric)
        self.width = len(self.names)

    # -- JSON ------------------------------------------------------------------------------

    def from_json(self, body: bytes) -> np.ndarray:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise bad_request(f"the body is not valid JSON: {error}") from None
        if isinstance(document, dict):
            if "instances" in document and "instances" not in self.name_set:
                document = document["instances"]
            else:
                document = [document]
        if not isinstance(document, list):
            raise bad_request(
                "a JSON body must be a list of rows, a list of records keyed by feature name, "
                'or {"instances": [...]}'
            )
        if not document:
            raise bad_request("the request holds no rows")
        first = document[0]
        if isinstance(first, dict):
            return self.from_records(document)
        if isinstance(first, list):
            return self.from_rows(document)
        return self.from_rows([document])

    def from_rows(self, rows: list[Any]) -> np.ndarray:
        for i, row in enumerate(rows, 1):
            if type(row) is not list:
                raise bad_request(f"row {i} is not a list of values (rows and records are mixed?)")
            if len(row) != self.width:
                raise bad_request(
                    f"row {i} has {len(row)} values but the model takes {self.width} features "
                    f"({_preview(self.names)})"
                )
        return self._convert_json(rows)

    def from_records(self, records: list[Any]) -> np.ndarray:
        names = self.names
        for i, record in enumerate(records, 1):
            if type(record) is not dict:
                raise bad_request(f"row {i} is not a record (rows and records are mixed?)")
            if record.keys() != self.name_set:
                missing = [name for name in names if name not in record]
                unknown = sorted(str(key) for key in record if key not in self.name_set)
                problems = []
                if missing:
                    problems.append(f"lacks feature(s) {_preview(missing)}")
                if unknown:
                    problems.append(f"has unknown feature(s) {_preview(unknown)}")
                raise bad_request(f"record {i} {' and '.join(problems)}")
        return self._convert_json([[record[name] for name in names] for record in records])

    def _convert_json(self, rows: list[list[Any]]) -> np.ndarray:
        if self.numeric_only:
            if {type(value) for row in rows for value in row} <= _NUMBER_TYPES:
                try:
                    matrix = np.array(rows, dtype=np.float64)
                except OverflowError:
                    pass  # an integer beyond float range: the slow path names it
                else:
                    if np.isfinite(matrix).all():
                        return matrix
            matrix = np.empty((len(rows), self.width), dtype=np.float64)
        else:
            matrix = np.empty((len(rows), self.width), dtype=object)
        numeric = self.numeric
        for i, row in enumerate(rows):
            for j, value in enumerate(row):
                matrix[i, j] = (
                    self._json_number(value, i, j)
                    if numeric[j]
                    else self._json_category(value, i, j)
                )
        return matrix

    def _json_number(self, value: Any, i: int, j: int) -> float:
        kind = type(value)
        if kind is float or kind is int:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
            if math.isfinite(number):
                return number
            raise self._out_of_range(value, i, j)
        if value is None:
            return _NAN
        if kind is str:
            return self._parse_number(value, value.strip(), i, j)
        raise self._not_numeric(value, i, j)

    def _json_category(self, value: Any, i: int, j: int) -> Any:
        kind = type(value)
        if kind is str:
            return value
        if value is None:
            return _NAN
        if kind is int or kind is float or kind is bool:
            return str(value)
        raise bad_request(
            f"row {i + 1}: feature '{self.names[j]}' is categorical but has the value {value!r}"
        )

    # -- CSV -------------------------------------------------------------------------------

    def from_csv(self, body: bytes) -> np.ndarray:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise bad_request(f"the CSV body is not UTF-8: {error}") from None
        if '"' in text:
            try:
                rows = [
                    row
                    for row in csv.reader(io.StringIO(text), skipinitialspace=True, strict=True)
                    if row
                ]
            except csv.Error as error:
                raise bad_request(f"the CSV body cannot be parsed: {error}") from None
            lines = None
        else:
            lines = [line for line in text.splitlines() if line.strip()]
            rows = [line.split(",") for line in lines]
        if not rows:
            raise bad_request("the request holds no rows")
        start = 1 if self._is_header(rows[0]) else 0
        data = rows[start:]
        if not data:
            raise bad_request("the CSV has a header row but no data rows")
        for i, row in enumerate(data, 1):
            if len(row) != self.width:
                raise bad_request(
                    f"row {i} has {len(row)} values but the model takes {self.width} features "
                    f"({_preview(self.names)})"
                )
        if start:
            data = self._reorder(rows[0], data)
        if (
            self.numeric_only
            and lines is not None
            and all(_PLAIN_NUMERIC_CSV.issuperset(line) for line in lines[start:])
        ):
            try:
                matrix = np.array(data, dtype=np.float64)
            except ValueError:
                pass  # an empty field (missing value) or a malformed number: see below
            else:
                if np.isfinite(matrix).all():
                    return matrix
        return self._convert_csv(data)

    def _is_header(self, first: list[str]) -> bool:
        fields = [field.strip() for field in first]
        shared = self.name_set.intersection(fields)
        # A data row can hold a category equal to a feature name; a header names most features.
        if len(shared) < max(1, (self.width + 1) // 2):
            return False
        if len(fields) != self.width or set(fields) != self.name_set:
            missing = [name for name in self.names if name not in shared]
            unknown = [field for field in fields if field not in self.name_set]
            raise bad_request(
                "the CSV header row does not match the model's features: "
                f"missing {_preview(missing) or 'none'}; unknown {_preview(unknown) or 'none'}"
            )
        return True

    def _reorder(self, header: list[str], data: list[list[str]]) -> list[list[str]]:
        position = {field.strip(): k for k, field in enumerate(header)}
        order = [position[name] for name in self.names]
        if order == list(range(self.width)):
            return data
        return [[row[k] for k in order] for row in data]

    def _convert_csv(self, data: list[list[str]]) -> np.ndarray:
        dtype = np.float64 if self.numeric_only else object
        matrix = np.empty((len(data), self.width), dtype=dtype)
        numeric = self.numeric
        for i, row in enumerate(data):
            for j, field in enumerate(row):
                # pandas' skipinitialspace, as schema.read_csv reads training data.
                token = field.lstrip(" ")
                if token in NA_VALUES:
                    matrix[i, j] = _NAN
                elif numeric[j]:
                    matrix[i, j] = self._parse_number(field, token, i, j)
                else:
                    matrix[i, j] = token
        return matrix

    # -- shared ----------------------------------------------------------------------------

    def _parse_number(self, original: Any, token: str, i: int, j: int) -> float:
        if _NUMBER_TEXT.fullmatch(token.strip()):
            number = float(token)
            if math.isfinite(number):
                return number
            raise self._out_of_range(original, i, j)
        raise self._not_numeric(original, i, j)

    def _not_numeric(self, value: Any, i: int, j: int) -> Exception:
        return bad_request(
            f"row {i + 1}: feature '{self.names[j]}' is numeric but has the value {value!r}"
        )

    def _out_of_range(self, value: Any, i: int, j: int) -> Exception:
        return bad_request(
            f"row {i + 1}: feature '{self.names[j]}' has the value {value!r}, "
            "which is not a finite number"
        )
