"""Every bad input is an error that names the file and the key, and all come at once."""

from __future__ import annotations

import pytest
from bad_specs import CASES, DISK, FILE
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import SpecError
from reconciler.guestfile import parse_guest_text


def errors_of(text: str, stem: str = "web") -> list[SpecError]:
    spec, errors = parse_guest_text(text, file=FILE, stem=stem)
    assert spec is None
    assert errors
    assert all(e.file == FILE for e in errors)
    return errors


def message_at(text: str, key: str, stem: str = "web") -> str:
    errors = errors_of(text, stem)
    found = [e.message for e in errors if e.key == key]
    assert found, f"no error at {key!r}: {[(e.key, e.message) for e in errors]}"
    return found[0]


@pytest.mark.parametrize(
    ("text", "key", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_names_the_key(text: str, key: str, fragment: str) -> None:
    assert fragment in message_at(text, key)


def test_invalid_file_stem_without_name_is_an_error_on_name() -> None:
    message = message_at(DISK, "name", stem="my guest")
    assert "rename the file or set `name`" in message


def test_invalid_file_stem_is_fine_when_name_is_set() -> None:
    spec, errors = parse_guest_text('name = "web"\n' + DISK, file=FILE, stem="my guest")
    assert errors == []
    assert spec is not None and spec.name == "web"


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("cpus = 2\nmemory = \n" + DISK, "line 2, column 10"),
        ("cpus = 2\ncpus = 3\n" + DISK, "line 2, column 9"),
        # At the end of the document: just after the last character of the last line.
        ('cpus = 2\n[[disk]]\npath = "/vm/a.img', "line 3, column 18"),
        ('cpus = 2\na = """\n\n', "line 2, column 8"),
        ("[nic\n", "line 1, column 5"),
    ],
)
def test_syntax_error_gives_the_line_and_column(text: str, line: str) -> None:
    errors = errors_of(text)
    assert [e.key for e in errors] == [line]
    assert "(at line" not in errors[0].message
    assert errors[0].message


def test_all_errors_at_once() -> None:
    text = 'cpu = 2\nmemory = "lots"\nloader = "grub"\n[graphics]\n[[disk]]\npath = "rel.img"\n'
    keys = {e.key for e in errors_of(text)}
    assert keys == {"cpu", "memory", "graphics", "disk[0].path"}


def test_errors_in_several_disks_and_nics_are_all_reported() -> None:
    text = (
        '[[disk]]\npath = "/a,b"\n[[disk]]\npath = "/vm/ok.img"\n[[disk]]\nzvol = "x"\n'
        '[[nic]]\ntap = "tap0"\n[[nic]]\ntap = "eth0"\n'
    )
    keys = {e.key for e in errors_of(text)}
    assert keys == {"disk[0].path", "disk[2].zvol", "nic[1].tap"}


PATH_ALPHABET = st.sampled_from([*"/a.-_,% \t\n\x00:é", ".."])


@given(st.lists(PATH_ALPHABET, max_size=12).map("".join))
def test_accepted_disk_paths_cannot_inject_options(path: str) -> None:
    text = f"[[disk]]\npath = {_toml_string(path)}\n"
    spec, errors = parse_guest_text(text, file=FILE, stem="web")
    if spec is None:
        assert [e.key for e in errors] == ["disk[0].path"]
        return
    device = spec.disks[0].device
    assert device.startswith("/")
    assert not any(c in device for c in ", \t\n\x00%")
    assert "//" not in device and "/../" not in device + "/" and "/./" not in device + "/"


TOKEN = st.text(alphabet=st.sampled_from(list("-ab0=, .:/\t")), max_size=8)


@given(TOKEN, TOKEN, TOKEN, TOKEN)
def test_values_that_reach_argv_never_start_an_option(
    root: str, env_key: str, tap: str, bridge: str
) -> None:
    grub = f'loader = "grub"\n[grub]\nroot = {_toml_string(root)}\n'
    bhyveload = f'[loader_env]\n{_toml_string(env_key)} = "x"\n'
    nic = f"[[nic]]\ntap = {_toml_string(tap)}\nbridge = {_toml_string(bridge)}\n"
    for text in (grub + DISK, bhyveload + DISK, DISK + nic):
        spec, _errors = parse_guest_text(text, file=FILE, stem="web")
        if spec is None:
            continue
        elements = [spec.name, spec.memory, spec.grub.root or ""]
        elements += [f"{k}={v}" for k, v in spec.loader_env]
        elements += [n.tap or "" for n in spec.nics] + [n.bridge or "" for n in spec.nics]
        for element in elements:
            assert not element.startswith("-")
            assert not any(c.isspace() for c in element)
        assert all("," not in (n.tap or "") + (n.bridge or "") for n in spec.nics)


def _toml_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    escaped = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped)
    return f'"{escaped}"'
