"""The README's "How it works" names every module of the package, so the map of the code a
newcomer reads cannot fall behind it: a module added without a line there fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "reconciler"
# Packages the README names as a whole (`cli/`, `vmbhyve/`, `sim/`): their own modules are
# described in their docstrings.
AS_A_WHOLE = ("cli", "vmbhyve", "sim")


def how_it_works() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## How it works\n(.*?)^## ", readme, re.S | re.M)
    assert match is not None, "the README has no How it works section"
    return match.group(1)


def modules() -> list[str]:
    """Every module, as the README spells it: `plan.py`, `host/runner.py`, `host/shim.sh`."""
    found = []
    for path in sorted(PACKAGE.rglob("*")):
        relative = path.relative_to(PACKAGE)
        if relative.parts[0] in AS_A_WHOLE or "__pycache__" in relative.parts:
            continue
        if path.suffix in (".py", ".sh") and not path.name.startswith("__"):
            found.append(str(relative))
    return found


def test_how_it_works_names_every_module() -> None:
    text = how_it_works()
    assert [m for m in modules() if f"`{m}`" not in text] == []


def test_how_it_works_names_every_package_and_no_module_that_is_gone() -> None:
    text = how_it_works()
    assert all(f"`{package}/`" in text for package in AS_A_WHOLE)
    named = set(re.findall(r"`((?:host/)?[a-z_]+\.(?:py|sh))`", text))
    assert sorted(named - set(modules())) == []
