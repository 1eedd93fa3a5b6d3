"""README's "Moving from vm-bhyve" names every vm-bhyve key the importer does not carry over,
so the table of what happens to a key cannot fall behind the code."""

from __future__ import annotations

from pathlib import Path

from reconciler.vmbhyve.vocabulary import DROPPED, REFUSED


def test_the_readme_names_every_key_the_importer_does_not_carry_over() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Moving from vm-bhyve", 1)[1].split("\n## ", 1)[0]
    for key in [*DROPPED, *REFUSED]:
        assert f"`{key}" in section, key
