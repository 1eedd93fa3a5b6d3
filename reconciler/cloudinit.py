"""A guest's `[cloud_init]` table: its model, its validation, and the NoCloud seed it renders.

Pure: values in, values out. It never reads a file: when `user_data` or `network_config` names
a path, the caller reads it and hands the text to `render_seed`. The seed is the directory
cloud-init's NoCloud datasource reads from a volume labelled `cidata` (cloud-init
doc/rtd/reference/datasources/nocloud.rst): `meta-data`, `user-data` and, when asked for,
`network-config`. Its `instance-id` is a hash of everything else in the seed, so an unchanged
spec renders byte-identical files and any change makes cloud-init treat the next boot as a new
instance and apply the seed again (nocloud.rst: the instance-id "is what is used to determine
if this is 'first boot'").
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reconciler.cloudinit_rules import (
    MAX_CONTENT,
    SSH_KEY_TYPES,
    guest_name_problem,
    is_path,
    key_identity,
    network_config_problem,
    split_user_data,
    user_data_problem,
)
from reconciler.errors import SpecError
from reconciler.spec import CloudInit, GuestSpec, StaticNetwork
from reconciler.tomlreader import Reader, Section

__all__ = [
    "MAX_CONTENT",
    "SSH_KEY_TYPES",
    "CloudInit",
    "Seed",
    "StaticNetwork",
    "makefs_argv",
    "network_config_problem",
    "parse_cloud_init",
    "render_network_config",
    "render_seed",
    "seed_for",
    "user_data_problem",
]

KEY = "cloud_init"
SEED_LABEL = "cidata"
# Linux driver names of bhyve's NIC emulations (drivers/net/virtio_net.c, and
# drivers/net/ethernet/intel/e1000/), as network config v2 `match: driver:` wants them.
NIC_DRIVERS = {"virtio-net": "virtio_net", "e1000": "e1000"}


@dataclass(frozen=True)
class Seed:
    """The NoCloud seed's files, byte for byte; `files` maps each name to its content."""

    instance_id: str
    meta_data: bytes
    user_data: bytes
    network_config: bytes | None = None

    @property
    def files(self) -> dict[str, bytes]:
        out = {"meta-data": self.meta_data, "user-data": self.user_data}
        if self.network_config is not None:
            out["network-config"] = self.network_config
        return out


def parse_cloud_init(
    data: Any, *, file: str, guest_name: str
) -> tuple[CloudInit | None, list[SpecError]]:
    """Validate a parsed `[cloud_init]` table alone, as a guest file's is (the keys are declared
    once, in `guestkeys.CLOUD_INIT`): the model, or None and every error in it.

    Inline `user_data` and `network_config` are checked here; one given as a path is checked by
    `render_seed` once the caller has read it.
    """
    from reconciler.guestkeys import GUEST  # it imports spec, which this module's users need

    reader = Reader(file)
    top = Section(reader, {KEY: data}, "", (KEY,))
    ci: CloudInit | None = top.read(GUEST.key(KEY))
    if ci is not None and ci.hostname is None:
        problem = guest_name_problem(guest_name)
        if problem is not None:
            top.error(f"{KEY}.hostname", problem)
    if reader.count or ci is None:
        return None, reader.errors
    return ci, []


# --- Rendering --------------------------------------------------------------------------------


def render_seed(
    ci: CloudInit,
    *,
    guest_name: str,
    file: str,
    user_data: str | None = None,
    network_config: str | None = None,
    nic_emulation: str = "virtio-net",
    nic_mac: str | None = None,
) -> tuple[Seed | None, list[SpecError]]:
    """The seed's files; or None and the errors in the contents the caller read.

    `user_data` and `network_config` are the texts of the files `ci` names by path (None when
    inline or absent). `nic_emulation` and `nic_mac` describe the guest's first NIC, which a
    generated network config is for.
    """
    user_text = _content(ci.user_data, user_data, "user_data")
    network_text = _content(ci.network_config, network_config, "network_config")
    errors = []
    if user_text is not None:
        problem = user_data_problem(user_text)
        if problem is not None:
            errors.append(SpecError(file, f"{KEY}.user_data", _located(ci.user_data, problem)))
    if network_text is not None:
        problem = network_config_problem(network_text)
        if problem is not None:
            nc_key = f"{KEY}.network_config"
            errors.append(SpecError(file, nc_key, _located(ci.network_config, problem)))
    if errors:
        return None, errors
    user_bytes = _user_data(ci.ssh_authorized_keys, user_text).encode()
    if ci.network is not None:
        network_text = render_network_config(ci.network, nic_emulation=nic_emulation, mac=nic_mac)
    network_bytes = network_text.encode() if network_text is not None else None
    hostname = ci.hostname_for(guest_name)
    instance_id = _instance_id(hostname, user_bytes, network_bytes)
    import yaml  # only guests with [cloud_init] need PyYAML: see cloudinit_rules._yaml_mapping

    meta = yaml.safe_dump(
        {"instance-id": instance_id, "local-hostname": hostname}, sort_keys=False
    ).encode()
    return Seed(instance_id, meta, user_bytes, network_bytes), []


# guest name -> (the spec, its seed): rendering parses YAML, so a pass over many unchanged
# guests asks this, not the renderer. One entry per guest, as the specs themselves hold the
# user-data's text: it grows with the guests, not with their edits.
_SEEDS: dict[str, tuple[GuestSpec, tuple[Seed | None, str | None]]] = {}
_SEEDS_MAX = 10_000


def seed_for(guest: GuestSpec) -> tuple[Seed | None, str | None]:
    """The seed of a guest with a `[cloud_init]` whose files the edge has read into the spec
    (`user_data_content`, `network_config_content`); or None and why not."""
    cached = _SEEDS.get(guest.name)
    if cached is not None and (cached[0] is guest or cached[0] == guest):
        return cached[1]
    found = _render_for(guest)
    if len(_SEEDS) >= _SEEDS_MAX:
        _SEEDS.clear()  # guests come and go by name: forget the gone ones now and then
    _SEEDS[guest.name] = (guest, found)
    return found


def _render_for(guest: GuestSpec) -> tuple[Seed | None, str | None]:
    ci = guest.cloud_init
    if ci is None:
        raise ValueError(f"{guest.name} has no [cloud_init]")
    nic = guest.nics[0] if guest.nics else None
    try:
        seed, errors = render_seed(
            ci,
            guest_name=guest.name,
            file=guest.source,
            user_data=ci.user_data_content if ci.user_data_path else None,
            network_config=ci.network_config_content if ci.network_config_path else None,
            nic_emulation=nic.emulation if nic is not None else "virtio-net",
            nic_mac=nic.mac if nic is not None else None,
        )
    except ValueError as exc:  # a file it names was not read
        return None, str(exc)
    if errors:
        return None, "; ".join(f"{e.key}: {e.message}" for e in errors)
    return seed, None


def _content(value: str | None, read: str | None, key: str) -> str | None:
    """The text of `value`: itself when inline, `read` when it names a file."""
    if value is None or not is_path(value):
        if read is not None:
            raise ValueError(f"{key} is not a path, so no file content may be given for it")
        return value
    if read is None:
        raise ValueError(f"{key} names {value}: its content must be given (it was not read)")
    return read


def _located(value: str | None, problem: str) -> str:
    return f"{value}: {problem}" if value is not None and is_path(value) else problem


def _instance_id(hostname: str, user_data: bytes, network_config: bytes | None) -> str:
    digest = hashlib.sha256()
    parts = [("local-hostname", hostname.encode()), ("user-data", user_data)]
    if network_config is not None:
        parts.append(("network-config", network_config))
    for name, content in parts:
        # Length-prefixed, so no two different seeds frame to the same bytes.
        digest.update(f"{name}\0{len(content)}\0".encode() + content)
    return "iid-" + digest.hexdigest()[:16]


def _user_data(keys: Sequence[str], text: str | None) -> str:
    """user-data with `keys` added for the default user (cc_ssh: top-level ssh_authorized_keys)."""
    if text is None:
        return _cloud_config({"ssh_authorized_keys": list(keys)})
    kind, config, _problem = split_user_data(text)
    if kind == "cloud-config":
        assert config is not None
        present = config.get("ssh_authorized_keys") or []
        seen = {key_identity(k) for k in present}
        added = [k for k in keys if key_identity(k) not in seen]
        if not added:
            return text
        return _cloud_config({**config, "ssh_authorized_keys": [*present, *added]})
    if not keys:
        return text
    return _multipart(
        [
            ("text/cloud-config", "ssh-keys.cfg", _dump({"ssh_authorized_keys": list(keys)})),
            ("text/x-shellscript", "user-script", text),
        ]
    )


def _dump(config: Mapping[str, Any]) -> str:
    import yaml

    # A wide line so long RSA keys stay on one line, as people paste them.
    return yaml.safe_dump(
        dict(config), sort_keys=False, default_flow_style=False, allow_unicode=True, width=1 << 16
    )


def _cloud_config(config: Mapping[str, Any]) -> str:
    return "#cloud-config\n" + _dump(config)


def _multipart(parts: Sequence[tuple[str, str, str]]) -> str:
    """A MIME multipart/mixed message as cloud-init reads it (format.rst, MIME multi-part).

    Deterministic: the boundary comes from the content, not from a random source, and is made
    longer until it occurs in no part. Non-ASCII parts are base64, as `cloud-init devel
    make-mime` writes them: cloud-init decodes an 8bit part's bytes with the wrong codec.
    """
    seed = hashlib.sha256("\0".join(p[2] for p in parts).encode()).hexdigest()
    boundary = "==" + seed[:24]
    while any(boundary in body for _t, _f, body in parts):
        boundary += "="
    out = [
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "MIME-Version: 1.0",
        f"Number-Attachments: {len(parts)}",
        "",
    ]
    for content_type, filename, body in parts:
        if body.isascii():
            charset, encoding, payload = "us-ascii", "7bit", body
        else:
            charset, encoding = "utf-8", "base64"
            payload = base64.encodebytes(body.encode()).decode("ascii")
        out += [
            f"--{boundary}",
            f'Content-Type: {content_type}; charset="{charset}"',
            "MIME-Version: 1.0",
            f"Content-Transfer-Encoding: {encoding}",
            f'Content-Disposition: attachment; filename="{filename}"',
            "",
            # RFC 2046 §5.1.1: the line break before a delimiter belongs to the delimiter, so
            # a part that ends with a newline keeps it.
            payload,
        ]
    out.append(f"--{boundary}--")
    return "\n".join(out) + "\n"


def render_network_config(
    network: StaticNetwork, *, nic_emulation: str = "virtio-net", mac: str | None = None
) -> str:
    """Network config version 2 for one static address on the guest's first NIC.

    The NIC is matched by its MAC address when it is known, as NoCloud's own example does
    (nocloud.rst, "Example network v2"), else by driver (network-config-format-v2.rst, `match:
    driver:`, honoured by netplan/networkd; other renderers take the ID, `eth0`, as the
    interface name). The default route is written `to: 0.0.0.0/0` (or `::/0`) rather than
    `to: default`, which cloud-init's own renderers only accept since 25.3.
    """
    interface = ipaddress.ip_interface(network.address)
    if mac is not None:
        match = f'      macaddress: "{mac.lower()}"'
    else:
        match = f"      driver: {NIC_DRIVERS.get(nic_emulation, nic_emulation)}"
    lines = [
        "version: 2",
        "ethernets:",
        "  eth0:",
        "    match:",
        match,
        "    addresses:",
        f'      - "{interface.with_prefixlen}"',
    ]
    if network.gateway is not None:
        default = "0.0.0.0/0" if interface.version == 4 else "::/0"
        lines += [
            "    routes:",
            f'      - to: "{default}"',
            f'        via: "{network.gateway}"',
        ]
    if network.nameservers:
        lines += ["    nameservers:", "      addresses:"]
        lines += [f'        - "{server}"' for server in network.nameservers]
    return "\n".join(lines) + "\n"


_MAKEFS_PATH_RE = re.compile(r"[^\x00-\x1f\x7f]+")


def makefs_argv(image: str, directory: str) -> list[str]:
    """FreeBSD makefs(8) writing the seed `directory` into the ISO 9660 file `image`.

    `-o R` adds Rock Ridge names, without which `meta-data` would be stored as an 8.3 name;
    `L=cidata` is the volume label NoCloud looks for (makefs uppercases it to d-characters,
    usr.sbin/makefs/cd9660.c, cd9660_arguments_set_string; NoCloud takes either case).
    """
    for path in (image, directory):
        if not path.startswith("/") or _MAKEFS_PATH_RE.fullmatch(path) is None:
            raise ValueError(f"makefs needs absolute paths without control characters: {path!r}")
    return ["makefs", "-t", "cd9660", "-o", f"R,L={SEED_LABEL}", image, directory]
