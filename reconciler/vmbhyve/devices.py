"""The `-s` device list vm-bhyve's vm-run builds, in its order and with its slot numbering.

Pure. One `DeviceBuilder` walks lib/vm-run's `vm::bhyve_device_*` functions in the order
vm::run calls them (basic, disks, networking, rand, passthru, fbuf, mouse, sound, console),
moving the same bus/slot/function cursor they move, and checking for the end of a bus at the
same points (lib/vm-run at freebsd/vm-bhyve 89c21d0; line numbers below are that file's).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from reconciler.vmbhyve.conf import ConfFile, is_yes
from reconciler.vmbhyve.facts import RunFacts, VmRunUnmodelled
from reconciler.vmbhyve.system import SystemConf

_BUS0_SLOTS = 31  # _maxslots=31: lpc holds 0:31 (vm-run:17)
_SLOTS = 32
_FUNCTIONS = 8
_NUMBER_RE = re.compile(r"[0-9]+")
_CONSOLE_YES_RE = re.compile(r"yes|on|1", re.IGNORECASE)
_MAX_CONSOLES = 16
_AHCI_MAX = 32


@dataclass
class _Cursor:
    bus: int
    slot: int
    func: int = 0
    maxslots: int = _BUS0_SLOTS

    def wrap(self) -> None:
        """The `if [ ${_slot} -ge ${_maxslots} ]` block vm-run repeats after each device."""
        if self.slot >= self.maxslots:
            self.slot = 0
            self.bus += 1
            self.maxslots = _SLOTS


class DeviceBuilder:
    """Mutable while one guest's devices are built; `devices` and `opts_tail` are the output."""

    def __init__(
        self, name: str, conf: ConfFile, system: SystemConf, facts: RunFacts, *, uefi: bool
    ) -> None:
        self.name = name
        self.conf = conf
        self.system = system
        self.facts = facts
        self.uefi = uefi
        start = conf.text("start_slot", "4")  # vm-run:48
        if _NUMBER_RE.fullmatch(start) is None:
            raise VmRunUnmodelled(f"start_slot {start!r} is not a number: sh arithmetic on it")
        self.cursor = _Cursor(bus=0, slot=int(start))
        self.devices = ""  # _devices, a string as in vm-run: it is word-split at the end
        self.opts_tail = ""  # what device functions append to _opts (passthru's -S)
        self.wired = False  # _wiredmem set by passthru
        self.taps: list[str] = []  # _taplist: created taps vm-run destroys at the end
        self.warnings: list[str] = []
        self._new_taps: Iterator[str] = iter(facts.new_taps)
        self._new_macs: Iterator[str] = iter(facts.new_macs)

    def _add(self, device: str) -> None:
        self.devices += f" -s {device}"

    def basic(self, hostbridge: str, fwcfg: str) -> None:
        """vm::bhyve_device_basic (vm-run:434): hostbridge at 0, lpc at 31; it sets _devices."""
        if hostbridge.startswith("no"):
            self.devices = ""
        elif hostbridge == "amd":
            self.devices = "-s 0,amd_hostbridge"
        else:
            self.devices = "-s 0,hostbridge"
        self.devices += (" " if self.devices else "") + "-s 31,lpc"
        if fwcfg:
            self.devices += f",fwcfg={fwcfg}"

    def disk_path(self, disk: str, dev: str) -> str:
        """vm::get_disk_path (vm-run:844): where diskN_name points for each diskN_dev."""
        if dev in ("zvol", "sparse-zvol"):
            return f"/dev/zvol/{self.facts.zfs_dataset}/{self.name}/{disk}"
        if dev in ("custom", "9p"):
            return disk
        if dev == "iscsi":
            raise VmRunUnmodelled(f"iscsi disk {disk!r}: vm-bhyve looks it up with iscsictl -L")
        return f"{self.facts.ds_path}/{self.name}/{disk}"

    def _ahci_limit(self) -> int:
        value = self.conf.text("ahci_device_limit")  # vm-run:467-476
        if _NUMBER_RE.fullmatch(value) and 1 < int(value) <= _AHCI_MAX:
            return int(value)
        return 1

    def disks(self) -> None:
        """vm::bhyve_device_disks (vm-run:461): disks from start_slot. Without UEFI they are
        functions of one slot; with UEFI each takes its own slot."""
        cur = self.cursor
        limit = self._ahci_limit()
        ahci, ahci_count, num = "", 0, 0
        while self.conf.text(f"disk{num}_name") and self.conf.text(f"disk{num}_type"):
            disk, kind = self.conf.text(f"disk{num}_name"), self.conf.text(f"disk{num}_type")
            opts = self.conf.text(f"disk{num}_opts")
            if cur.func >= _FUNCTIONS:
                cur.func, cur.slot = 0, cur.slot + 1
            cur.wrap()
            path = self.disk_path(disk, self.conf.text(f"disk{num}_dev"))
            added = False
            if limit > 1 and kind.split("-", 1)[0] == "ahci":
                if kind in ("ahci-hd", "ahci-cd"):
                    ahci += f",{kind[-2:]}:{path}" + (f",{opts}" if opts else "")
                    ahci_count += 1
                    if ahci_count >= limit:
                        self._add(f"{cur.bus}:{cur.slot}:{cur.func},ahci{ahci}")
                        ahci, ahci_count, added = "", 0, True
            else:
                self._add(f"{cur.bus}:{cur.slot}:{cur.func},{kind},{path}")
                self.devices += f",{opts}" if opts else ""
                added = True
            if added and self.uefi:
                cur.slot += 1
            elif added:
                cur.func += 1
            cur.wrap()
            num += 1
        self._disks_done(ahci, num)

    def _disks_done(self, ahci: str, num: int) -> None:
        cur = self.cursor
        if ahci:
            self._add(f"{cur.slot}:{cur.func},ahci{ahci}")  # vm-run:554: no bus in this one
            if self.uefi:
                cur.slot += 1
        if num >= 1 and not self.uefi:
            cur.slot, cur.func = cur.slot + 1, 0
        cur.wrap()

    def networking(self) -> None:
        """vm::bhyve_device_networking (vm-run:579): the NICs are functions of one slot."""
        cur = self.cursor
        num = 0
        while self.conf.text(f"network{num}_type"):
            if cur.func >= _FUNCTIONS:
                cur.func, cur.slot = 0, cur.slot + 1
            cur.wrap()
            self._provision(num, self.conf.text(f"network{num}_type"))
            num += 1
        if num >= 1:
            cur.slot, cur.func = cur.slot + 1, 0
        cur.wrap()

    def _mac(self, num: int) -> str:
        mac = self.conf.text(f"network{num}_mac")
        if mac:
            return mac
        mac = next(self._new_macs, "")  # vm::generate_static_mac, saved with sysrc
        if not mac:
            raise VmRunUnmodelled(
                f"network{num} has no MAC: vm-bhyve would generate one; give it in new_macs"
            )
        return mac

    def _backend(self, num: int, switch_type: str, switch: str, mac: str) -> str | None:
        """The device's backend (lib/vm-switch switch::provision), None if vm-run adds none."""
        if switch_type == "vale":
            # switch::vale::id: 5 hex digits of md5(switch) and of md5(mac) (`md5 -qs`).
            ids = [hashlib.md5(text.encode()).hexdigest()[:5] for text in (switch, mac)]
            return f"vale{ids[0]}:{ids[1]}"
        if switch_type == "netgraph":
            raise VmRunUnmodelled(f"network{num} is on netgraph switch {switch!r}: ngctl decides")
        if switch_type not in ("standard", "manual", "vxlan"):
            self.warnings.append(f"unable to configure interface {num}")
            return None
        device = self.conf.text(f"network{num}_device")
        if device:
            return device  # an existing interface: not created, not destroyed
        tap = self.conf.text(f"network{num}_name") or next(self._new_taps, "")
        if not tap:
            raise VmRunUnmodelled(f"network{num}: give the tap `ifconfig tap create` prints")
        self.taps.append(tap)
        return tap

    def _provision(self, num: int, emulation: str) -> None:
        mac = self._mac(num)
        switch = self.conf.text(f"network{num}_switch")
        # switch::type returns before setting a type for an empty name: no device at all.
        switch_type = self.system.switch(switch).type if switch else ""
        backend = self._backend(num, switch_type, switch, mac)
        if backend is None:
            return
        cur = self.cursor
        self._add(f"{cur.bus}:{cur.slot}:{cur.func},{emulation},{backend},mac={mac}")
        cur.func += 1

    def rand(self) -> None:
        if self.conf.yesno("virt_random"):  # vm::bhyve_device_rand (vm-run:616)
            self._add(f"{self.cursor.bus}:{self.cursor.slot}:0,virtio-rnd")
            self.cursor.slot += 1
        self.cursor.wrap()

    def passthru(self) -> None:
        """vm::bhyve_device_passthru (vm-run:779): functions of one host slot stay together."""
        cur = self.cursor
        func, num, last = 0, 0, ""  # its own local _func
        while self.conf.text(f"passthru{num}"):
            dev = self.conf.text(f"passthru{num}")
            options = self.conf.text(f"passthru{num}_options")
            suffix = f",{options}" if options else ""
            if "=" in dev:
                # `A/B/C=S:F` fixes the guest slot: ${_dev##*=} and ${_dev%%=*}.
                self._add(f"{cur.bus}:{dev.rsplit('=', 1)[1]},passthru,{dev.split('=', 1)[0]}")
                self.devices += suffix
            else:
                host_slot = dev.split("/", 1)[0]
                if last and last != host_slot:
                    cur.slot, func = cur.slot + 1, 0
                cur.wrap()
                self._add(f"{cur.bus}:{cur.slot}:{func},passthru,{dev}{suffix}")
                last, func = host_slot, func + 1
            num += 1
        if num >= 1:
            cur.slot += 1
            self.opts_tail += " -S"  # vm-run:822: passthru needs wired memory
            self.wired = True
        cur.wrap()

    def fbuf(self, installing: bool) -> None:
        """vm::bhyve_device_fbuf (vm-run:631): UEFI guests with graphics=yes only."""
        if not self.uefi or not self.conf.yesno("graphics"):
            return
        conf = self.conf
        wait = conf.text("graphics_wait", "auto")
        if wait == "auto" and not installing:
            wait = "no"
        port = conf.text("graphics_port")
        if not port:
            if self.facts.vnc_port is None:
                raise VmRunUnmodelled("graphics_port is unset: give the free port from 5900")
            port = str(self.facts.vnc_port)
        fbuf = f"tcp={conf.text('graphics_listen') or '0.0.0.0'}:{port}"
        res = conf.text("graphics_res")
        if res:
            fbuf += f",w={res.split('x', 1)[0]},h={res.rsplit('x', 1)[-1]}"
        if conf.text("graphics_vga"):
            fbuf += f",vga={conf.text('graphics_vga')}"
        if conf.text("vnc_password"):
            fbuf += f",password={conf.text('vnc_password')}"
        if is_yes(wait):
            fbuf += ",wait"
        self._add(f"{self.cursor.bus}:{self.cursor.slot}:0,fbuf,{fbuf}")
        self.cursor.slot += 1
        self.cursor.wrap()

    def mouse(self) -> None:
        if self.conf.yesno("xhci_mouse"):  # vm::bhyve_device_mouse (vm-run:703), any loader
            self._add(f"{self.cursor.bus}:{self.cursor.slot}:0,xhci,tablet")
            self.cursor.slot += 1
        self.cursor.wrap()

    def sound(self) -> None:
        if self.conf.yesno("sound"):  # vm::bhyve_device_sound (vm-run:717)
            play = self.conf.text("sound_play", "/dev/dsp0")
            self._add(f"{self.cursor.bus}:{self.cursor.slot}:0,hda,play={play}")
            rec = self.conf.text("sound_rec")
            self.devices += f",rec={rec}" if rec else ""
            self.cursor.slot += 1
        self.cursor.wrap()

    def console(self) -> None:
        """vm::bhyve_device_console (vm-run:742): up to 16 ports on one virtio-console."""
        ports = ""
        value = self.conf.text("virt_console0")
        if not value:
            return
        index = 0
        while value and index < _MAX_CONSOLES:
            port = str(index) if _CONSOLE_YES_RE.fullmatch(value) else value
            ports += f",{port}={self.facts.ds_path}/{self.name}/vtcon.{port}"
            index += 1
            value = self.conf.text(f"virt_console{index}")
        self._add(f"{self.cursor.bus}:{self.cursor.slot}:0,virtio-console{ports}")
        self.cursor.slot += 1
        self.cursor.wrap()
