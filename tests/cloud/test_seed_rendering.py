"""The NoCloud seed: golden files written by hand, the SSH-key merge rules, and an instance-id
that changes with every change of content and only then."""

from __future__ import annotations

import email
import re
from dataclasses import dataclass, field, replace
from typing import TypedDict, Unpack

import pytest
import yaml
from cloud_keys import ECDSA, ED25519, ed25519_key
from hypothesis import assume, given
from hypothesis import strategies as st

from reconciler.cloudinit import (
    CloudInit,
    Seed,
    StaticNetwork,
    makefs_argv,
    parse_cloud_init,
    render_seed,
)
from reconciler.errors import SpecError

FILE = "/usr/local/etc/bhyve-reconciler/conf.d/web1.toml"
IID = re.compile(r"iid-[0-9a-f]{16}")


class Given(TypedDict, total=False):
    """What render_seed's caller adds to the spec's [cloud_init]: file contents, the NIC."""

    user_data: str | None
    network_config: str | None
    nic_emulation: str
    nic_mac: str | None


def seed_of(ci: CloudInit, guest: str = "web1", **given: Unpack[Given]) -> Seed:
    seed, errors = render_seed(ci, guest_name=guest, file=FILE, **given)
    assert errors == []
    assert seed is not None
    return seed


def text(data: bytes | None) -> str:
    assert data is not None
    return data.decode("utf-8")


# --- Golden files ------------------------------------------------------------------------------


def test_keys_only() -> None:
    seed = seed_of(CloudInit(ssh_authorized_keys=(ED25519, ECDSA)))
    assert IID.fullmatch(seed.instance_id)
    assert text(seed.meta_data) == f"instance-id: {seed.instance_id}\nlocal-hostname: web1\n"
    assert text(seed.user_data) == f"#cloud-config\nssh_authorized_keys:\n- {ED25519}\n- {ECDSA}\n"
    assert seed.network_config is None
    assert set(seed.files) == {"meta-data", "user-data"}


def test_hostname_is_given_or_the_guest_name() -> None:
    named = seed_of(CloudInit(ssh_authorized_keys=(ED25519,), hostname="web1.example.org"))
    assert text(named.meta_data).endswith("local-hostname: web1.example.org\n")
    # A host name YAML would read as a number stays a string.
    numeric = seed_of(CloudInit(ssh_authorized_keys=(ED25519,), hostname="123"))
    assert yaml.safe_load(numeric.meta_data) == {
        "instance-id": numeric.instance_id,
        "local-hostname": "123",
    }


def test_keys_are_added_to_the_users_cloud_config() -> None:
    other = ed25519_key(7, "deploy@ci")
    user = (
        "#cloud-config\n"
        "# a comment that the merge cannot keep\n"
        "packages: [nginx]\n"
        "ssh_authorized_keys:\n"
        f"  - {other}\n"
        "runcmd:\n"
        "  - systemctl enable --now nginx\n"
    )
    seed = seed_of(CloudInit(ssh_authorized_keys=(ED25519, ECDSA), user_data=user))
    assert text(seed.user_data) == (
        "#cloud-config\n"
        "packages:\n"
        "- nginx\n"
        "ssh_authorized_keys:\n"
        f"- {other}\n"
        f"- {ED25519}\n"
        f"- {ECDSA}\n"
        "runcmd:\n"
        "- systemctl enable --now nginx\n"
    )


def test_keys_go_at_the_end_when_the_user_has_none() -> None:
    user = "#cloud-config\npackage_upgrade: true\n"
    seed = seed_of(CloudInit(ssh_authorized_keys=(ED25519,), user_data=user))
    assert text(seed.user_data) == (
        f"#cloud-config\npackage_upgrade: true\nssh_authorized_keys:\n- {ED25519}\n"
    )


def test_a_key_already_there_is_not_added_twice_and_the_text_is_kept() -> None:
    # The same key under another comment is the same key.
    same = ED25519.replace("admin@example", "admin@laptop")
    user = f"#cloud-config\n# keep me\nssh_authorized_keys:\n  - {same}\n"
    seed = seed_of(CloudInit(ssh_authorized_keys=(ED25519,), user_data=user))
    assert text(seed.user_data) == user


def test_only_missing_keys_are_added() -> None:
    user = f"#cloud-config\nssh_authorized_keys: ['{ED25519}']\n"
    seed = seed_of(CloudInit(ssh_authorized_keys=(ED25519, ECDSA), user_data=user))
    assert yaml.safe_load(seed.user_data)["ssh_authorized_keys"] == [ED25519, ECDSA]


def test_user_data_without_keys_is_passed_as_written() -> None:
    for user in ("#cloud-config\n# as written\npackages: [nginx]\n", "#!/bin/sh\necho hi\n"):
        assert text(seed_of(CloudInit(user_data=user)).user_data) == user


def mime_parts(data: bytes) -> list[tuple[str, str, str]]:
    """(content type, file name, decoded payload) of each part, read as cloud-init does."""
    message = email.message_from_string(data.decode("utf-8"))
    assert message.get_content_type() == "multipart/mixed"
    out = []
    for part in message.get_payload():
        assert isinstance(part, email.message.Message)
        payload = part.get_payload(decode=True)
        assert isinstance(payload, bytes)
        out.append((part.get_content_type(), part.get_filename() or "", payload.decode("utf-8")))
    return out


def test_a_script_gets_the_keys_in_a_cloud_config_part() -> None:
    script = "#!/bin/sh\necho hello > /var/tmp/hello\n"
    data = seed_of(CloudInit(ssh_authorized_keys=(ED25519,), user_data=script)).user_data
    boundary = re.match(rb'Content-Type: multipart/mixed; boundary="([^"]+)"\n', data)
    assert boundary is not None
    b = boundary.group(1).decode()
    assert text(data) == (
        f'Content-Type: multipart/mixed; boundary="{b}"\n'
        "MIME-Version: 1.0\n"
        "Number-Attachments: 2\n"
        "\n"
        f"--{b}\n"
        'Content-Type: text/cloud-config; charset="us-ascii"\n'
        "MIME-Version: 1.0\n"
        "Content-Transfer-Encoding: 7bit\n"
        'Content-Disposition: attachment; filename="ssh-keys.cfg"\n'
        "\n"
        f"ssh_authorized_keys:\n- {ED25519}\n"
        "\n"
        f"--{b}\n"
        'Content-Type: text/x-shellscript; charset="us-ascii"\n'
        "MIME-Version: 1.0\n"
        "Content-Transfer-Encoding: 7bit\n"
        'Content-Disposition: attachment; filename="user-script"\n'
        "\n"
        f"{script}"
        "\n"
        f"--{b}--\n"
    )
    assert mime_parts(data) == [
        ("text/cloud-config", "ssh-keys.cfg", f"ssh_authorized_keys:\n- {ED25519}\n"),
        ("text/x-shellscript", "user-script", script),
    ]


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.just("\n")))
def test_any_script_survives_the_multipart(body: str) -> None:
    script = "#!/bin/sh\n" + body
    assume("mime-version:" not in script.lower())  # refused, as test_cloud_init_validation shows
    data = seed_of(CloudInit(ssh_authorized_keys=(ED25519,), user_data=script)).user_data
    parts = mime_parts(data)
    # email normalises line ends only; the script's own text comes back whole.
    assert parts[1] == ("text/x-shellscript", "user-script", script)
    boundary = data.split(b'"')[1]
    assert boundary not in script.encode()


NETWORK = StaticNetwork("192.0.2.21/24", "192.0.2.1", ("192.0.2.1", "192.0.2.2"))


def test_network_config_for_the_first_virtio_nic() -> None:
    seed = seed_of(CloudInit(ssh_authorized_keys=(ED25519,), network=NETWORK))
    assert text(seed.network_config) == (
        "version: 2\n"
        "ethernets:\n"
        "  eth0:\n"
        "    match:\n"
        "      driver: virtio_net\n"
        "    addresses:\n"
        '      - "192.0.2.21/24"\n'
        "    routes:\n"
        '      - to: "0.0.0.0/0"\n'
        '        via: "192.0.2.1"\n'
        "    nameservers:\n"
        "      addresses:\n"
        '        - "192.0.2.1"\n'
        '        - "192.0.2.2"\n'
    )
    assert set(seed.files) == {"meta-data", "user-data", "network-config"}


def test_network_config_matches_a_known_mac_and_an_e1000() -> None:
    ci = CloudInit(ssh_authorized_keys=(ED25519,), network=StaticNetwork("192.0.2.21/24"))
    by_mac = seed_of(ci, nic_mac="58:9C:FC:00:00:01")
    assert text(by_mac.network_config) == (
        "version: 2\n"
        "ethernets:\n"
        "  eth0:\n"
        "    match:\n"
        '      macaddress: "58:9c:fc:00:00:01"\n'
        "    addresses:\n"
        '      - "192.0.2.21/24"\n'
    )
    e1000 = seed_of(ci, nic_emulation="e1000")
    assert "      driver: e1000\n" in text(e1000.network_config)


def test_ipv6_default_route() -> None:
    ci = CloudInit(
        ssh_authorized_keys=(ED25519,), network=StaticNetwork("2001:db8::21/64", "2001:db8::1")
    )
    config = yaml.safe_load(seed_of(ci).network_config or b"")
    assert config["ethernets"]["eth0"]["addresses"] == ["2001:db8::21/64"]
    assert config["ethernets"]["eth0"]["routes"] == [{"to": "::/0", "via": "2001:db8::1"}]


def test_network_config_text_is_passed_as_written() -> None:
    given_text = "# mine\nversion: 2\nethernets:\n  vtnet0:\n    dhcp4: true\n"
    inline = seed_of(CloudInit(ssh_authorized_keys=(ED25519,), network_config=given_text))
    assert inline.network_config == given_text.encode()
    from_file = seed_of(
        CloudInit(ssh_authorized_keys=(ED25519,), network_config="/etc/net.yaml"),
        network_config=given_text,
    )
    assert from_file.files == inline.files


def test_contents_read_from_files_are_checked_and_the_error_names_the_file() -> None:
    ci = CloudInit(
        ssh_authorized_keys=(ED25519,), user_data="/cloud/web.yaml", network_config="/cloud/n.yaml"
    )
    seed, errors = render_seed(
        ci, guest_name="web1", file=FILE, user_data="packages: []\n", network_config="version: 9\n"
    )
    assert seed is None
    assert [(e.file, e.key) for e in errors] == [
        (FILE, "cloud_init.user_data"),
        (FILE, "cloud_init.network_config"),
    ]
    assert errors[0].message.startswith('/cloud/web.yaml: the first line must be "#cloud-config"')
    assert errors[1].message.startswith("/cloud/n.yaml: needs `version: 2`")


def test_file_contents_must_match_what_the_model_names() -> None:
    with pytest.raises(ValueError, match="its content must be given"):
        render_seed(CloudInit(user_data="/cloud/web.yaml"), guest_name="web1", file=FILE)
    with pytest.raises(ValueError, match="not a path"):
        render_seed(
            CloudInit(user_data="#cloud-config\n"),
            guest_name="web1",
            file=FILE,
            user_data="#cloud-config\n",
        )


# --- The instance-id ---------------------------------------------------------------------------

BASE = CloudInit(
    ssh_authorized_keys=(ED25519,),
    user_data="#cloud-config\npackages: [nginx]\n",
    network=NETWORK,
)


def test_the_same_spec_renders_the_same_bytes() -> None:
    table = {
        "ssh_authorized_keys": [ED25519],
        "user_data": "#!/bin/sh\necho hi\n",
        "network": {"address": "192.0.2.21/24", "gateway": "192.0.2.1"},
    }
    first, _ = parse_cloud_init(table, file=FILE, guest_name="web1")
    again, _ = parse_cloud_init(dict(table), file="/elsewhere/web1.toml", guest_name="web1")
    assert first is not None and again is not None
    assert seed_of(first).files == seed_of(again).files


def test_the_instance_id_is_stable_across_releases() -> None:
    # Pinned on purpose: a new instance-id makes every guest's cloud-init run again on its
    # next boot (new SSH host keys, per-instance modules), so the hash must never change for
    # an unchanged seed.
    seed = seed_of(CloudInit(ssh_authorized_keys=(ed25519_key(1, "a@b"),)))
    assert seed.instance_id == "iid-acdb72bee4732cfd"


@dataclass(frozen=True)
class Inputs:
    """One call of render_seed, differing from the BASE one as a case says."""

    ci: CloudInit = BASE
    guest: str = "web1"
    file: str = FILE
    given: Given = field(default_factory=lambda: Given())

    def render(self) -> tuple[Seed | None, list[SpecError]]:
        return render_seed(self.ci, guest_name=self.guest, file=self.file, **self.given)


CHANGES = [
    ("hostname", Inputs(ci=replace(BASE, hostname="web2"))),
    ("guest-name", Inputs(guest="web2")),
    ("key-added", Inputs(ci=replace(BASE, ssh_authorized_keys=(ED25519, ECDSA)))),
    ("key-comment", Inputs(ci=replace(BASE, ssh_authorized_keys=(ED25519 + "x",)))),
    ("user-data", Inputs(ci=replace(BASE, user_data="#cloud-config\npackages: [nginx, curl]\n"))),
    (
        "network-address",
        Inputs(ci=replace(BASE, network=replace(NETWORK, address="192.0.2.22/24"))),
    ),
    ("network-dropped", Inputs(ci=replace(BASE, network=None))),
    ("nameserver", Inputs(ci=replace(BASE, network=replace(NETWORK, nameservers=("192.0.2.1",))))),
    ("nic-mac", Inputs(given={"nic_mac": "58:9c:fc:00:00:01"})),
    ("nic-emulation", Inputs(given={"nic_emulation": "e1000"})),
]


@pytest.mark.parametrize("change", [c[1] for c in CHANGES], ids=[c[0] for c in CHANGES])
def test_any_change_of_content_changes_the_instance_id(change: Inputs) -> None:
    before = seed_of(BASE)
    after, errors = change.render()
    assert errors == [] and after is not None
    assert after.files != before.files
    assert after.instance_id != before.instance_id


SAME_CONTENT = [
    ("spec-file", Inputs(file="/elsewhere/x.toml")),
    ("guest-name-under-explicit-hostname", Inputs(ci=replace(BASE, hostname="web1"), guest="w9")),
    (
        "user-data-from-a-file",
        Inputs(ci=replace(BASE, user_data="/c/u"), given={"user_data": BASE.user_data}),
    ),
    (
        "nic-unused-without-network",
        Inputs(ci=replace(BASE, network=None), given={"nic_mac": "58:9c:fc:0:0:1"}),
    ),
]


@pytest.mark.parametrize("same", [c[1] for c in SAME_CONTENT], ids=[c[0] for c in SAME_CONTENT])
def test_the_instance_id_changes_only_with_the_content(same: Inputs) -> None:
    reference = replace(BASE, network=None) if same.ci.network is None else BASE
    before = seed_of(reference)
    after, errors = same.render()
    assert errors == [] and after is not None
    assert after.files == before.files


@given(
    hostnames=st.lists(st.sampled_from(["web1", "web2", "db"]), min_size=2, max_size=2),
    scripts=st.lists(st.sampled_from(["#!/bin/sh\n", "#!/bin/sh\ntrue\n"]), min_size=2, max_size=2),
    keys=st.lists(st.integers(0, 2), min_size=2, max_size=2),
)
def test_instance_ids_are_equal_exactly_when_the_files_are(
    hostnames: list[str], scripts: list[str], keys: list[int]
) -> None:
    seeds = [
        seed_of(CloudInit(ssh_authorized_keys=(ed25519_key(k),), user_data=s, hostname=h))
        for h, s, k in zip(hostnames, scripts, keys, strict=True)
    ]
    other = {n: c for n, c in seeds[0].files.items() if n != "meta-data"}
    same_files = other == {n: c for n, c in seeds[1].files.items() if n != "meta-data"}
    same_files = same_files and hostnames[0] == hostnames[1]
    assert (seeds[0].instance_id == seeds[1].instance_id) == same_files


# --- makefs ------------------------------------------------------------------------------------


def test_makefs_argv() -> None:
    assert makefs_argv("/vm/web1/seed.iso", "/var/run/bhyve-reconciler/web1.seed") == [
        "makefs",
        "-t",
        "cd9660",
        "-o",
        "R,L=cidata",
        "/vm/web1/seed.iso",
        "/var/run/bhyve-reconciler/web1.seed",
    ]
    with pytest.raises(ValueError, match="absolute"):
        makefs_argv("seed.iso", "/tmp/seed")
