"""Shared CloudFormation checks: cfn-lint and checkov runs, and template loading for tests.

cfn-lint runs in this venv (its own exit code: 0 clean; 2/4/8 errors/warnings/info); checkov
pins boto3 and packaging versions ours cannot share, so it lives in its own venv, which `make`
creates inside .venv (see the Makefile). CI sets MME_REQUIRE_CHECKOV=1 so that a missing
checkov fails instead of skipping.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECKOV_VENV = REPO / ".venv" / "checkov"
# cfn-lint has no `python -m` entry point; this is what its console script runs.
CFN_LINT = "import sys; from cfnlint.runner import main; sys.exit(main())"


def cfn_lint(*templates: Path) -> subprocess.CompletedProcess[str]:
    """Run cfn-lint on the templates; warnings fail too (exit code 4) unless suppressed inline."""
    return subprocess.run(
        [sys.executable, "-c", CFN_LINT, "--", *map(str, templates)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def checkov_path() -> str | None:
    configured = os.environ.get("CHECKOV")
    if configured:
        return configured
    candidate = CHECKOV_VENV / "bin" / "checkov"
    return str(candidate) if candidate.is_file() else shutil.which("checkov")


def require_checkov() -> str:
    checkov = checkov_path()
    if checkov is None:
        if os.environ.get("MME_REQUIRE_CHECKOV") == "1":
            pytest.fail(f"checkov is required but not installed (expected {CHECKOV_VENV})")
        pytest.skip(f"checkov is not installed in {CHECKOV_VENV} (make creates it)")
    return checkov


def checkov(workdir: Path, *targets: Path) -> subprocess.CompletedProcess[str]:
    """One checkov run over the templates (a file or a directory each); ~10-20 s per run.

    Each target is scanned as a copy at a fixed relative path under `workdir`: checkov's
    CloudFormation parser puts the path it was given into every mapping as `__file__`, and
    CKV_AWS_45 runs its AWS secret key pattern (exactly 40 of [A-Za-z0-9/+=] in a row) over a
    Lambda function's Environment.Variables, `__file__` included; so an absolute path decides
    the result (bridgecrewio/checkov#7310), e.g. a clone whose path holds such a run.
    """
    command = [require_checkov(), "--framework", "cloudformation", "--compact", "--quiet"]
    for index, target in enumerate(targets):
        copy = Path("scan", str(index), target.name)
        (workdir / copy).parent.mkdir(parents=True)
        if target.is_dir():
            shutil.copytree(target, workdir / copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copyfile(target, workdir / copy)
        command += ["-d" if target.is_dir() else "-f", copy.as_posix()]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=workdir,
        # No call home for guideline links: the scan must work with no network.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE", "HOME": str(workdir)},
        timeout=300,
    )


def buildspec_provides(buildspec: str) -> set[str]:
    """The variables a buildspec's header lists under "The CodeBuild project ... provides:"."""
    lines = (REPO / "buildspecs" / buildspec).read_text().split("provides:\n")[1]
    names: set[str] = set()
    for line in lines.splitlines():
        match = re.match(r"#   ([A-Z][A-Z0-9_]*(?:, [A-Z][A-Z0-9_]*)*)  ", line)
        if match is None:
            break
        names.update(match.group(1).split(", "))
    return names


def resources(template: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    """The Properties of every resource of a type."""
    return [r.get("Properties", {}) for r in template["Resources"].values() if r["Type"] == kind]


def statements(policy_holder: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every statement of a role's inline policies, through Fn::If branches."""
    for policy in policy_holder.get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            yield from _branches(statement)


def _branches(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict) and "If" in node:
        for branch in node["If"][1:]:
            yield from _branches(branch)
    elif isinstance(node, dict) and "Action" in node:
        yield node


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


class Evaluator:
    """Resolves the intrinsics names are built from (Ref, Sub, Select, Split, Join, If, Equals,
    Not) for given parameter values, so tests compare a template's names with naming.py's.

    Templates load with modeldeploy.build.load_template: `!Sub x` becomes {"Sub": x}.
    """

    PSEUDO: ClassVar[dict[str, Any]] = {
        "AWS::Partition": "aws",
        "AWS::Region": "eu-west-1",
        "AWS::AccountId": "123456789012",
        "AWS::NoValue": None,
    }

    def __init__(
        self,
        template: dict[str, Any],
        attributes: dict[str, str] | None = None,
        **parameters: Any,
    ) -> None:
        """`attributes` gives resource attributes ("Bucket.Arn") their would-be values."""
        self.template = template
        self.attributes = attributes or {}
        self.values: dict[str, Any] = {}
        for name, spec in template.get("Parameters", {}).items():
            value = parameters.get(name, spec.get("Default"))
            if spec["Type"] == "CommaDelimitedList" and isinstance(value, str):
                value = value.split(",")
            self.values[name] = value
        unknown = set(parameters) - set(self.values)
        assert not unknown, f"not parameters of the template: {unknown}"

    def condition(self, name: str) -> bool:
        return bool(self(self.template["Conditions"][name]))

    def exists(self, logical_id: str) -> bool:
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.condition(condition)

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self(item) for item in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            [(key, arg)] = node.items()
            handler = getattr(self, f"_{key.lower()}", None)
            if handler is not None:
                return handler(arg)
        return {key: self(value) for key, value in node.items()}

    def _ref(self, name: str) -> Any:
        if name in self.PSEUDO:
            return self.PSEUDO[name]
        if name in self.values:
            return self.values[name]
        if name in self.attributes:
            return self.attributes[name]
        raise KeyError(f"cannot resolve {name} (a resource)")

    def _getatt(self, arg: str | list[str]) -> str:
        return self._ref(arg if isinstance(arg, str) else ".".join(arg))

    def _sub(self, arg: Any) -> str:
        text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))

        def replace(match: Any) -> str:
            name = match.group(1)
            return str(variables[name] if name in variables else self._ref(name))

        return re.sub(r"\$\{([^}!]+)\}", replace, text)

    def _select(self, arg: list[Any]) -> Any:
        return self(arg[1])[int(arg[0])]

    def _split(self, arg: list[Any]) -> list[str]:
        return str(self(arg[1])).split(arg[0])

    def _join(self, arg: list[Any]) -> str:
        return arg[0].join(str(v) for v in self(arg[1]))

    def _if(self, arg: list[Any]) -> Any:
        return self(arg[1] if self.condition(arg[0]) else arg[2])

    def _equals(self, arg: list[Any]) -> bool:
        return self(arg[0]) == self(arg[1])

    def _not(self, arg: list[Any]) -> bool:
        return not self(arg[0])

    def _and(self, arg: list[Any]) -> bool:
        return all(self(item) for item in arg)
