"""Project-wide rules that are easy to break by accident."""

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
