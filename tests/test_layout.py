"""Project-wide rules that are easy to break by accident."""

import ast
import dataclasses
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [*ROOT.joinpath("src").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py")]


def test_only_the_pytorch_lightning_namespace_is_used():
    # `lightning.pytorch` and `pytorch_lightning` are different classes: a Trainer from one rejects
    # a module from the other, and a callback from the other is silently accepted.
    pattern = re.compile(r"^\s*(import lightning\b|from lightning[ .])", re.MULTILINE)
    offenders = [str(p) for p in SOURCES if pattern.search(p.read_text())]
    assert offenders == []


def test_no_print_in_library_code():
    offenders = [
        str(p)
        for p in ROOT.joinpath("src").rglob("*.py")
        if re.search(r"^\s*print\(", p.read_text(), re.MULTILINE)
    ]
    assert offenders == []


def test_remote_code_is_never_enabled_by_default():
    offenders = [
        str(p)
        for p in ROOT.joinpath("src").rglob("*.py")
        if re.search(r"trust_remote_code\s*=\s*True", p.read_text())
    ]
    assert offenders == []


# The house drawn from the imports (DESIGN.md, package layout): a part may import only parts on
# a lower floor, so that the math never depends on training code and no stage on the CLI.
FLOORS = {
    "functional": 0, "types": 0, "files": 0, "config": 0, "distributed": 0,
    "data": 1, "lagrange": 1, "checkpoint_io": 1, "progress": 1,
    "benchmark": 2, "models": 2, "rounds": 2,
    "rollout": 3, "evaluation": 3,
    "stages": 4, "serve": 4,
    "cli": 5,
}  # fmt: skip
PACKAGE = ROOT / "src" / "safe_rlhf_lightning"


def _imported_parts(path: Path) -> set[str]:
    """The package's top-level parts that the module at ``path`` imports (absolute or relative,
    at module level or inside functions)."""
    part_of = path.relative_to(PACKAGE).parts
    parts = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: climb from the module's own package
                base = list(part_of[:-1])[: len(part_of) - node.level]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = (node.module or "").removeprefix("safe_rlhf_lightning.")
                if not (node.module or "").startswith("safe_rlhf_lightning"):
                    continue
            names = [name] if name else [alias.name for alias in node.names]
            parts |= {n.split(".")[0] for n in names if n}
        elif isinstance(node, ast.Import):
            parts |= {
                alias.name.split(".")[1]
                for alias in node.names
                if alias.name.startswith("safe_rlhf_lightning.")
            }
    return parts


def test_imports_point_down_the_layers():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent == PACKAGE and path.name == "__init__.py":
            continue
        own = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for part in _imported_parts(path) - {own}:
            if part in FLOORS and FLOORS[part] >= FLOORS[own]:
                upward.append(f"{path.relative_to(PACKAGE)} imports {part}")
    assert sorted(upward) == []
    assert set(FLOORS) == {
        p.name.removesuffix(".py")
        for p in PACKAGE.iterdir()
        if p.name != "__init__.py" and (p.suffix == ".py" or (p / "__init__.py").exists())
    }  # every part has its floor


def test_no_file_passes_500_lines():
    long = [str(p) for p in PACKAGE.rglob("*.py") if len(p.read_text().splitlines()) > 500]
    assert long == []


def test_no_stage_module_or_runner_restates_a_schema_default():
    """Each stage setting has one definition, its schema field: no function in the stage modules
    or the CLI takes a keyword with a default named after a stage schema's field."""
    from safe_rlhf_lightning.cli.schema import STAGE_SCHEMAS

    fields = {f.name for schema in STAGE_SCHEMAS.values() for f in dataclasses.fields(schema)}
    shadows = []
    for folder in ("stages", "cli"):
        for path in (PACKAGE / folder).glob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                arguments = node.args
                positional = [*arguments.posonlyargs, *arguments.args]
                with_defaults = positional[len(positional) - len(arguments.defaults) :]
                with_defaults += [
                    a
                    for a, d in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True)
                    if d is not None
                ]
                shadows += [
                    f"{path.name}:{node.name}({a.arg}=...)"
                    for a in with_defaults
                    if a.arg in fields
                ]
    assert shadows == []
