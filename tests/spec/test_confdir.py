"""conf.d as a whole: valid files stay valid beside broken ones, last good specs, cheap rescans."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from reconciler.guestfile import is_spec_file_name
from reconciler.specdir import ConfDir, ConfSnapshot

NOT_ROOT = 1000


def write(directory: Path, name: str, text: str, *, mtime_s: int | None = None) -> Path:
    path = directory / name
    path.write_text(text)
    path.chmod(0o644)
    if mtime_s is not None:
        os.utime(path, ns=(mtime_s * 10**9, mtime_s * 10**9))
    return path


def guest(tap: str = "tap0", *, extra: str = "", disk: str | None = None) -> str:
    return (
        f'{extra}\n[[disk]]\npath = "{disk or "/vm/" + tap + ".img"}"\n'
        f'[[nic]]\ntap = "{tap}"\nbridge = "bridge0"\n'
    )


def problems(snapshot: ConfSnapshot) -> list[tuple[str, str]]:
    return [(Path(p.file).name, p.key) for p in snapshot.problems]


def status(snapshot: ConfSnapshot, path: Path) -> str:
    return snapshot.files[str(path)].status


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    directory = tmp_path / "conf.d"
    directory.mkdir()
    return directory


def test_every_bad_file_is_reported_and_valid_files_stay_valid(conf: Path) -> None:
    good = write(conf, "good.toml", guest("tap0"))
    bad = {
        "syntax.toml": ("cpus = \n", "line 1, column 8"),
        "unknown.toml": ("cpu = 2\n" + guest("tap1"), "cpu"),
        "range.toml": ("cpus = 0\n" + guest("tap2"), "cpus"),
        "inject.toml": ('[[disk]]\npath = "/vm/a.img,ro -s 5"\n', "disk[0].path"),
        "tapcomma.toml": (guest("tap3,mac=02:00:00:00:00:01"), "nic[0].tap"),
        "vnc.toml": ("[graphics]\n" + guest("tap4"), "graphics"),
        "passthru.toml": ('passthru = ["1/2"]\n' + guest("tap5"), "passthru[0]"),
        "nodisk.toml": ("cpus = 2\n", "disk"),
    }
    for name, (text, _key) in bad.items():
        write(conf, name, text)
    snapshot = ConfDir(conf, euid=NOT_ROOT).scan()
    assert set(snapshot.guests) == {"good"}
    assert status(snapshot, good) == "valid"
    for name, (_text, key) in bad.items():
        assert (name, key) in problems(snapshot)
        assert status(snapshot, conf / name) == "invalid"
    assert all(not p.warning for p in snapshot.problems)


def test_problems_are_sorted_by_file_then_key(conf: Path) -> None:
    write(conf, "b.toml", "cpu = 1\nmemroy = 1\n")
    write(conf, "a.toml", "zz = 1\n" + guest())
    found = problems(ConfDir(conf, euid=NOT_ROOT).scan())
    assert found == sorted(found)
    assert found[0] == ("a.toml", "zz")


def test_group_or_world_writable_file_is_refused(conf: Path) -> None:
    write(conf, "good.toml", guest("tap0"))
    loose = write(conf, "loose.toml", guest("tap1"))
    loose.chmod(0o666)
    snapshot = ConfDir(conf, euid=NOT_ROOT).scan()
    assert set(snapshot.guests) == {"good"}
    assert status(snapshot, loose) == "refused"
    [problem] = snapshot.problems
    assert (problem.file, problem.key) == (str(loose), "(file)")
    assert "0666" in problem.message


def test_group_writable_alone_is_refused(conf: Path) -> None:
    path = write(conf, "g.toml", guest())
    path.chmod(0o664)
    snapshot = ConfDir(conf, euid=NOT_ROOT).scan()
    assert status(snapshot, path) == "refused"


def test_as_root_a_file_not_owned_by_root_is_refused(conf: Path) -> None:
    path = write(conf, "mine.toml", guest())
    if os.geteuid() == 0:
        os.chown(path, 4321, -1)
    expected_uid = os.stat(path).st_uid
    assert expected_uid != 0
    snapshot = ConfDir(conf, euid=0).scan()
    assert snapshot.guests == {}
    assert status(snapshot, path) == "refused"
    assert f"uid {expected_uid}" in snapshot.problems[0].message


def test_editor_debris_dotfiles_and_directories_are_ignored(conf: Path) -> None:
    write(conf, "web.toml", guest())
    for name in (".#web.toml", "#web.toml#", "web.toml~", ".web.toml.swp", ".hidden.toml"):
        write(conf, name, "not toml at all [")
    write(conf, "notes.txt", "[")
    (conf / "sub.toml").mkdir()
    snapshot = ConfDir(conf, euid=NOT_ROOT).scan()
    assert list(snapshot.files) == [str(conf / "web.toml")]
    assert snapshot.problems == ()


@pytest.mark.parametrize(
    ("name", "is_spec"),
    [
        ("web.toml", True),
        ("a.b.toml", True),
        (".toml", False),
        (".web.toml", False),
        (".#web.toml", False),
        ("#web.toml#", False),
        ("web.toml~", False),
        ("web.toml.swp", False),
        ("web.toml.tmp", False),
        ("web.TOML", False),
        ("~web.toml", False),
        ("sub/web.toml", False),
        ("4913", False),
    ],
)
def test_is_spec_file_name(name: str, is_spec: bool) -> None:
    assert is_spec_file_name(name) is is_spec


def test_the_watcher_and_the_scan_share_one_name_rule() -> None:
    from reconciler.watch import ConfWatcher

    accept = inspect.signature(ConfWatcher).parameters["accept"]
    assert accept.default is is_spec_file_name


def test_broken_edit_keeps_the_last_good_spec(conf: Path) -> None:
    path = write(conf, "web.toml", "cpus = 2\n" + guest(), mtime_s=1000)
    confdir = ConfDir(conf, euid=NOT_ROOT)
    first = confdir.scan()
    assert first.guests["web"].cpus == 2

    write(conf, "web.toml", "cpus = 0\n" + guest(), mtime_s=2000)
    broken = confdir.scan()
    assert broken.guests["web"] == first.guests["web"]
    assert broken.files[str(path)].status == "invalid"
    assert broken.files[str(path)].guest == "web"
    assert problems(broken) == [("web.toml", "cpus")]
    assert broken.generation == first.generation

    write(conf, "web.toml", "cpus = 4\n" + guest(), mtime_s=3000)
    fixed = confdir.scan()
    assert fixed.guests["web"].cpus == 4
    assert fixed.problems == ()
    assert fixed.generation == first.generation + 1


def test_a_loose_chmod_keeps_the_last_good_spec(conf: Path) -> None:
    path = write(conf, "web.toml", guest())
    confdir = ConfDir(conf, euid=NOT_ROOT)
    good = confdir.scan().guests["web"]
    path.chmod(0o666)
    refused = confdir.scan()
    assert refused.guests["web"] == good
    assert refused.files[str(path)].status == "refused"


def test_a_fresh_scan_has_no_last_good(conf: Path) -> None:
    write(conf, "web.toml", guest())
    ConfDir(conf, euid=NOT_ROOT).scan()
    write(conf, "web.toml", "cpus = 0\n" + guest())
    snapshot = ConfDir(conf, euid=NOT_ROOT).scan()
    assert snapshot.guests == {}


def test_files_are_reparsed_only_when_their_stat_changes(conf: Path) -> None:
    write(conf, "a.toml", guest("tap0"), mtime_s=1000)
    b = write(conf, "b.toml", guest("tap1"), mtime_s=1000)
    confdir = ConfDir(conf, euid=NOT_ROOT)
    confdir.scan()
    assert confdir.parses == 2
    confdir.scan()
    confdir.scan()
    assert confdir.parses == 2

    os.utime(b, ns=(2000 * 10**9, 2000 * 10**9))
    confdir.scan()
    assert confdir.parses == 3

    b.chmod(0o600)
    confdir.scan()
    assert confdir.parses == 4


def test_a_rename_over_the_file_is_noticed_even_with_the_same_mtime(conf: Path) -> None:
    path = write(conf, "web.toml", "cpus = 2\n" + guest(), mtime_s=1000)
    confdir = ConfDir(conf, euid=NOT_ROOT)
    assert confdir.scan().guests["web"].cpus == 2
    replacement = write(conf, "web.tmp", "cpus = 3\n" + guest(), mtime_s=1000)
    replacement.rename(path)  # what Ansible, Salt and Puppet do: new inode, same name
    assert confdir.scan().guests["web"].cpus == 3


def test_removed_file_removes_its_guest(conf: Path) -> None:
    write(conf, "a.toml", guest("tap0"))
    b = write(conf, "b.toml", guest("tap1"))
    confdir = ConfDir(conf, euid=NOT_ROOT)
    before = confdir.scan()
    b.unlink()
    after = confdir.scan()
    assert set(after.guests) == {"a"}
    assert str(b) not in after.files
    assert after.generation == before.generation + 1
    assert confdir.scan().generation == after.generation


def test_a_removed_invalid_file_takes_its_last_good_guest_with_it(conf: Path) -> None:
    path = write(conf, "web.toml", guest(), mtime_s=1000)
    confdir = ConfDir(conf, euid=NOT_ROOT)
    confdir.scan()
    write(conf, "web.toml", "cpus = 0\n", mtime_s=2000)
    assert "web" in confdir.scan().guests
    path.unlink()
    assert confdir.scan().guests == {}


def test_conflicting_files_refuse_the_later_changed_one(conf: Path) -> None:
    old = write(conf, "old.toml", guest("tap0", disk="/vm/old.img"), mtime_s=1000)
    new = write(conf, "new.toml", guest("tap0", disk="/vm/new.img"), mtime_s=2000)
    snapshot = ConfDir(conf, euid=NOT_ROOT).scan()
    assert set(snapshot.guests) == {"old"}
    assert status(snapshot, old) == "valid"
    assert status(snapshot, new) == "conflict"
    [problem] = snapshot.problems
    assert (problem.file, problem.key) == (str(new), "nic[0].tap")
    assert str(old) in problem.message


def test_shared_disk_and_name_across_files(conf: Path) -> None:
    write(conf, "a.toml", guest("tap0", disk="/vm/shared.img"), mtime_s=1000)
    write(conf, "b.toml", guest("tap1", disk="/vm/shared.img"), mtime_s=2000)
    write(conf, "c.toml", 'name = "a"\n' + guest("tap2", disk="/vm/c.img"), mtime_s=3000)
    snapshot = ConfDir(conf, euid=NOT_ROOT).scan()
    assert set(snapshot.guests) == {"a"}
    assert problems(snapshot) == [("b.toml", "disk[0].path"), ("c.toml", "name")]


def test_the_incumbent_keeps_running_when_a_newcomer_is_older(conf: Path) -> None:
    running = write(conf, "running.toml", guest("tap0", disk="/vm/r.img"), mtime_s=5000)
    confdir = ConfDir(conf, euid=NOT_ROOT)
    confdir.scan()
    # An old file copied in with its timestamp preserved (cp -p, rsync -t, git checkout).
    newcomer = write(conf, "newcomer.toml", guest("tap0", disk="/vm/n.img"), mtime_s=1000)
    snapshot = confdir.scan()
    assert set(snapshot.guests) == {"running"}
    assert status(snapshot, running) == "valid"
    assert status(snapshot, newcomer) == "conflict"


def test_an_edit_that_conflicts_keeps_the_last_good_spec(conf: Path) -> None:
    write(conf, "a.toml", guest("tap0", disk="/vm/a.img"), mtime_s=1000)
    b = write(conf, "b.toml", guest("tap1", disk="/vm/b.img"), mtime_s=1000)
    confdir = ConfDir(conf, euid=NOT_ROOT)
    before = confdir.scan()
    write(conf, "b.toml", guest("tap0", disk="/vm/b.img"), mtime_s=2000)
    snapshot = confdir.scan()
    assert snapshot.guests == before.guests
    assert snapshot.guests["b"].nics[0].tap == "tap1"
    assert snapshot.files[str(b)].status == "conflict"
    assert problems(snapshot) == [("b.toml", "nic[0].tap")]
    assert snapshot.generation == before.generation


def test_missing_iso_and_firmware_are_warnings_checked_under_root(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    root = tmp_path / "host"
    write(conf, "inst.toml", '[install]\niso = "/iso/fbsd.iso"\n' + guest("tap0"))
    write(conf, "efi.toml", 'loader = "uefi"\n' + guest("tap1"))
    confdir = ConfDir(conf, root=root, euid=NOT_ROOT)
    snapshot = confdir.scan()
    assert set(snapshot.guests) == {"inst", "efi"}
    assert problems(snapshot) == [("efi.toml", "uefi.firmware"), ("inst.toml", "install.iso")]
    assert all(p.warning for p in snapshot.problems)
    assert snapshot.errors == ()
    assert all(status(snapshot, conf / n) == "valid" for n in ("inst.toml", "efi.toml"))

    (root / "iso").mkdir(parents=True)
    (root / "iso" / "fbsd.iso").write_bytes(b"")
    firmware = root / "usr/local/share/uefi-firmware/BHYVE_UEFI.fd"
    firmware.parent.mkdir(parents=True)
    firmware.write_bytes(b"")
    assert confdir.scan().problems == ()


def test_non_utf8_file_is_invalid(conf: Path) -> None:
    path = conf / "bin.toml"
    path.write_bytes(b"cpus = 1\n\xff\xfe\n")
    path.chmod(0o644)
    snapshot = ConfDir(conf, euid=NOT_ROOT).scan()
    assert problems(snapshot) == [("bin.toml", "(file)")]


def test_missing_directory_is_a_problem_and_keeps_the_guests(tmp_path: Path) -> None:
    conf = tmp_path / "conf.d"
    conf.mkdir()
    write(conf, "web.toml", guest())
    confdir = ConfDir(conf, euid=NOT_ROOT)
    before = confdir.scan()
    (conf / "web.toml").unlink()
    conf.rmdir()
    snapshot = confdir.scan()
    assert snapshot.guests == before.guests
    assert [p.key for p in snapshot.problems] == ["(directory)"]


def test_symlinked_spec_is_read(conf: Path, tmp_path: Path) -> None:
    target = write(tmp_path, "shared-web.toml", guest())
    (conf / "web.toml").symlink_to(target)
    assert set(ConfDir(conf, euid=NOT_ROOT).scan().guests) == {"web"}


def test_claims_held_outside_the_files_refuse_a_file_and_name_the_holder(conf: Path) -> None:
    path = write(conf, "web.toml", guest("tap3"))
    confdir = ConfDir(conf, euid=NOT_ROOT, claims={("tap", "tap3"): "db"})
    snapshot = confdir.scan()
    assert snapshot.guests == {}
    assert status(snapshot, path) == "conflict"
    [problem] = snapshot.problems
    assert problem.key == "nic[0].tap" and "guest `db`" in problem.message


def test_new_claims_are_settled_on_the_next_scan_without_reparsing(conf: Path) -> None:
    write(conf, "web.toml", guest("tap3"))
    confdir = ConfDir(conf, euid=NOT_ROOT)
    assert set(confdir.scan().guests) == {"web"}
    confdir.claims = {("tap", "tap3"): "web"}
    assert set(confdir.scan().guests) == {"web"}
    # Another guest now holds the tap: the file is refused, and nothing was read again.
    confdir.claims = {("tap", "tap3"): "db"}
    snapshot = confdir.scan()
    assert confdir.parses == 1
    assert snapshot.files[str(conf / "web.toml")].status == "conflict"
    assert [p.key for p in snapshot.problems] == ["nic[0].tap"]
