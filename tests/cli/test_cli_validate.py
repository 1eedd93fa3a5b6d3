"""`bhyve-reconciler validate` as an admin runs it: every problem at once, by file and key."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from e2e_helpers import CliRig

REPO_CONF_D = Path(__file__).resolve().parents[2] / "conf.d"


def test_example_conf_d_validates(rig: CliRig) -> None:
    examples = sorted(REPO_CONF_D.glob("*.toml"))
    assert len(examples) >= 4
    for example in examples:
        shutil.copyfile(example, rig.conf_dir / example.name)
        (rig.conf_dir / example.name).chmod(0o644)

    proc = rig.cli("validate")

    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for example in examples:
        file = str(rig.conf_dir / example.name)
        assert any(line.startswith(f"{file}: valid (guest ") for line in lines), (file, lines)
    # Install media that is not there yet is only a warning.
    assert all(": warning: " in line for line in lines if ": valid (guest " not in line)


BAD_FILES = {
    "syntax": ('name = "syn"\ncpus =\n', "line 2, column 7"),
    "unknown": ('cpu = 2\n[[disk]]\npath = "/vm/unknown.img"\n', "cpu"),
    "range": ('cpus = 0\n[[disk]]\npath = "/vm/range.img"\n', "cpus"),
    "inject": ('[[disk]]\npath = "/vm/a.img,ro -s 5:0,passthru,1/0/0"\n', "disk[0].path"),
    "gfx": (
        '[graphics]\nlisten = "127.0.0.1:5900"\n[[disk]]\npath = "/vm/gfx.img"\n',
        "graphics",
    ),
    "passthru": ('passthru = ["2/0"]\n[[disk]]\npath = "/vm/pt.img"\n', "passthru[0]"),
    "nodisk": ("cpus = 2\n", "disk"),
    "sharedtap": ('[[disk]]\npath = "/vm/b.img"\n[[nic]]\ntap = "tap7"\n', "nic[0].tap"),
}


def test_every_bad_file_is_named_with_its_key_and_valid_files_stay_valid(rig: CliRig) -> None:
    for stem, (text, _) in BAD_FILES.items():
        rig.write_spec(stem, text)
    rig.write_spec("loose", '[[disk]]\npath = "/vm/loose.img"\n', mode=0o666)
    rig.write_spec("good1", '[[disk]]\npath = "/vm/good1.img"\n')
    rig.write_spec(
        "good2",
        'cpus = 2\n[[disk]]\npath = "/vm/good2.img"\n[[nic]]\ntap = "tap7"\nbridge = "bridge0"\n',
    )
    # The later-changed file loses the tap both claim.
    shared = rig.conf_dir / "sharedtap.toml"
    earlier = os.stat(rig.conf_dir / "good2.toml").st_mtime_ns
    os.utime(shared, ns=(earlier + 10**9, earlier + 10**9))

    proc = rig.cli("validate")

    assert proc.returncode == 1
    lines = proc.stdout.splitlines()

    def lines_of(stem: str) -> list[str]:
        return [line for line in lines if line.startswith(f"{rig.conf_dir / stem}.toml: ")]

    for stem, (_, key) in BAD_FILES.items():
        found = lines_of(stem)
        assert len(found) == 1, (stem, lines)
        assert found[0].startswith(f"{rig.conf_dir / stem}.toml: {key}: "), found
        assert "valid (guest" not in found[0]
    assert "`cpus`" in lines_of("unknown")[0]  # the near miss is suggested
    assert "comma" in lines_of("inject")[0]
    assert "good2" in lines_of("sharedtap")[0]
    loose = lines_of("loose")
    assert len(loose) == 1 and loose[0].startswith(f"{rig.conf_dir}/loose.toml: (file): ")
    assert "0666" in loose[0]
    assert lines_of("good1") == [f"{rig.conf_dir}/good1.toml: valid (guest good1)"]
    assert lines_of("good2") == [f"{rig.conf_dir}/good2.toml: valid (guest good2)"]
    assert len(lines) == len(BAD_FILES) + 3
