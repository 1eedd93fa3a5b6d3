"""Reading vm-bhyve guests (freebsd/vm-bhyve, formerly churchers/vm-bhyve) without running it.

Pure, like the rest of the core: `.conf` text in, typed values and command lines out.

- `conf`: a guest's NAME.conf or system.conf as vm-bhyve reads it, with every line sh/sysrc
  could read differently reported by line number.
- `system`: switches and datastores of `$vm_dir/.config/system.conf`.
- `run` (with `devices`, `load`, `words`, `facts`): the loader and bhyve argv vm-bhyve's
  `vm _run` would build, given what it would learn from the host. It is a model of vm-bhyve's
  shell code, the oracle for imported guests, and must never be derived from bhyve.py.
- `datastore` (with `convert`, `devices_import`, `draft`, `vocabulary`): the importer, every
  guest of a datastore as a spec with `layout = "vm-bhyve"` (bhyve_layout.py lays its argv
  out), and the account of every key: carried over, dropped with a reason, or refused.
"""

from reconciler.vmbhyve.conf import ConfFile, ConfProblem, Setting, is_yes, parse_conf
from reconciler.vmbhyve.facts import RunFacts, VmRunError, VmRunRefused, VmRunUnmodelled
from reconciler.vmbhyve.run import VmRunCommands, uefi_loader, vm_run_commands
from reconciler.vmbhyve.system import Datastore, Switch, SystemConf, parse_system_conf

__all__ = [
    "ConfFile",
    "ConfProblem",
    "Datastore",
    "RunFacts",
    "Setting",
    "Switch",
    "SystemConf",
    "VmRunCommands",
    "VmRunError",
    "VmRunRefused",
    "VmRunUnmodelled",
    "is_yes",
    "parse_conf",
    "parse_system_conf",
    "uefi_loader",
    "vm_run_commands",
]
