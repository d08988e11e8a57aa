"""A value against the SageMaker API's botocore shapes, without the SDK: botocore's own validator
plus what it skips (enums, maximum lengths and values, patterns: SageMaker's Java patterns
translated to Python's re), and placeholders of a shape's type for values known only at run
time. Used by `modelbuild.validate` for every job step's Arguments."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import botocore.session
from botocore.model import ServiceModel, Shape
from botocore.validate import ParamValidator

# API shape type -> expression value types that fit it
COMPATIBLE = {
    "string": {"string"},
    "integer": {"integer", "long"},
    "long": {"integer", "long"},
    "float": {"float", "double", "integer", "long"},
    "double": {"float", "double", "integer", "long"},
    "boolean": {"boolean"},
    "timestamp": {"timestamp", "string"},
}
# Java regex features in SageMaker's patterns that Python's re lacks, translated to the nearest
# equivalent (Unicode classes become ASCII plus the non-ASCII range: more permissive, never
# stricter, so a valid value is never rejected).
_JAVA_CLASSES = {
    r"\p{L}": r"A-Za-z\u00aa\u00b5\u00ba\u00c0-\U0010ffff",
    r"\p{M}": r"\u0300-\u036f",
    r"\p{Z}": r" \u00a0\u2000-\u200b\u3000",
    r"\p{S}": r"$+<=>^`|~",
    r"\p{N}": r"0-9",
    r"\p{P}": r"!-#%-*,-/:;?@\[-\]_{}",
    r"\uD800\uDC00-\uDBFF\uDFFF": r"\U00010000-\U0010ffff",
}


class _Placeholder(str):
    """Stands for a runtime value: its type is checked, its content is not."""


class _IntPlaceholder(int):
    pass


class _FloatPlaceholder(float):
    pass


@cache
def service_model() -> ServiceModel:
    return botocore.session.get_session().get_service_model("sagemaker")


@cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    translated = pattern
    for java, python in _JAVA_CLASSES.items():
        translated = translated.replace(java, python)
    translated = re.sub(r"\$\{\d+,\d+\}", "$", translated)
    try:
        return re.compile(translated, flags=re.S)
    except re.error:
        return None  # a Java-only construct we do not translate: the pattern is not checked


def placeholder(shape: Shape) -> Any:
    kind = shape.type_name
    if kind in ("integer", "long"):
        return _IntPlaceholder(max(1, int(shape.metadata.get("min", 1))))
    if kind in ("float", "double"):
        return _FloatPlaceholder(float(shape.metadata.get("min", 1.0)))
    if kind == "boolean":
        return True
    return _Placeholder("pipeline-variable")


def extra_checks(value: Any, shape: Shape, path: str) -> Iterator[str]:
    """What botocore's ParamValidator leaves out: enums, maximums and patterns."""
    if shape.type_name == "structure" and isinstance(value, dict):
        for key, item in value.items():
            if key in shape.members:
                yield from extra_checks(item, shape.members[key], f"{path}.{key}".lstrip("."))
    elif shape.type_name == "list" and isinstance(value, list):
        maximum = shape.metadata.get("max")
        if maximum is not None and len(value) > maximum:
            yield f"{path}: {len(value)} entries, more than the maximum {maximum}"
        for index, item in enumerate(value):
            yield from extra_checks(item, shape.member, f"{path}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            yield from extra_checks(key, shape.key, f"{path} key {key!r}")
            yield from extra_checks(item, shape.value, f"{path}.{key}")
    elif isinstance(value, str) and not isinstance(value, _Placeholder):
        enum = getattr(shape, "enum", None)
        if enum and value not in enum:
            close = [e for e in enum if e.split(".")[:2] == value.split(".")[:2]] or enum
            yield f"{path}: {value!r} is not an allowed value (e.g. {close[:6]})"
        maximum = shape.metadata.get("max")
        if maximum is not None and len(value) > maximum:
            yield f"{path}: {len(value)} characters, more than the maximum {maximum}"
        pattern = shape.metadata.get("pattern")
        compiled = _compiled(pattern) if pattern else None
        if compiled is not None and not compiled.fullmatch(value):
            yield f"{path}: {value[:80]!r} does not match the pattern {pattern[:80]}"
    elif (
        isinstance(value, (int, float))
        and not isinstance(value, (bool, _IntPlaceholder, _FloatPlaceholder))
        and shape.metadata.get("max") is not None
        and value > shape.metadata["max"]
    ):
        yield f"{path}: {value} is more than the maximum {shape.metadata['max']}"


def shape_problems(value: Any, shape: Shape) -> Iterator[str]:
    """Every way `value` does not fit `shape`, one line each: botocore's report, then
    `extra_checks`."""
    report = ParamValidator().validate(value, shape)
    if report.has_errors():
        for line in report.generate_report().splitlines():
            if line.strip() and not line.startswith("Parameter validation failed"):
                yield line.strip()
    yield from extra_checks(value, shape, "")
