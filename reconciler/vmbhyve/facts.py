"""What vm-bhyve's `vm _run` would learn from the host, handed in as plain values, and the
errors of the vm-run model.

Pure: frozen values only. Each field names the command or file vm-bhyve consults for it
(freebsd/vm-bhyve 89c21d0, lib/vm-run unless said otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.errors import ReconcilerError

DEFAULT_GRUB_BHYVE = "/usr/local/sbin/grub-bhyve"  # sysutils/grub2-bhyve's install path


@dataclass(frozen=True)
class RunFacts:
    """The host side of one `vm start NAME` / `vm install NAME ISO`."""

    # VM_DS_PATH: the datastore directory holding NAME/NAME.conf (datastore::get_guest).
    ds_path: str
    # $vm_dir from rc.conf: where `.config/null.iso` lives (the default datastore's path).
    vm_dir: str
    # VM_DS_ZFS_DATASET: the datastore's dataset, for zvol disks; "" on a plain directory.
    zfs_dataset: str = ""
    # What each `ifconfig tap create` prints, in the order the NICs ask for one
    # (lib/vm-switch-standard switch::standard::provision).
    new_taps: tuple[str, ...] = ()
    # `vm install NAME ISO`: the full path datastore::iso_find resolved; None for `vm start`.
    iso: str | None = None
    # `vm start -f`, or system.conf console="tmux" (core::__start runs `_run -tf`): com1 is
    # stdio and the loader gets no `-c` (lib/vm-cmd cmd::parse_args, lib/vm-guest).
    foreground: bool = False
    # What `uuidgen` prints when the .conf has no uuid (vm-run saves it with sysrc).
    new_uuid: str | None = None
    # What vm::generate_static_mac picks, in order, for each NIC without networkN_mac.
    new_macs: tuple[str, ...] = ()
    # vm::find_available_net_port's answer (first free port from 5900) when graphics_port
    # is unset; it reads `netstat -an`.
    vnc_port: int | None = None
    # `which grub-bhyve`: guest::load runs the full path.
    grub_bhyve: str = DEFAULT_GRUB_BHYVE
    # NAME.save exists and util::check_bhyve_suspend passes: bhyve gets `-r NAME.save`.
    resume: bool = False


class VmRunError(ReconcilerError):
    """The model cannot say what vm-run would run for this guest."""


class VmRunRefused(VmRunError):
    """vm-run itself stops before bhyve runs (it logs `fatal; ...` and exits)."""


class VmRunUnmodelled(VmRunError):
    """vm-run would consult the host in a way these facts do not describe (iscsi disks,
    netgraph switches, shell patterns in words), or a fact it needs was not given."""
