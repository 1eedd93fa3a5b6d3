"""A broken daemon config stops every command with all of its problems, file and key each."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.cli import main


def test_every_config_problem_is_reported_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bhyve-reconciler.toml"
    cfg.write_text('stop_timeout = "soon"\nresync_intervall = "30s"\n')
    assert main(["--config", str(cfg), "validate"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "bhyve-reconciler: the daemon config is invalid:"
    assert sorted(line.split(": ")[1] for line in err[1:]) == ["resync_intervall", "stop_timeout"]
    assert all(line.startswith(f"{cfg}: ") for line in err[1:])


def test_a_missing_config_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.toml"
    assert main(["--config", str(missing), "validate"]) == 1
    assert f"{missing}: (file): cannot read the daemon config" in capsys.readouterr().err
