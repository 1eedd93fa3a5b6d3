"""Every bad `[cloud_init]` value is an error at its own TOML key, and all come at once."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest
from cloud_keys import ECDSA, ED25519, ed25519_key

from reconciler.cloudinit import CloudInit, StaticNetwork, parse_cloud_init
from reconciler.cloudinit_rules import MAX_CONTENT
from reconciler.errors import SpecError

FILE = "/usr/local/etc/bhyve-reconciler/conf.d/web1.toml"
KEYS = {"ssh_authorized_keys": [ED25519]}
NET = {"address": "192.0.2.21/24", "gateway": "192.0.2.1", "nameservers": ["192.0.2.1"]}


def errors_of(data: Any, guest: str = "web1") -> list[SpecError]:
    ci, errors = parse_cloud_init(data, file=FILE, guest_name=guest)
    assert ci is None
    assert errors
    assert all(e.file == FILE for e in errors)
    return errors


def message_at(data: Any, key: str, guest: str = "web1") -> str:
    errors = errors_of(data, guest)
    found = [e.message for e in errors if e.key == key]
    assert found, f"no error at {key!r}: {[(e.key, e.message) for e in errors]}"
    return found[0]


def cut(key: str, chars: int) -> str:
    """`key` with its base64 field shortened by `chars` (kept a multiple of 4 long)."""
    kind, blob, *rest = key.split()
    return " ".join([kind, blob[:-chars], *rest])


CASES = [
    # (id, [cloud_init] table, key, fragment of the message)
    ("not-a-table", "yes", "cloud_init", "expected a table ([cloud_init]), got a string"),
    ("unknown-key", {**KEYS, "ssh_keys": []}, "cloud_init.ssh_keys", "unknown key"),
    ("neither", {"hostname": "web1"}, "cloud_init", "needs `ssh_authorized_keys` or `user_data`"),
    ("keys-empty", {"ssh_authorized_keys": []}, "cloud_init", "nobody can log in"),
    ("keys-string", {"ssh_authorized_keys": ED25519}, "cloud_init.ssh_authorized_keys",
     "expected an array of public keys, got a string"),
    ("key-int", {"ssh_authorized_keys": [3]}, "cloud_init.ssh_authorized_keys[0]",
     "expected a string, got an integer (3)"),
    ("key-newline", {"ssh_authorized_keys": [ED25519 + "\n"]},
     "cloud_init.ssh_authorized_keys[0]", "one line"),
    ("key-embedded-newline", {"ssh_authorized_keys": [ED25519 + "\n" + ECDSA]},
     "cloud_init.ssh_authorized_keys[0]", "one line"),
    ("key-type-only", {"ssh_authorized_keys": ["ssh-ed25519"]},
     "cloud_init.ssh_authorized_keys[0]", "expected an OpenSSH public key like"),
    ("key-unknown-type", {"ssh_authorized_keys": ["ssh-foo AAAAB3Nz"]},
     "cloud_init.ssh_authorized_keys[0]", 'unknown key type "ssh-foo"'),
    ("key-private", {"ssh_authorized_keys": ["-----BEGIN OPENSSH PRIVATE KEY----- b3Blbn"]},
     "cloud_init.ssh_authorized_keys[0]", "unknown key type"),
    ("key-options", {"ssh_authorized_keys": ['command="uptime" ' + ED25519]},
     "cloud_init.ssh_authorized_keys[0]", "options are not taken"),
    ("key-not-base64", {"ssh_authorized_keys": ["ssh-ed25519 AAAA*AAA admin"]},
     "cloud_init.ssh_authorized_keys[0]", "not base64"),
    ("key-bad-padding", {"ssh_authorized_keys": ["ssh-ed25519 AAAAC3N admin"]},
     "cloud_init.ssh_authorized_keys[0]", "not base64"),
    ("key-cut", {"ssh_authorized_keys": [cut(ED25519, 8)]},
     "cloud_init.ssh_authorized_keys[0]", "not a whole ssh-ed25519 key"),
    ("key-type-only-blob", {"ssh_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5"]},
     "cloud_init.ssh_authorized_keys[0]", "was the key cut"),
    ("key-type-swapped", {"ssh_authorized_keys": ["ssh-rsa " + ED25519.split()[1]]},
     "cloud_init.ssh_authorized_keys[0]", "not a whole ssh-rsa key"),
    ("key-twice", {"ssh_authorized_keys": [ED25519, ED25519.replace("admin@", "root@")]},
     "cloud_init.ssh_authorized_keys[1]", "same key as ssh_authorized_keys[0]"),
    ("user-data-int", {**KEYS, "user_data": 3}, "cloud_init.user_data",
     "expected a string, got an integer (3)"),
    ("user-data-no-header", {**KEYS, "user_data": "packages: [nginx]\n"}, "cloud_init.user_data",
     'the first line must be "#cloud-config" (YAML follows) or "#!" (a script), got "packages'),
    ("user-data-relative", {**KEYS, "user_data": "cloud/web.yaml"}, "cloud_init.user_data",
     "a file is named by its absolute path"),
    ("user-data-bad-yaml", {**KEYS, "user_data": "#cloud-config\npackages: [nginx\n"},
     "cloud_init.user_data", "is not valid YAML: line 3"),
    ("user-data-tab-yaml", {**KEYS, "user_data": "#cloud-config\nruncmd:\n\t- ls\n"},
     "cloud_init.user_data", "is not valid YAML"),
    ("user-data-list", {**KEYS, "user_data": "#cloud-config\n- a\n- b\n"},
     "cloud_init.user_data", "must be a YAML mapping (`key: value` lines), got a list"),
    ("user-data-scalar", {**KEYS, "user_data": "#cloud-config\njust words\n"},
     "cloud_init.user_data", "must be a YAML mapping"),
    ("user-data-boothook", {**KEYS, "user_data": "#cloud-boothook\n#!/bin/sh\n"},
     "cloud_init.user_data", '"#cloud-boothook" user-data is not taken here'),
    ("user-data-archive", {**KEYS, "user_data": "#cloud-config-archive\n- type: x\n"},
     "cloud_init.user_data", "not taken here"),
    ("user-data-jinja", {**KEYS, "user_data": "## template: jinja\n#cloud-config\n"},
     "cloud_init.user_data", "not taken here"),
    ("user-data-keys-string", {**KEYS, "user_data": "#cloud-config\nssh_authorized_keys: x\n"},
     "cloud_init.user_data", "its `ssh_authorized_keys` must be a list of key strings"),
    ("user-data-mime-mark",
     {**KEYS, "user_data": "#cloud-config\nwrite_files:\n- content: 'MIME-Version: 1.0'\n"},
     "cloud_init.user_data", "makes cloud-init read it as a MIME message"),
    ("user-data-nul", {**KEYS, "user_data": "#!/bin/sh\necho \0\n"}, "cloud_init.user_data",
     "NUL"),
    ("user-data-huge", {**KEYS, "user_data": "#!/bin/sh\n" + "#" * MAX_CONTENT},
     "cloud_init.user_data", f"longer than {MAX_CONTENT} characters"),
    ("user-data-dir", {**KEYS, "user_data": "/usr/local/etc/cloud/"}, "cloud_init.user_data",
     "is not a usable file path"),
    ("user-data-control", {**KEYS, "user_data": "/usr/local/etc/\x1bweb.yaml"},
     "cloud_init.user_data", "is not a usable file path"),
    ("hostname-underscore", {**KEYS, "hostname": "web_1"}, "cloud_init.hostname",
     '"web_1" is not a valid host name'),
    ("hostname-dash", {**KEYS, "hostname": "web1-.example"}, "cloud_init.hostname",
     "not a valid host name"),
    ("hostname-long-label", {**KEYS, "hostname": "a" * 64}, "cloud_init.hostname",
     "not a valid host name"),
    ("hostname-empty-label", {**KEYS, "hostname": "web1..example"}, "cloud_init.hostname",
     "not a valid host name"),
    ("hostname-int", {**KEYS, "hostname": 7}, "cloud_init.hostname", "expected a string"),
    ("network-string", {**KEYS, "network": "dhcp"}, "cloud_init.network",
     "expected a table ([cloud_init.network]), got a string"),
    ("network-unknown", {**KEYS, "network": {**NET, "dns": ["192.0.2.1"]}},
     "cloud_init.network.dns", "unknown key; expected one of `address`, `gateway`, `nameservers`"),
    ("address-missing", {**KEYS, "network": {"gateway": "192.0.2.1"}},
     "cloud_init.network.address", "missing"),
    ("address-no-prefix", {**KEYS, "network": {"address": "192.0.2.21"}},
     "cloud_init.network.address", 'expected an address with its prefix like "192.0.2.21/24"'),
    ("address-junk", {**KEYS, "network": {"address": "192.0.2.300/24"}},
     "cloud_init.network.address", "with its prefix"),
    ("address-prefix-too-long", {**KEYS, "network": {"address": "192.0.2.21/33"}},
     "cloud_init.network.address", "with its prefix"),
    ("address-network", {**KEYS, "network": {"address": "192.0.2.0/24"}},
     "cloud_init.network.address", "192.0.2.0 is the network's own or its broadcast address"),
    ("address-broadcast", {**KEYS, "network": {"address": "192.0.2.255/24"}},
     "cloud_init.network.address", "broadcast"),
    ("gateway-junk", {**KEYS, "network": {**NET, "gateway": "192.0.2"}},
     "cloud_init.network.gateway", 'expected an IP address, got "192.0.2"'),
    ("gateway-family", {**KEYS, "network": {**NET, "gateway": "2001:db8::1"}},
     "cloud_init.network.gateway", "an IPv6 gateway for an IPv4 address"),
    ("gateway-outside", {**KEYS, "network": {**NET, "gateway": "198.51.100.1"}},
     "cloud_init.network.gateway", "198.51.100.1 is outside 192.0.2.0/24"),
    ("gateway-self", {**KEYS, "network": {**NET, "gateway": "192.0.2.21"}},
     "cloud_init.network.gateway", "is the guest's own address"),
    ("nameservers-string", {**KEYS, "network": {**NET, "nameservers": "192.0.2.1"}},
     "cloud_init.network.nameservers", "expected an array of IP addresses"),
    ("nameserver-junk", {**KEYS, "network": {**NET, "nameservers": ["192.0.2.1", "dns1"]}},
     "cloud_init.network.nameservers[1]", 'expected an IP address, got "dns1"'),
    ("nameserver-twice",
     {**KEYS, "network": {**NET, "nameservers": ["2001:db8::53", "2001:DB8:0::53"]}},
     "cloud_init.network.nameservers[1]", "same address as nameservers[0]"),
    ("network-and-config", {**KEYS, "network": NET, "network_config": "/etc/net.yaml"},
     "cloud_init.network_config", "give either `network` (one static address) or "
     "`network_config`, not both"),
    ("network-config-version", {**KEYS, "network_config": "version: 3\nethernets: {}\n"},
     "cloud_init.network_config", "needs `version: 2` (or 1)"),
    ("network-config-list", {**KEYS, "network_config": "- version: 2\n- x\n"},
     "cloud_init.network_config", "must be a YAML mapping"),
    ("network-config-yaml", {**KEYS, "network_config": "version: 2\nethernets: {\n"},
     "cloud_init.network_config", "is not valid YAML"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("data", "key", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_error_names_the_key(data: Any, key: str, fragment: str) -> None:
    assert fragment in message_at(data, key)


def test_guest_name_that_is_no_host_name_asks_for_hostname() -> None:
    message = message_at(KEYS, "cloud_init.hostname", guest="web_1")
    assert '"web_1" is not a valid host name' in message
    assert "set `hostname`" in message
    ci, errors = parse_cloud_init({**KEYS, "hostname": "web-1"}, file=FILE, guest_name="web_1")
    assert errors == []
    assert ci is not None and ci.hostname_for("web_1") == "web-1"


def test_every_error_comes_at_once() -> None:
    data = {
        "ssh_authorized_keys": ["ssh-ed25519 nope", ED25519],
        "user_data": "packages: []\n",
        "hostname": "a_b",
        "network": {"address": "192.0.2.21", "nameservers": ["x"]},
        "colour": "blue",
    }
    keys = {e.key for e in errors_of(data)}
    assert keys == {
        "cloud_init.ssh_authorized_keys[0]",
        "cloud_init.user_data",
        "cloud_init.hostname",
        "cloud_init.network.address",
        "cloud_init.network.nameservers[0]",
        "cloud_init.colour",
    }


BRIEF_EXAMPLE = f"""
name = "web1"
loader = "uefi"
[[disk]]
path = "/vm/web1/disk0.img"
source = "/vm/images/debian-12-genericcloud-amd64.raw"
size = "20G"
[cloud_init]
ssh_authorized_keys = ["{ED25519}", "{ECDSA}"]
user_data = "/usr/local/etc/bhyve-reconciler/cloud/web.yaml"
network = {{ address = "192.0.2.21/24", gateway = "192.0.2.1", nameservers = ["192.0.2.1"] }}
"""


def test_the_documented_example_is_valid() -> None:
    table = tomllib.loads(BRIEF_EXAMPLE)["cloud_init"]
    ci, errors = parse_cloud_init(table, file=FILE, guest_name="web1")
    assert errors == []
    assert ci == CloudInit(
        ssh_authorized_keys=(ED25519, ECDSA),
        user_data="/usr/local/etc/bhyve-reconciler/cloud/web.yaml",
        hostname=None,
        network=StaticNetwork("192.0.2.21/24", "192.0.2.1", ("192.0.2.1",)),
        network_config=None,
    )
    assert ci.user_data_path == "/usr/local/etc/bhyve-reconciler/cloud/web.yaml"
    assert ci.network_config_path is None
    assert ci.hostname_for("web1") == "web1"


ACCEPTED = [
    ("script", {**KEYS, "user_data": "#!/bin/sh\necho hi\n"}),
    ("empty-cloud-config", {**KEYS, "user_data": "#cloud-config\n"}),
    ("crlf", {**KEYS, "user_data": "#cloud-config\r\npackages: [nginx]\r\n"}),
    ("header-case", {"user_data": "#Cloud-Config\npackages: [nginx]\n"}),
    ("user-data-only", {"user_data": "#cloud-config\nssh_authorized_keys: [x]\n"}),
    ("key-without-comment", {"ssh_authorized_keys": [ed25519_key(1)]}),
    ("key-comment-with-spaces", {"ssh_authorized_keys": [ed25519_key(1, "Jo Bloggs laptop")]}),
    ("ecdsa", {"ssh_authorized_keys": [ECDSA]}),
    ("fqdn", {**KEYS, "hostname": "web1.example.org"}),
    ("numeric-label", {**KEYS, "hostname": "123"}),
    ("ipv6", {**KEYS, "network": {"address": "2001:db8::21/64", "gateway": "2001:db8::1"}}),
    ("point-to-point", {**KEYS, "network": {"address": "192.0.2.1/31", "gateway": "192.0.2.0"}}),
    ("address-only", {**KEYS, "network": {"address": "192.0.2.21/24"}}),
    ("network-config-v2", {**KEYS, "network_config": "version: 2\nethernets: {}\n"}),
    ("network-config-v1", {**KEYS, "network_config": "version: 1\nconfig: []\n"}),
    ("network-config-wrapped", {**KEYS, "network_config": "network:\n  version: 2\n"}),
    ("network-config-path", {**KEYS, "network_config": "/usr/local/etc/net.yaml"}),
]


@pytest.mark.parametrize("data", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_accepted(data: dict[str, Any]) -> None:
    ci, errors = parse_cloud_init(data, file=FILE, guest_name="web1")
    assert errors == []
    assert ci is not None


def test_values_are_kept_in_canonical_form() -> None:
    data = {
        "ssh_authorized_keys": ["  " + ED25519 + "  "],
        "network": {"address": "2001:DB8:0::21/64", "nameservers": ["2001:DB8::53"]},
    }
    ci, errors = parse_cloud_init(data, file=FILE, guest_name="web1")
    assert errors == []
    assert ci is not None
    assert ci.ssh_authorized_keys == (ED25519,)
    assert ci.network == StaticNetwork("2001:db8::21/64", None, ("2001:db8::53",))


def test_inline_texts_are_not_paths() -> None:
    ci, errors = parse_cloud_init(
        {**KEYS, "user_data": "#cloud-config\n", "network_config": "version: 2\n"},
        file=FILE,
        guest_name="web1",
    )
    assert errors == []
    assert ci is not None
    assert ci.user_data_path is None
    assert ci.network_config_path is None
