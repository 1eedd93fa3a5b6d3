"""The rules a `[cloud_init]` value must follow: SSH keys, host names, addresses, and the
user-data and network-config texts cloud-init will read.

Pure: each rule takes a value and returns why it is wrong (a message) or None; `TableReader`
walks a parsed TOML table with them and collects `SpecError`s keyed by the dotted TOML key, as
reconciler/spec.py does for the rest of a guest's file. `reconciler.cloudinit` builds the model
and the seed from what passes.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from reconciler.errors import SpecError

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
_LABEL_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_HOSTNAME_RULE = (
    "dot-separated labels of 1-63 letters, digits and `-`, not starting or ending with `-`"
)
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
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        return f"{_show(name)} is not a valid host name: {_HOSTNAME_RULE}, at most 253 in all"
    return None


def _yaml_mapping(text: str) -> tuple[dict[Any, Any] | None, str | None]:
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


class TableReader:
    """Collects every error of one `[cloud_init]` table, each keyed by its dotted TOML key."""

    KNOWN = ("ssh_authorized_keys", "user_data", "hostname", "network", "network_config")

    def __init__(self, file: str, prefix: str) -> None:
        self.file = file
        self.prefix = prefix
        self.errors: list[SpecError] = []

    def error(self, key: str, message: str) -> None:
        self.errors.append(SpecError(self.file, key, message))

    @staticmethod
    def describe(value: Any) -> str:
        if isinstance(value, bool):
            return "a boolean"
        if isinstance(value, int):
            return f"an integer ({value})"
        if isinstance(value, float):
            return f"a float ({value!r})"
        if isinstance(value, str):
            return f"a string ({_show(value)})"
        if isinstance(value, list):
            return "an array"
        return "a table" if isinstance(value, Mapping) else "a date/time"

    def unknown_keys(
        self, data: Mapping[str, Any], *, prefix: str | None = None, known: Sequence[str] = KNOWN
    ) -> None:
        for key in data:
            if key not in known:
                expected = ", ".join(f"`{k}`" for k in known)
                self.error(
                    f"{prefix or self.prefix}.{key}", f"unknown key; expected one of {expected}"
                )

    def string(self, value: Any, key: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(key, f"expected a string, got {self.describe(value)}")
            return None
        return value

    def ssh_keys(self, value: Any) -> tuple[str, ...]:
        key = f"{self.prefix}.ssh_authorized_keys"
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(key, f"expected an array of public keys, got {self.describe(value)}")
            return ()
        keys: list[str] = []
        seen: dict[tuple[str, ...], int] = {}
        for index, item in enumerate(value):
            item_key = f"{key}[{index}]"
            text = self.string(item, item_key)
            if text is None:
                continue
            problem = ssh_key_problem(text)
            if problem is not None:
                self.error(item_key, problem)
                continue
            identity = key_identity(text)
            if identity in seen:
                self.error(item_key, f"same key as ssh_authorized_keys[{seen[identity]}]")
                continue
            seen[identity] = index
            keys.append(text.strip())
        return tuple(keys)

    def content(
        self, data: Mapping[str, Any], name: str, problem_of: Callable[[str], str | None]
    ) -> str | None:
        """An inline text (checked with `problem_of`) or the absolute path of a file."""
        key = f"{self.prefix}.{name}"
        text = self.string(data.get(name), key)
        if text is None:
            return None
        if is_path(text):
            bad = _control(text)
            if bad is not None or len(text) > PATH_MAX or text.endswith("/"):
                self.error(key, f"{_show(text)} is not a usable file path")
                return None
            return text
        problem = problem_of(text)
        if problem is not None:
            hint = "" if "\n" in text else " (a file is named by its absolute path)"
            self.error(key, problem + hint)
            return None
        return text

    def hostname(self, value: Any, guest_name: str) -> str | None:
        key = f"{self.prefix}.hostname"
        text = self.string(value, key)
        if value is None:
            if hostname_problem(guest_name) is not None:
                self.error(
                    key,
                    f"the guest name {_show(guest_name)} is not a valid host name "
                    f"({_HOSTNAME_RULE}): set `hostname`",
                )
            return None
        problem = None if text is None else hostname_problem(text)
        if problem is not None:
            self.error(key, problem)
            return None
        return text

    def interface(self, value: Any, key: str) -> IPInterface | None:
        text = self.string(value, key)
        if value is None:
            self.error(key, 'missing: the guest\'s address with its prefix, like "192.0.2.21/24"')
        if text is None:
            return None
        try:
            interface = ipaddress.ip_interface(text)
        except ValueError:
            interface = None
        if interface is None or "/" not in text:
            self.error(
                key, f'expected an address with its prefix like "192.0.2.21/24", got {_show(text)}'
            )
            return None
        net = interface.network
        if net.num_addresses > 2 and interface.ip in (net.network_address, net.broadcast_address):
            self.error(
                key, f"{interface.ip} is the network's own or its broadcast address, not a host's"
            )
            return None
        return interface

    def gateway(self, value: Any, key: str, interface: IPInterface | None) -> str | None:
        text = self.string(value, key)
        if text is None:
            return None
        try:
            gateway = ipaddress.ip_address(text)
        except ValueError:
            self.error(key, f"expected an IP address, got {_show(text)}")
            return None
        if interface is None:
            return None
        if gateway.version != interface.version:
            self.error(
                key, f"an IPv{gateway.version} gateway for an IPv{interface.version} address"
            )
        elif gateway == interface.ip:
            self.error(key, "is the guest's own address")
        elif gateway not in interface.network:
            self.error(
                key,
                f"{gateway} is outside {interface.network}: a gateway must be on the guest's "
                "network (use `network_config` for anything else)",
            )
        else:
            return str(gateway)
        return None

    def nameservers(self, value: Any, key: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(key, f"expected an array of IP addresses, got {self.describe(value)}")
            return ()
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            item_key = f"{key}[{index}]"
            text = self.string(item, item_key)
            if text is None:
                continue
            try:
                address = str(ipaddress.ip_address(text))
            except ValueError:
                self.error(item_key, f"expected an IP address, got {_show(text)}")
                continue
            if address in seen:
                self.error(item_key, f"same address as nameservers[{seen[address]}]")
                continue
            seen[address] = index
        return tuple(seen)
