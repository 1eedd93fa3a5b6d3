"""What a boot's program printed that says it failed, rather than stopped: the lines bhyveload,
grub-bhyve and bhyve print before their failing exit (usr.sbin/bhyveload/bhyveload.c,
grub2-bhyve grub-core/kern/emu/main.c, usr.sbin/bhyve/bhyverun.c vm_loop()), read from the
boot's output, which also holds the guest's own console when it is stdio."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from reconciler.facts import boot_failure

MENU = b"Consoles: userboot\r\n\r\nFreeBSD/amd64 User boot lua, Revision 1.1\r\n" * 3


def test_bhyveload_perror_texts() -> None:
    for call in ("vm_create", "vm_open", "vm_reinit", "vm_setup_memory"):
        out = f"{call}: Cannot allocate memory\n".encode()
        assert boot_failure(out, "loader") == f"{call}: Cannot allocate memory"


def test_bhyveload_usage_and_errx() -> None:
    usage = (
        b"usage: bhyveload [-S][-c <console-device>] [-d <disk-path>] [-e <name=value>]\n"
        b"                 [-h <host-path>] [-m memsize[K|k|M|m|G|g|T|t]] <vmname>\n"
    )
    assert boot_failure(usage, "loader") == (
        "usage: bhyveload [-S][-c <console-device>] [-d <disk-path>] [-e <name=value>]"
    )
    assert boot_failure(b"bhyveload: Invalid memsize '1X'\n", "loader") == (
        "bhyveload: Invalid memsize '1X'"
    )


def test_grub_bhyve_texts() -> None:
    out = b"Could not setup memory for VM\nError in initializing VM\n"
    assert boot_failure(out, "loader") == "Could not setup memory for VM; Error in initializing VM"
    assert boot_failure(b"grub-bhyve: error: disk `hd0,msdos1' not found.\n", "loader") == (
        "grub-bhyve: error: disk `hd0,msdos1' not found."
    )
    assert boot_failure(b"Error in parsing command line arguments\n", "loader") == (
        "Error in parsing command line arguments"
    )


def test_a_menu_quit_prints_no_failure() -> None:
    assert boot_failure(MENU, "loader") is None
    assert boot_failure(b"", "loader") is None


def test_bhyve_vm_run_error_in_raw_terminal_mode() -> None:
    # 14.x EPRINTLN ends the line with \r\n while the terminal is raw.
    out = MENU + b"login: \r\nvm_run error -1, errno 6\r\n"
    assert boot_failure(out, "bhyve") == "vm_run error -1, errno 6"


def test_bhyve_usage() -> None:
    assert boot_failure(b"Usage: bhyve [-AaCDeHhPSuWwxY]\n       [-c ...]\n", "bhyve") == (
        "Usage: bhyve [-AaCDeHhPSuWwxY]"
    )


def test_each_program_is_read_for_its_own_texts() -> None:
    # bhyve's phase output still holds the loader's lines of the same boot, and the other way.
    assert boot_failure(b"vm_setup_memory: Cannot allocate memory\n", "bhyve") is None
    assert boot_failure(b"vm_run error -1, errno 6\n", "loader") is None


def test_a_line_must_be_the_programs_own_not_a_mention() -> None:
    assert boot_failure(b"the guest said: vm_run error -1, errno 6 once\n", "bhyve") is None
    assert boot_failure(b"  vm_create: Cannot allocate memory\n", "loader") is None


@given(st.binary(max_size=500))
def test_any_bytes_are_read(data: bytes) -> None:
    found = boot_failure(data, "loader")
    if found is not None:
        found.encode("utf-8", "strict")
    boot_failure(data, "bhyve")
