"""Daemons of a fleet on simulated hosts: one `Harness` per host, configured with a host name
and a placement, and (for shared storage) a disk directory the hosts share.

Two simulated hosts are two roots: each has its own kernel state (/dev/vmm, interfaces, its
simulated bhyve processes), its own conf.d checkout, run_dir and state_dir, and its own daemon.
Shared storage is modelled as an NFS mount is: `/nfs` on each host is the same directory (a
symbolic link from each root to one directory of the test), so both daemons see the same disk
images and the same lock files through the same paths, with the atomicity of one local file
system (what NFSv3+ gives link(2) and rename(2) at the server).
"""

from __future__ import annotations

from pathlib import Path

from daemon_harness import Harness


class FleetHost(Harness):
    def __init__(self, tmp_path: Path, name: str, *, shared: Path | None = None) -> None:
        self.name = name
        base = tmp_path / name
        base.mkdir()
        super().__init__(base)
        # Shorter than the harness's: a control socket's path must fit sun_path (104 bytes).
        self.run_dir = base / "run"
        self.configure()
        if shared is not None:
            (self.root / "nfs").symlink_to(shared, target_is_directory=True)

    def configure(  # type: ignore[override]
        self,
        *,
        stop_timeout: str = "1s",
        placement: str = "required",
        resync: str = "1h",
        extra: str = "",
    ) -> None:
        """The harness's daemon config, plus this host's name and placement. A long resync by
        default: only file events, exits and lock polls explain what a test sees."""
        self.config.write_text(
            f'conf_dir = "{self.conf_dir}"\n'
            f'state_dir = "{self.state_dir}"\n'
            f'run_dir = "{self.run_dir}"\n'
            f'stop_timeout = "{stop_timeout}"\n'
            f'resync_interval = "{resync}"\n'
            f'host_name = "{self.name}"\n'
            f'placement = "{placement}"\n'
            f"{extra}"
            "[bridges.bridge0]\n"
            'members = ["igb0"]\n'
        )


def fleet_guest(name: str, host: str | None = None, *, shared: bool = False, tap: str = "") -> str:
    """A small guest placed on `host`; with `shared`, its disk is on /nfs with a lock."""
    lines = [f'name = "{name}"', 'memory = "256M"', "cpus = 2"]
    if host is not None:
        lines.append(f'host = "{host}"')
    if shared:
        lines.append("shared_storage = true")
    disk = f"/nfs/{name}/disk0.img" if shared else f"/vm/{name}/disk0.img"
    lines += ["[[disk]]", f'path = "{disk}"', 'size = "1G"']
    if tap:
        lines += ["[[nic]]", f'tap = "{tap}"', 'bridge = "bridge0"']
    return "\n".join(lines) + "\n"
