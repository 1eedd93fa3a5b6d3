"""The rules a `[cloud_init]` value must follow: SSH keys, host names, addresses, and the
user-data and network-config texts cloud-init will read.

Pure. The `*_problem` functions take a value and return why it is wrong (a message) or None;
the `schema.Rule`s below apply them to the keys `guestkeys.CLOUD_INIT` declares, reporting at
the key's dotted path as every other guest key does. `reconciler.cloudinit` renders the seed
from what passes.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import TYPE_CHECKING, Any

from reconciler.valuerules import HOST_NAME_RE, HOST_NAME_RULE, MAX_HOST_NAME, describe

if TYPE_CHECKING:
    from reconciler.tomlreader import Section

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

MAX_CONTENT = 1 << 20  # user-data or network-config text; the caller reads at most one more byte
PATH_MAX = 1023
# OpenSSH sshd(8), AUTHORIZED_KEYS FILE FORMAT: the key types a public key line starts with.
SSH_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
_BASE64_RE = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_OTHER_HEADERS = (
    "#cloud-config-archive",
    "#cloud-boothook",
    "#include",
    "#part-handler",
    "## template: jinja",
    "content-type:",
)
# cloud-init reads user-data as MIME whenever these bytes appear near its start
# (cloudinit/user_data.py, convert_string).
_MIME_MARK = "mime-version:"
_MIME_WINDOW = 4096


def is_path(value: str) -> bool:
    """Whether a `user_data`/`network_config` value names a file (else it is the text itself)."""
    return value.startswith("/") and "\n" not in value


def _control(text: str, allowed: str = "") -> str | None:
    bad = next((c for c in text if (ord(c) < 0x20 or ord(c) == 0x7F) and c not in allowed), None)
    return None if bad is None else bad.encode("unicode_escape").decode("ascii")


def _show(text: str) -> str:
    short = text if len(text) <= 40 else text[:37] + "..."
    return '"' + short.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


def ssh_key_problem(text: str) -> str | None:
    """Why `text` is not one OpenSSH public key line (`TYPE BASE64 [COMMENT]`), or None."""
    bad = _control(text)
    if bad is not None:
        return f"must be one line with no control characters, found {bad}"
    parts = text.split(None, 2)
    if len(parts) < 2:
        return (
            'expected an OpenSSH public key like "ssh-ed25519 AAAA... user@host", '
            f"got {_show(text)}"
        )
    kind, blob = parts[0], parts[1]
    if kind not in SSH_KEY_TYPES:
        if "=" in kind or "," in kind:
            return "authorized_keys options are not taken here: give the key alone"
        return f"unknown key type {_show(kind)}; expected one of " + ", ".join(SSH_KEY_TYPES)
    if _BASE64_RE.fullmatch(blob) is None or len(blob) % 4:
        return "the key's second field is not base64: was the key cut or wrapped?"
    try:
        raw = base64.b64decode(blob, validate=True)
    except binascii.Error:
        return "the key's second field is not base64: was the key cut or wrapped?"
    # RFC 4253 §6.6: the key blob is SSH strings (RFC 4251 §5: a uint32 length, then the
    # bytes), its own type first and the key's parts after it; a cut key breaks that framing.
    fields = _ssh_strings(raw)
    if fields is None or len(fields) < 2 or fields[0] != kind.encode():
        return f"the key data is not a whole {kind} key: was the key cut, or its type changed?"
    return None


def _ssh_strings(raw: bytes) -> list[bytes] | None:
    fields = []
    offset = 0
    while offset < len(raw):
        end = offset + 4 + int.from_bytes(raw[offset : offset + 4], "big")
        if offset + 4 > len(raw) or end > len(raw):
            return None
        fields.append(raw[offset + 4 : end])
        offset = end
    return fields


def key_identity(line: str) -> tuple[str, ...]:
    """A key line's (type, blob): two lines naming the same key with other comments are one."""
    tokens = line.split()
    for index, token in enumerate(tokens[:-1]):
        if token in SSH_KEY_TYPES:
            return (token, tokens[index + 1])
    return tuple(tokens)


def hostname_problem(name: str) -> str | None:
    if len(name) > MAX_HOST_NAME or HOST_NAME_RE.fullmatch(name) is None:
        return (
            f"{_show(name)} is not a valid host name: {HOST_NAME_RULE}, "
            f"at most {MAX_HOST_NAME} in all"
        )
    return None


def _yaml_mapping(text: str) -> tuple[dict[Any, Any] | None, str | None]:
    # Imported here: only guests with [cloud_init] need PyYAML, and every start of the CLI and
    # the daemon would pay for its import (tests/cli/test_start_up_imports.py).
    import yaml

    try:
        loaded = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        where = f"line {exc.problem_mark.line + 1}: " if exc.problem_mark is not None else ""
        return None, f"is not valid YAML: {where}{exc.problem or exc.context}"
    except yaml.YAMLError as exc:
        return None, f"is not valid YAML: {exc}"
    except RecursionError:
        return None, "is not valid YAML: it nests too deeply"
    if loaded is None:
        return {}, None
    if not isinstance(loaded, dict):
        kind = "a list" if isinstance(loaded, list) else "a single value"
        return None, f"must be a YAML mapping (`key: value` lines), got {kind}"
    return loaded, None


def _text_limits(text: str) -> str | None:
    if len(text) > MAX_CONTENT:
        return f"is longer than {MAX_CONTENT} characters"
    if "\0" in text:
        return "must not contain NUL characters"
    return None


def _header_problem(first: str) -> str | None:
    lowered = first.lower()
    if first.startswith("#!") or lowered == "#cloud-config":
        return None
    if any(lowered.startswith(header) for header in _OTHER_HEADERS):
        return f'{_show(first)} user-data is not taken here: use "#cloud-config" or a "#!" script'
    return (
        'the first line must be "#cloud-config" (YAML follows) or "#!" (a script), '
        f"got {_show(first)}"
    )


def _mime_problem(text: str) -> str | None:
    if _MIME_MARK in text[:_MIME_WINDOW].lower():
        return (
            f"contains `MIME-Version:` in its first {_MIME_WINDOW} characters, which makes "
            "cloud-init read it as a MIME message"
        )
    return None


def split_user_data(text: str) -> tuple[str | None, dict[Any, Any] | None, str | None]:
    """(kind, cloud-config mapping, problem): kind is "cloud-config" or "script"."""
    first = text.split("\n", 1)[0].rstrip("\r\t ")
    problem = _text_limits(text) or _mime_problem(text) or _header_problem(first)
    if problem is not None:
        return None, None, problem
    if first.startswith("#!"):
        return "script", None, None
    config, problem = _yaml_mapping(text)
    if config is None:
        return None, None, problem
    present = config.get("ssh_authorized_keys")
    if present is not None and not (
        isinstance(present, list) and all(isinstance(k, str) for k in present)
    ):
        return None, None, "its `ssh_authorized_keys` must be a list of key strings"
    return "cloud-config", config, None


def user_data_problem(text: str) -> str | None:
    """Why `text` is not user-data this project can seed, or None.

    cloud-init tells formats apart by their first line (doc/rtd/reference/format.rst, "Headers
    and content types"); two are taken here: `#cloud-config`, whose rest must be a YAML mapping,
    and `#!`, a script run once per instance.
    """
    _kind, _config, problem = split_user_data(text)
    return problem


def network_config_problem(text: str) -> str | None:
    """Why `text` is not network config cloud-init reads (version 1 or 2, YAML), or None."""
    problem = _text_limits(text)
    if problem is not None:
        return problem
    config, problem = _yaml_mapping(text)
    if config is None:
        return problem
    # nocloud.rst: the file has no top-level `network` key; cloud-init also accepts one.
    inner = config.get("network")
    if isinstance(inner, dict) and "version" in inner:
        config = inner
    if config.get("version") not in (1, 2):
        return "needs `version: 2` (or 1): the network config formats cloud-init reads"
    return None


# --- Rules of the [cloud_init] keys (schema.Rule: section, key, value of the right TOML type) --


def ssh_keys(section: Section, key: str, items: list[Any]) -> tuple[str, ...]:
    keys: list[str] = []
    seen: dict[tuple[str, ...], int] = {}
    for index, item in enumerate(items):
        path = f"{section.path(key)}[{index}]"
        if not isinstance(item, str):
            section.reader.error(path, f"expected a string, got {describe(item)}")
            continue
        problem = ssh_key_problem(item)
        if problem is None and (identity := key_identity(item)) in seen:
            problem = f"same key as {key}[{seen[identity]}]"
        if problem is not None:
            section.reader.error(path, problem)
            continue
        seen[key_identity(item)] = index
        keys.append(item.strip())
    return tuple(keys)


def _content(section: Section, key: str, text: str, problem_of: Any) -> str | None:
    """An inline text (checked with `problem_of`) or the absolute path of a file, whose
    content the edge reads and checks with the same rule."""
    if is_path(text):
        bad = _control(text)
        if bad is not None or len(text) > PATH_MAX or text.endswith("/"):
            section.error(key, f"{_show(text)} is not a usable file path")
            return None
        return text
    problem = problem_of(text)
    if problem is not None:
        hint = "" if "\n" in text else " (a file is named by its absolute path)"
        section.error(key, problem + hint)
        return None
    return text


def user_data(section: Section, key: str, text: str) -> str | None:
    return _content(section, key, text, user_data_problem)


def network_config(section: Section, key: str, text: str) -> str | None:
    return _content(section, key, text, network_config_problem)


def hostname(section: Section, key: str, text: str) -> str | None:
    problem = hostname_problem(text)
    if problem is not None:
        section.error(key, problem)
        return None
    return text


def guest_name_problem(name: str) -> str | None:
    """Why the guest's name cannot be its host name (when `hostname` is not set), or None."""
    if hostname_problem(name) is None:
        return None
    return (
        f"the guest name {_show(name)} is not a valid host name ({HOST_NAME_RULE}): set `hostname`"
    )


def address(section: Section, key: str, text: str) -> str | None:
    try:
        interface = ipaddress.ip_interface(text)
    except ValueError:
        interface = None
    if interface is None or "/" not in text:
        section.error(
            key, f'expected an address with its prefix like "192.0.2.21/24", got {_show(text)}'
        )
        return None
    net = interface.network
    if net.num_addresses > 2 and interface.ip in (net.network_address, net.broadcast_address):
        section.error(
            key, f"{interface.ip} is the network's own or its broadcast address, not a host's"
        )
        return None
    return str(interface)


def ip_address(section: Section, key: str, text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        section.error(key, f"expected an IP address, got {_show(text)}")
        return None


def nameservers(section: Section, key: str, items: list[Any]) -> tuple[str, ...]:
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        path = f"{section.path(key)}[{index}]"
        if not isinstance(item, str):
            section.reader.error(path, f"expected a string, got {describe(item)}")
            continue
        try:
            text = str(ipaddress.ip_address(item))
        except ValueError:
            section.reader.error(path, f"expected an IP address, got {_show(item)}")
            continue
        if text in seen:
            section.reader.error(path, f"same address as {key}[{seen[text]}]")
            continue
        seen[text] = index
    return tuple(seen)


def network_table(section: Section, values: dict[str, Any]) -> None:
    """The gateway must be another host on the guest's own network."""
    gateway, address_text = values.get("gateway"), values.get("address")
    if gateway is None or address_text is None:
        return
    interface = ipaddress.ip_interface(address_text)
    ip = ipaddress.ip_address(gateway)
    if ip.version != interface.version:
        problem = f"an IPv{ip.version} gateway for an IPv{interface.version} address"
    elif ip == interface.ip:
        problem = "is the guest's own address"
    elif ip not in interface.network:
        problem = (
            f"{ip} is outside {interface.network}: a gateway must be on the guest's network "
            "(use `network_config` for anything else)"
        )
    else:
        return
    section.error("gateway", problem)


def cloud_init_table(section: Section, values: dict[str, Any]) -> None:
    """Someone must be able to log in: cloud images have no password."""
    data = section.data
    if not data.get("ssh_authorized_keys") and "user_data" not in data:
        section.reader.error(
            section.prefix,
            "needs `ssh_authorized_keys` or `user_data`: cloud images have no password, "
            "so without either nobody can log in",
        )
