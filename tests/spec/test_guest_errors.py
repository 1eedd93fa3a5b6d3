"""Every bad input is an error that names the file and the key, and all come at once."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import SpecError
from reconciler.guestfile import parse_guest_text

FILE = "/conf.d/web.toml"
DISK = '[[disk]]\npath = "/vm/a.img"\n'
UEFI = 'loader = "uefi"\n'


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


CASES = [
    # (id, TOML text, key, fragment of the message)
    ("unknown-top", "cpu = 2\n" + DISK, "cpu", "did you mean `cpus`?"),
    ("unknown-far", "colour = 2\n" + DISK, "colour", "expected one of"),
    ("unknown-disk", '[[disk]]\npath = "/vm/a.img"\nsiz = "1G"\n', "disk[0].siz", "`size`"),
    ("unknown-nic", DISK + '[[nic]]\nbrige = "bridge0"\n', "nic[0].brige", "`bridge`"),
    ("unknown-install", '[install]\niso = "/i.iso"\nforced = true\n' + DISK, "install.forced",
     "`force`"),
    ("unknown-graphics", UEFI + "[graphics]\nlisten_on = 1\n" + DISK, "graphics.listen_on",
     "`listen`"),
    ("unknown-grub", 'loader = "grub"\n[grub]\nroot_dev = "cd0"\n' + DISK, "grub.root_dev",
     "`root`"),
    ("unknown-uefi", UEFI + "[uefi]\nvar = true\n" + DISK, "uefi.var", "`vars`"),
    ("cpus-zero", "cpus = 0\n" + DISK, "cpus", "between 1 and 256"),
    ("cpus-huge", "cpus = 257\n" + DISK, "cpus", "between 1 and 256"),
    ("cpus-bool", "cpus = true\n" + DISK, "cpus", "expected an integer, got a boolean"),
    ("cpus-string", 'cpus = "4"\n' + DISK, "cpus", "got a string"),
    ("cpus-float", "cpus = 2.0\n" + DISK, "cpus", "got a float"),
    ("memory-unitless", 'memory = "1024"\n' + DISK, "memory", "expected a size like"),
    ("memory-int", "memory = 1024\n" + DISK, "memory", 'size string like "16G"'),
    ("memory-zero", 'memory = "0M"\n' + DISK, "memory", "greater than zero"),
    ("memory-tiny", 'memory = "512K"\n' + DISK, "memory", "at least 1M"),
    ("memory-octal", 'memory = "0512M"\n' + DISK, "memory", "expected a size like"),
    ("state", 'state = "up"\n' + DISK, "state", '"running", "stopped"'),
    ("loader", 'loader = "uefii"\n' + DISK, "loader", 'did you mean "uefi"?'),
    ("restart", 'restart = "on_failure"\n' + DISK, "restart", 'did you mean "on-failure"?'),
    ("on-change", 'on_change = "later"\n' + DISK, "on_change", '"restart", "next-boot"'),
    ("order-bool", "order = false\n" + DISK, "order", "expected an integer"),
    ("stop-timeout-zero", 'stop_timeout = "0s"\n' + DISK, "stop_timeout", "greater than zero"),
    ("stop-timeout-neg", "stop_timeout = -5\n" + DISK, "stop_timeout", "negative"),
    ("stop-timeout-word", 'stop_timeout = "soon"\n' + DISK, "stop_timeout", "120s"),
    ("stop-timeout-bool", "stop_timeout = true\n" + DISK, "stop_timeout", "got a boolean"),
    ("bool-as-string", 'utc_clock = "yes"\n' + DISK, "utc_clock", "expected true or false"),
    ("bool-as-int", "ignore_msrs = 1\n" + DISK, "ignore_msrs", "got an integer"),
    ("wire-string", 'wire_memory = "no"\n' + DISK, "wire_memory", "true or false"),
    ("passthru-short", 'passthru = ["2/0"]\n' + DISK, "passthru[0]", "bus/slot/function"),
    ("passthru-bus", 'passthru = ["256/0/0"]\n' + DISK, "passthru[0]", "bus 0-255"),
    ("passthru-slot", 'passthru = ["2/32/0"]\n' + DISK, "passthru[0]", "slot 0-31"),
    ("passthru-func", 'passthru = ["2/0/8"]\n' + DISK, "passthru[0]", "function 0-7"),
    ("passthru-colon", 'passthru = ["pci0:2:0:0"]\n' + DISK, "passthru[0]", "bus/slot/function"),
    ("passthru-int", "passthru = [2]\n" + DISK, "passthru[0]", "got an integer"),
    ("passthru-twice", 'passthru = ["2/0/0", "02/0/0"]\n' + DISK, "passthru[1]",
     "same device as passthru[0]"),
    ("passthru-table", 'passthru = "2/0/0"\n' + DISK, "passthru", "expected an array"),
    ("env-grub", 'loader = "grub"\n[loader_env]\na = "1"\n' + DISK, "loader_env",
     'only valid with loader = "bhyveload"'),
    ("env-dash-key", '[loader_env]\n"-S" = "1"\n' + DISK, "loader_env.-S", "variable name"),
    ("env-int", "[loader_env]\nautoboot_delay = 3\n" + DISK, "loader_env.autoboot_delay",
     "expected a string"),
    ("env-control", '[loader_env]\na = "x\\ny"\n' + DISK, "loader_env.a", "control character"),
    ("env-not-table", 'loader_env = "a=1"\n' + DISK, "loader_env", "expected a table"),
    ("grub-bhyveload", '[grub]\nroot = "cd0"\n' + DISK, "grub", 'only valid with loader = "grub"'),
    ("uefi-bhyveload", "[uefi]\nvars = true\n" + DISK, "uefi", 'only valid with loader = "uefi"'),
    ("graphics-no-uefi", '[graphics]\nlisten = "127.0.0.1:5900"\n' + DISK, "graphics",
     'only valid with loader = "uefi"'),
    ("graphics-grub", 'loader = "grub"\n[graphics]\n' + DISK, "graphics", "uefi"),
    ("install-no-iso", "[install]\nforce = true\n" + DISK, "install.iso", "missing"),
    ("install-relative", '[install]\niso = "FreeBSD.iso"\n' + DISK, "install.iso", "absolute"),
    ("install-comma", '[install]\niso = "/i.iso,ro"\n' + DISK, "install.iso", "comma"),
    ("install-table", 'install = "/i.iso"\n' + DISK, "install", "expected a table"),
    ("no-disk", "cpus = 2\n", "disk", "at least one [[disk]]"),
    ("empty-disks", "disk = []\n", "disk", "at least one [[disk]]"),
    ("disk-single-table", '[disk]\npath = "/vm/a.img"\n', "disk", "write [[disk]], not [disk]"),
    ("disk-not-table", 'disk = ["/vm/a.img"]\n', "disk[0]", "expected a table"),
    ("disk-both", '[[disk]]\npath = "/vm/a.img"\nzvol = "tank/a"\n', "disk[0].zvol", "not both"),
    ("disk-neither", '[[disk]]\nsize = "1G"\n', "disk[0]", "needs `path`"),
    ("disk-relative", '[[disk]]\npath = "guest.img"\n', "disk[0].path", "absolute"),
    ("disk-injection", '[[disk]]\npath = "/vm/a.img,ro -s 5"\n', "disk[0].path", "comma"),
    ("disk-space", '[[disk]]\npath = "/vm/my disk.img"\n', "disk[0].path", "whitespace"),
    ("disk-tab", '[[disk]]\npath = "/vm/a\\tb.img"\n', "disk[0].path", "control character"),
    ("disk-newline", '[[disk]]\npath = "/vm/a\\nb.img"\n', "disk[0].path", "control character"),
    ("disk-control", '[[disk]]\npath = "/vm/a\\u0001.img"\n', "disk[0].path", "control"),
    ("disk-percent", '[[disk]]\npath = "/vm/%(name).img"\n', "disk[0].path", "`%`"),
    ("disk-dotdot", '[[disk]]\npath = "/vm/../etc/a.img"\n', "disk[0].path", "normalised"),
    ("disk-dot", '[[disk]]\npath = "/vm/./a.img"\n', "disk[0].path", "normalised"),
    ("disk-slashes", '[[disk]]\npath = "/vm//a.img"\n', "disk[0].path", "normalised"),
    ("disk-dir", '[[disk]]\npath = "/vm/"\n', "disk[0].path", "directory"),
    ("disk-long", '[[disk]]\npath = "/' + "a" * 1100 + '"\n', "disk[0].path", "longer"),
    ("zvol-no-dataset", '[[disk]]\nzvol = "tank"\n', "disk[0].zvol", "zroot/vm/disk0"),
    ("zvol-dash", '[[disk]]\nzvol = "-o/x"\n', "disk[0].zvol", "not start with `-`"),
    ("zvol-dash-child", '[[disk]]\nzvol = "tank/-x"\n', "disk[0].zvol", "not start with `-`"),
    ("zvol-dotdot", '[[disk]]\nzvol = "tank/../x"\n', "disk[0].zvol", "component"),
    ("zvol-space", '[[disk]]\nzvol = "tank/a b"\n', "disk[0].zvol", "component"),
    ("zvol-comma", '[[disk]]\nzvol = "tank/a,ro"\n', "disk[0].zvol", "component"),
    ("zvol-snapshot", '[[disk]]\nzvol = "tank/a@snap"\n', "disk[0].zvol", "component"),
    ("zvol-empty-part", '[[disk]]\nzvol = "tank//a"\n', "disk[0].zvol", "zroot/vm/disk0"),
    ("zvol-pool-digit", '[[disk]]\nzvol = "1tank/a"\n', "disk[0].zvol", "starts with a letter"),
    ("disk-size-unitless", '[[disk]]\npath = "/vm/a.img"\nsize = "16"\n', "disk[0].size",
     "expected a size like"),
    ("disk-size-int", '[[disk]]\npath = "/vm/a.img"\nsize = 16\n', "disk[0].size", "size string"),
    ("disk-emulation", '[[disk]]\npath = "/vm/a.img"\nemulation = "virtio"\n',
     "disk[0].emulation", "did you mean"),
    ("disk-option", '[[disk]]\npath = "/vm/a.img"\noptions = ["sync"]\n', "disk[0].options[0]",
     "sectorsize=N"),
    ("disk-option-case", '[[disk]]\npath = "/vm/a.img"\noptions = ["RO"]\n',
     "disk[0].options[0]", 'did you mean "ro"?'),
    ("disk-option-inject", '[[disk]]\npath = "/vm/a.img"\noptions = ["ro,nocache"]\n',
     "disk[0].options[0]", "expected one of"),
    ("disk-sector-pow2", '[[disk]]\npath = "/vm/a.img"\noptions = ["sectorsize=1000"]\n',
     "disk[0].options[0]", "powers of two"),
    ("disk-sector-small", '[[disk]]\npath = "/vm/a.img"\noptions = ["sectorsize=256"]\n',
     "disk[0].options[0]", "512 to 65536"),
    ("disk-sector-order", '[[disk]]\npath = "/vm/a.img"\noptions = ["sectorsize=4096/512"]\n',
     "disk[0].options[0]", "cannot exceed"),
    ("disk-option-twice", '[[disk]]\npath = "/vm/a.img"\noptions = ["ro", "ro"]\n',
     "disk[0].options[1]", "already given"),
    ("disk-sector-twice",
     '[[disk]]\npath = "/vm/a.img"\noptions = ["sectorsize=512", "sectorsize=4096"]\n',
     "disk[0].options[1]", "already given"),
    ("disk-shared-path", DISK + DISK, "disk[1].path", "same device as disk[0]"),
    ("disk-shared-zvol", '[[disk]]\npath = "/dev/zvol/tank/a"\n[[disk]]\nzvol = "tank/a"\n',
     "disk[1].zvol", "same device as disk[0]"),
    ("tap-comma", DISK + '[[nic]]\ntap = "tap0,mac=00:00:00:00:00:01"\n', "nic[0].tap", "tap0"),
    ("tap-space", DISK + '[[nic]]\ntap = "tap0 -s"\n', "nic[0].tap", "tap interface name"),
    ("tap-tun", DISK + '[[nic]]\ntap = "tun0"\n', "nic[0].tap", "tap interface name"),
    ("tap-long", DISK + '[[nic]]\ntap = "tap123456"\n', "nic[0].tap", "tap interface name"),
    ("tap-upper", DISK + '[[nic]]\ntap = "TAP0"\n', "nic[0].tap", "tap interface name"),
    ("tap-shared", DISK + '[[nic]]\ntap = "tap0"\n[[nic]]\ntap = "tap0"\n', "nic[1].tap",
     "same tap as nic[0]"),
    ("bridge-upper", DISK + '[[nic]]\nbridge = "Bridge0"\n', "nic[0].bridge", "interface name"),
    ("bridge-comma", DISK + '[[nic]]\nbridge = "bridge0,x"\n', "nic[0].bridge", "interface name"),
    ("bridge-long", DISK + '[[nic]]\nbridge = "bridge0123456789"\n', "nic[0].bridge",
     "interface name"),
    ("bridge-dash", DISK + '[[nic]]\nbridge = "-bridge"\n', "nic[0].bridge", "interface name"),
    ("nic-emulation", DISK + '[[nic]]\nemulation = "virtio"\n', "nic[0].emulation",
     'did you mean "virtio-net"?'),
    ("mac-short", DISK + '[[nic]]\nmac = "00:11:22:33:44"\n', "nic[0].mac", "MAC address"),
    ("mac-inject", DISK + '[[nic]]\nmac = "00:11:22:33:44:55,mtu=9000"\n', "nic[0].mac", "MAC"),
    ("mac-multicast", DISK + '[[nic]]\nmac = "01:00:5e:00:00:01"\n', "nic[0].mac", "multicast"),
    ("mac-broadcast", DISK + '[[nic]]\nmac = "ff:ff:ff:ff:ff:ff"\n', "nic[0].mac", "multicast"),
    ("mac-zero", DISK + '[[nic]]\nmac = "00:00:00:00:00:00"\n', "nic[0].mac", "all-zero"),
    ("mac-shared",
     DISK + '[[nic]]\nmac = "02:00:00:00:00:01"\n[[nic]]\nmac = "02:00:00:00:00:01"\n',
     "nic[1].mac", "same MAC"),
    ("nic-single-table", DISK + '[nic]\ntap = "tap0"\n', "nic", "write [[nic]], not [nic]"),
    ("listen-no-port", UEFI + '[graphics]\nlisten = "localhost"\n' + DISK, "graphics.listen",
     "host:port"),
    ("listen-no-host", UEFI + '[graphics]\nlisten = ":5900"\n' + DISK, "graphics.listen",
     "host:port"),
    ("listen-bad-ip", UEFI + '[graphics]\nlisten = "1.2.3.256:5900"\n' + DISK, "graphics.listen",
     "not an IPv4 address"),
    ("listen-dash", UEFI + '[graphics]\nlisten = "-h:5900"\n' + DISK, "graphics.listen",
     "host name"),
    ("listen-comma", UEFI + '[graphics]\nlisten = "a,wait:5900"\n' + DISK, "graphics.listen",
     "host name"),
    ("listen-port-zero", UEFI + '[graphics]\nlisten = "127.0.0.1:0"\n' + DISK,
     "graphics.listen", "1 to 65535"),
    ("listen-port-word", UEFI + '[graphics]\nlisten = "127.0.0.1:vnc"\n' + DISK,
     "graphics.listen", "1 to 65535"),
    ("width", UEFI + "[graphics]\nwidth = 320\n" + DISK, "graphics.width", "640 and 3840"),
    ("height", UEFI + "[graphics]\nheight = 4000\n" + DISK, "graphics.height", "480 and 2160"),
    ("graphics-wait", UEFI + '[graphics]\nwait = "yes"\n' + DISK, "graphics.wait", "true or false"),
    ("firmware-relative", UEFI + '[uefi]\nfirmware = "BHYVE_UEFI.fd"\n' + DISK, "uefi.firmware",
     "absolute"),
    ("firmware-comma", UEFI + '[uefi]\nfirmware = "/fw.fd,/vars.fd"\n' + DISK, "uefi.firmware",
     "comma"),
    ("grub-root-space", 'loader = "grub"\n[grub]\nroot = "hd0 msdos1"\n' + DISK, "grub.root",
     "whitespace"),
    ("grub-root-dash", 'loader = "grub"\n[grub]\nroot = "-d/tmp"\n' + DISK, "grub.root",
     "must not start with `-`"),
    ("grub-root-empty", 'loader = "grub"\n[grub]\nroot = ""\n' + DISK, "grub.root", "grub device"),
    ("grub-config-nul", 'loader = "grub"\n[grub]\nconfig = "boot\\u0000"\n' + DISK, "grub.config",
     "control character"),
    ("console-stdio", 'console = "stdio"\n' + DISK, "console", "absolute"),
    ("console-space", 'console = "/dev/nmdm 0A"\n' + DISK, "console", "whitespace"),
    ("console-comma", 'console = "/dev/nmdm0A,x"\n' + DISK, "console", "comma"),
    ("name-bad", 'name = "web server"\n' + DISK, "name", "not a valid guest name"),
    ("name-dash", 'name = "-web"\n' + DISK, "name", "not a valid guest name"),
    ("name-long", 'name = "' + "a" * 32 + '"\n' + DISK, "name", "not a valid guest name"),
    ("name-int", "name = 5\n" + DISK, "name", "expected a string"),
    ("pci-full", "".join(f'[[disk]]\npath = "/vm/d{i}.img"\n' for i in range(28)), "disk",
     "do not fit the 27 PCI slots 2-28"),
    ("pci-full-mixed",
     'passthru = ["1/0/0", "1/0/1"]\n'
     + "".join(f'[[disk]]\npath = "/vm/d{i}.img"\n' for i in range(20))
     + "".join(f'[[nic]]\ntap = "tap{i}"\n' for i in range(6)),
     "disk", "28 devices"),
]  # fmt: skip


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
