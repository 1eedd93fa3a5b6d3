"""Reading vm-bhyve guests (freebsd/vm-bhyve, formerly churchers/vm-bhyve) without running it.

Pure, like the rest of the core: `.conf` text in, typed values and command lines out.

- `conf`: a guest's NAME.conf or system.conf as vm-bhyve reads it, with every line sh/sysrc
  could read differently reported by line number.
- `system`: switches and datastores of `$vm_dir/.config/system.conf`.
"""

from reconciler.vmbhyve.conf import ConfFile, ConfProblem, Setting, is_yes, parse_conf
from reconciler.vmbhyve.system import Datastore, Switch, SystemConf, parse_system_conf

__all__ = [
    "ConfFile",
    "ConfProblem",
    "Datastore",
    "Setting",
    "Switch",
    "SystemConf",
    "is_yes",
    "parse_conf",
    "parse_system_conf",
]
