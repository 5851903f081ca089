"""Each option's documentation, read from the one place it is written: the field docstrings of
the schema dataclasses (``safe-rlhf-train --describe``)."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from functools import cache
from typing import Any


@cache
def field_docs(schema: type) -> dict[str, str]:
    """Field name → its docstring (the string literal right after the field), over the schema
    and its bases; a field without one maps to ""."""
    docs: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
        for node, following in zip(body, [*body[1:], None], strict=True):
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                doc = ""
                if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                    doc = inspect.cleandoc(str(following.value.value))
                docs[node.target.id] = doc or docs.get(node.target.id, "")
    return docs


def describe(schema: type, values: Any, prefix: str) -> str:
    """One block per field of ``schema``: ``prefix.name = value`` (``values`` is the composed
    config node or object) and the field's documentation, indented."""
    lines = [f"# {prefix}: {schema.__name__}", inspect.cleandoc(schema.__doc__ or ""), ""]
    for field in dataclasses.fields(schema):
        value = values.get(field.name) if hasattr(values, "get") else getattr(values, field.name)
        lines.append(f"{prefix}.{field.name} = {value!r}")
        doc = field_docs(schema).get(field.name, "")
        lines += [textwrap.indent(textwrap.fill(p, 92), "    ") for p in doc.split("\n\n") if p]
    return "\n".join(lines)
