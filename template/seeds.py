"""What each seed repository holds, and the proof that it runs on its own.

Each seed zip holds what its repository needs to run on its own, and nothing else:

    modelbuild   modelbuild/ and container/ (the pipeline, the run command, the image's code,
                 the dataset registry and its offline mirror modelbuild/data/ with its
                 attribution), buildspecs/modelbuild.yml and buildspecs/image.yml,
                 pyproject.toml, README.md, and the tests that need nothing outside those
    modeldeploy  modeldeploy/ (deploy logic, endpoint stack, invoker, stage configs),
                 buildspecs/modeldeploy.yml and operations.yml, the few build-side modules
                 it imports (modelbuild/naming.py, cli_common.py, did_you_mean.py, aws_calls.py,
                 container/archive.py, checksum.py, errors.py, layout.py, provenance.py),
                 pyproject.toml, README.md, and the tests that need nothing outside those

No caches, virtual environments or local state: only the files named below, with __pycache__
and *.pyc excluded.

`missing_imports` proves a seed self-contained: from its entry points and every module it
ships, it follows every first-party import (read with ast, at module level and inside
functions and methods, since a command imports what it needs when it runs) and names each
module the zip does not hold. Two kinds of import are not followed, because they never run:
those under `if TYPE_CHECKING:` (annotations are strings here, `from __future__ import
annotations`) and those in a `try` whose handler catches ImportError or ModuleNotFoundError
(the code copes with the module's absence, as modeldeploy.environment does in the Lambda).
"""

from __future__ import annotations

import ast
import io
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from container.errors import InputError
from modelbuild import naming
from template import PROJECT_TEMPLATE

REPO = PROJECT_TEMPLATE.parents[1]
FIRST_PARTY = ("container", "modelbuild", "modeldeploy", "local", "template", "tests")
EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", ".venv", "venv", ".mme", "build"}
EXCLUDED_SUFFIXES = {".pyc", ".pyo"}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# Both seeds carry the packaging metadata: the modelbuild buildspec installs `.[pipeline]`,
# and pyproject.toml names README.md as the readme.
COMMON_FILES = ("pyproject.toml", "README.md")
_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


@dataclass(frozen=True)
class Seed:
    name: str
    directories: tuple[str, ...]
    files: tuple[str, ...]
    # What the buildspecs run: `python -m <entry point>` (a test may import these too).
    entry_points: tuple[str, ...]


SEEDS = (
    Seed(
        name=naming.MODELBUILD_REPO,
        directories=("modelbuild", "container"),
        files=("buildspecs/modelbuild.yml", "buildspecs/image.yml", *COMMON_FILES),
        entry_points=("modelbuild.cli", "modelbuild.run", "container.__main__"),
    ),
    Seed(
        name=naming.MODELDEPLOY_REPO,
        directories=("modeldeploy",),
        files=(
            "buildspecs/modeldeploy.yml",
            "buildspecs/operations.yml",
            "modelbuild/__init__.py",
            "modelbuild/naming.py",
            "modelbuild/cli_common.py",
            "modelbuild/environment.py",
            "modelbuild/did_you_mean.py",
            "modelbuild/aws_calls.py",
            "container/__init__.py",
            "container/archive.py",
            "container/checksum.py",
            "container/errors.py",
            "container/layout.py",
            "container/provenance.py",
            *COMMON_FILES,
        ),
        entry_points=(
            "modeldeploy.cli",
            "modeldeploy.invoker",
            "modeldeploy.build",
            "modeldeploy.operations",
        ),
    ),
)


def _shipped(path: Path) -> bool:
    """Source, not by-products: no caches, environments, local state, build output or dotfiles."""
    relative = path.relative_to(REPO)
    return (
        path.is_file()
        and not EXCLUDED_PARTS.intersection(relative.parts)
        and path.suffix not in EXCLUDED_SUFFIXES
        and not any(part.startswith(".") or part.endswith(".egg-info") for part in relative.parts)
    )


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_errors(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    names = caught.elts if isinstance(caught, ast.Tuple) else [caught] if caught else []
    return any(isinstance(name, ast.Name) and name.id in _IMPORT_ERRORS for name in names)


def _running_imports(nodes: Iterable[ast.AST]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement under `nodes` that can run (module doc: not TYPE_CHECKING-only,
    not guarded against the module's absence)."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _running_imports(node.orelse)
        elif isinstance(node, ast.Try) and any(map(_catches_import_errors, node.handlers)):
            yield from _running_imports([*node.handlers, *node.orelse, *node.finalbody])
        else:
            yield from _running_imports(ast.iter_child_nodes(node))


def _module_name(relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def first_party_imports(
    path: Path, module_level_only: bool = False, module: str | None = None
) -> set[str]:
    """Dotted first-party modules a file imports (at module level, or anywhere it can run);
    `from a import b` gives both a and a.b (b may be a module or a name in a). `module` is
    the file's dotted name, which anchors relative imports (default: from its path here)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    statements: Iterable[ast.AST] = (
        [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        if module_level_only
        else _running_imports(tree.body)
    )
    if module is None:
        module = (
            _module_name(path.relative_to(REPO).as_posix()) if path.is_relative_to(REPO) else ""
        )
    found = set()
    for node in statements:
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: anchored at the importing module's package
                anchor = module.split(".")
                if path.name != "__init__.py":
                    anchor = anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(part for part in [*anchor, base] if part)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(name for name in names if name.split(".")[0] in FIRST_PARTY)
    return found


def _resolves(module: str, files: set[str]) -> bool:
    """True if the module (or the package attribute `from x import y` names) is in `files`."""
    path = module.replace(".", "/")
    if f"{path}.py" in files or f"{path}/__init__.py" in files:
        return True
    if (REPO / f"{path}.py").is_file() or (REPO / path / "__init__.py").is_file():
        # `from pkg import mod` where mod is a module of this repository the seed lacks.
        return False
    parent = path.rsplit("/", 1)[0]
    # `from pkg.mod import name`: the name is an attribute of a shipped module.
    return "/" in path and (f"{parent}.py" in files or f"{parent}/__init__.py" in files)


def _module_file(module: str, files: set[str]) -> str | None:
    path = module.replace(".", "/")
    for candidate in (f"{path}.py", f"{path}/__init__.py"):
        if candidate in files:
            return candidate
    return None


def _tests_for(files: set[str]) -> list[str]:
    """The test files whose every import, through the test helpers they use, is shipped; plus
    the helpers they use, tests/__init__.py and conftest.py (pytest loads it for every test)."""
    tests_dir = REPO / "tests"
    paths = {f"tests/{p.name}": p for p in sorted(tests_dir.glob("*.py")) if _shipped(p)}

    def helper(module: str) -> str | None:
        return _module_file(module, set(paths)) or _module_file(
            module.rsplit(".", 1)[0], set(paths)
        )

    def usable(relative: str, seen: frozenset[str] = frozenset()) -> bool:
        """All imports (any level) resolve in the seed, helpers followed recursively."""
        if relative in seen:
            return True
        for module in first_party_imports(paths[relative]):
            if module.split(".")[0] == "tests":
                found = helper(module)
                if found is None or not usable(found, seen | {relative}):
                    return False
            elif not _resolves(module, files):
                return False
        return True

    def helpers_of(relative: str) -> set[str]:
        found: set[str] = set()
        for module in first_party_imports(paths[relative]):
            if module.split(".")[0] == "tests":
                used = helper(module)
                if used and used != relative and used not in found:
                    found |= {used} | helpers_of(used)
        return found

    tests = [r for r in paths if Path(r).name.startswith("test_") and usable(r)]
    if not tests:
        return []
    chosen = set(tests) | {"tests/__init__.py"} & set(paths)
    for test in tests:
        chosen |= helpers_of(test)
    conftest = "tests/conftest.py"
    # Its fixtures import what the tests that use them need; a seed's tests use only those
    # whose imports it ships, so the module level decides whether pytest can load it.
    if conftest in paths and all(
        _resolves(m, files) for m in first_party_imports(paths[conftest], module_level_only=True)
    ):
        chosen.add(conftest)
    return sorted(chosen)


def seed_files(seed: Seed) -> list[str]:
    """Repository-relative paths of everything the seed zip holds, sorted."""
    files: set[str] = set()
    for directory in seed.directories:
        for path in (REPO / directory).rglob("*"):
            if _shipped(path):
                files.add(path.relative_to(REPO).as_posix())
    for name in seed.files:
        if not (REPO / name).is_file():
            raise InputError(f"the {seed.name} seed needs {name}, which is missing", file=REPO)
        files.add(name)
    files.update(_tests_for(files))
    return sorted(files)


def missing_imports(
    seed: Seed, files: Iterable[str], root: Path | None = None
) -> dict[str, list[str]]:
    """First-party modules that the seed's entry points and code import, at any level and
    transitively, and that the zip does not hold: {importing file: [missing modules]} (module
    doc). `root` holds the files (default: this repository)."""
    root = REPO if root is None else root
    shipped = set(files)
    problems: dict[str, list[str]] = {}
    code = [
        _module_name(name)
        for name in sorted(shipped)
        if name.endswith(".py") and name.split("/")[0] in seed.directories
    ]
    pending = [*seed.entry_points, *code]
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        name = _module_file(module, shipped)
        if name is None or name in seen:
            continue
        seen.add(name)
        # A package's __init__ runs before any of its modules.
        parts = module.split(".")
        pending.extend(".".join(parts[:i]) for i in range(1, len(parts)))
        for imported in sorted(first_party_imports(root / name, module=_module_name(name))):
            if not _resolves(imported, shipped):
                problems.setdefault(name, []).append(imported)
            elif _module_file(imported, shipped):
                pending.append(imported)
            else:  # `from package.module import name`: follow the module
                pending.append(imported.rsplit(".", 1)[0])
    for entry in seed.entry_points:
        if _module_file(entry, shipped) is None:
            problems.setdefault("<entry points>", []).append(entry)
    return problems


def build_zip(files: Iterable[str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (REPO / name).read_bytes())
    return buffer.getvalue()
