"""Fixtures for the vm-bhyve importer: a vm-bhyve `$vm_dir` tree and template-shaped guests.

The `.conf` files under tests/importer/fixtures/ were written for these tests from what
vm-bhyve's sample templates and config.sample document (freebsd/vm-bhyve 89c21d0), as
`vm create -t TEMPLATE` would leave them: the template's keys, then the `uuid` and
`network0_mac` it appends.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.vmbhyve import ConfFile, SystemConf, parse_conf, parse_system_conf

FIXTURES = Path(__file__).resolve().parent.parent / "importer" / "fixtures"
VM_DIR = FIXTURES / "vm"
TEMPLATES = FIXTURES / "templates"


def guest_conf(name: str) -> ConfFile:
    return parse_conf((VM_DIR / name / f"{name}.conf").read_text())


def template_conf(template: str) -> ConfFile:
    return parse_conf((TEMPLATES / f"{template}.conf").read_text())


def system_conf() -> SystemConf:
    return parse_system_conf((VM_DIR / ".config" / "system.conf").read_text())
