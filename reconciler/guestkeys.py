"""Every key of a guest file (`conf.d/NAME.toml`), declared once.

`GUEST` is the description the parser, the serializer and the key reference all read: TOML
type, allowed values, meaning and example here; defaults from the `spec` dataclasses; code
rules from `guestrules`. Pure data.
"""

from __future__ import annotations

from reconciler import cloudinit_rules as ci_rules
from reconciler import diskrules
from reconciler import guestrules as rules
from reconciler.schema import (
    Array,
    Boolean,
    Choice,
    Duration,
    HostPath,
    Integer,
    Key,
    Size,
    SubTable,
    TableArray,
    TableMap,
    TableSpec,
    Text,
)
from reconciler.spec import (
    DISK_EMULATIONS,
    LAYOUTS,
    LOADERS,
    NIC_EMULATIONS,
    ON_CHANGES,
    RESTART_POLICIES,
    STATES,
    CloudInit,
    Disk,
    Graphics,
    Grub,
    GuestSpec,
    Install,
    Lifecycle,
    Nic,
    StaticNetwork,
    Topology,
    Uefi,
    VmBhyve,
)
from reconciler.units import format_size

MAX_CPUS = 256
LAST_SLOT = 30  # 0 is the hostbridge's, 31 the lpc's in vm-bhyve's layout
AHCI_PORTS = 32  # bhyve's ahci controller has 32 ports (pci_ahci.c MAX_PORTS)
# A stop longer than this is a typo, and 1e308 seconds would overflow every timer it reaches.
MAX_STOP_TIMEOUT = 3600.0

INSTALL = TableSpec(
    model=Install,
    keys=(
        Key("iso", HostPath(), "install media, booted while the first disk has no boot sector",
            example="/vm/iso/FreeBSD-14.0-RELEASE-amd64-disc1.iso",
            required="missing: [install] needs the path of the install media"),
        Key("force", Boolean(), "boot the install media even when the first disk can boot",
            example=True),
    ),
)  # fmt: skip

DISK = TableSpec(
    model=Disk,
    keys=(
        Key("path", HostPath(), "an image file or a device; a missing file is created",
            example="/vm/web/disk0.img"),
        Key("zvol", Text(), "a ZFS volume `pool/dataset`, created when missing",
            example="zroot/vm/web-disk0", rule=diskrules.zvol),
        Key("size", Size(), "the size to create the image or volume with; never shrunk",
            example="16G", rule=diskrules.size_bytes, dump=format_size),
        Key("emulation", Choice(DISK_EMULATIONS), "the device the guest sees", example="nvme"),
        Key("options", Array(), 'bhyve block options: "nocache", "direct", "ro", "nodelete", '
            '"sectorsize=N[/M]"', example=["nocache", "sectorsize=512/4096"],
            rule=diskrules.disk_options),
        Key("source", Text(), "what a missing disk is made from, once: a raw image file "
            "(copied, holes kept) for `path`, a snapshot `pool/dataset@snap` (cloned) for `zvol`",
            example="/vm/images/debian-12-genericcloud-amd64.raw",
            examples=(("zvol", "zroot/images/debian-12@2024-06"),)),
    ),
    one_of=(("path", "an image file or device"), ("zvol", "pool/dataset")),
    rule=diskrules.disk_source,
)  # fmt: skip

# `ssh-keygen -t ed25519 -C admin@example`: an example, as a person pastes one.
_EXAMPLE_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKfrO3VyF2A4zpjVSimaQkQGAE55/JuUQjuTFHl63mYS admin@example"
)

CLOUD_INIT_NETWORK = TableSpec(
    model=StaticNetwork,
    keys=(
        Key("address", Text(), "the guest's address with its prefix length",
            example="192.0.2.21/24", rule=ci_rules.address,
            required='missing: the guest\'s address with its prefix, like "192.0.2.21/24"'),
        Key("gateway", Text(), "the default route, a host on the guest's network",
            example="192.0.2.1", rule=ci_rules.ip_address),
        Key("nameservers", Array("IP addresses"), "DNS servers", example=["192.0.2.1"],
            rule=ci_rules.nameservers),
    ),
    rule=ci_rules.network_table,
)  # fmt: skip

CLOUD_INIT = TableSpec(
    model=CloudInit,
    keys=(
        Key("ssh_authorized_keys", Array("public keys"), "OpenSSH public keys the image's "
            "default user logs in with", example=[_EXAMPLE_KEY], rule=ci_rules.ssh_keys),
        Key("user_data", Text(), 'user-data: "#cloud-config" YAML or a "#!" script, inline or '
            "the absolute path of a file (the keys above are merged in)",
            example="#cloud-config\npackages: [nginx]\n", rule=ci_rules.user_data),
        Key("hostname", Text(), "the guest's host name (meta-data local-hostname)",
            example="web1.example.org", rule=ci_rules.hostname,
            default_doc="the guest's name"),
        Key("network", SubTable(CLOUD_INIT_NETWORK), "one static address on the first NIC; "
            "unset: the image's own default (DHCP)"),
        Key("network_config", Text(), "network config (version 2, netplan's, or 1), inline or "
            "the absolute path of a file", example="version: 2\nethernets: {}\n",
            rule=ci_rules.network_config),
    ),
    at_most_one=(("network", "one static address"), ("network_config", "")),
    rule=ci_rules.cloud_init_table,
)  # fmt: skip

NIC = TableSpec(
    model=Nic,
    keys=(
        Key("tap", Text(), "the tap interface; unset: the reconciler allocates one",
            example="tap0", rule=rules.tap),
        Key("bridge", Text(), "the bridge the tap joins", example="bridge0",
            rule=rules.interface),
        Key("emulation", Choice(NIC_EMULATIONS), "the device the guest sees", example="e1000"),
        Key("mac", Text(), "a fixed unicast MAC address; unset: bhyve derives one",
            example="58:9c:fc:00:00:01", rule=rules.mac),
    ),
)  # fmt: skip

UEFI = TableSpec(
    model=Uefi,
    keys=(
        Key("firmware", HostPath(), "the UEFI firmware image",
            example="/usr/local/share/uefi-firmware/BHYVE_UEFI_CSM.fd"),
        Key("vars", Boolean(), "keep UEFI variables in a per-guest copy of the vars template",
            example=True),
        Key("vars_file", HostPath(), "with vars: keep them in this file, which the daemon "
            "never creates or removes, not in a copy in its state dir",
            example="/vm/win/uefi-vars.fd"),
    ),
    rule=rules.uefi_vars_file,
)  # fmt: skip

GRAPHICS = TableSpec(
    model=Graphics,
    keys=(
        Key("listen", Text(), 'the VNC address, "host:port"', example="0.0.0.0:5901",
            rule=rules.listen),
        Key("width", Integer(640, 3840), "framebuffer width in pixels", example=1280),
        Key("height", Integer(480, 2160), "framebuffer height in pixels", example=720),
        Key("wait", Boolean(), "hold the boot until a VNC client connects", example=True),
        Key("wait_install", Boolean(), "hold the boot until a VNC client connects while the "
            "install media boots", example=True),
        Key("tablet", Boolean(), "add a USB tablet so the mouse pointer follows", example=True),
    ),
)  # fmt: skip

GRUB = TableSpec(
    model=Grub,
    keys=(
        Key("root", Text(), "grub-bhyve's root device; unset: cd0 while installing, else "
            "hd0,msdos1", example="hd0,msdos1", rule=rules.grub_root),
        Key("config", Text(), "grub commands written to grub.cfg instead of the guest's own",
            example="linux (hd0,msdos1)/vmlinuz root=/dev/sda1\nboot\n",
            rule=rules.grub_config),
    ),
)  # fmt: skip

TOPOLOGY = TableSpec(
    model=Topology,
    keys=(
        Key("sockets", Integer(1, MAX_CPUS), "CPU sockets", example=2,
            default_doc="the vCPU count"),
        Key("cores", Integer(1, MAX_CPUS), "cores per socket", example=2, default_doc="1"),
        Key("threads", Integer(1, MAX_CPUS), "threads per core", example=1, default_doc="1"),
    ),
)  # fmt: skip

VM_BHYVE = TableSpec(
    model=VmBhyve,
    keys=(
        Key("start_slot", Integer(1, LAST_SLOT), "the PCI slot of the first disk "
            "(vm-bhyve's start_slot)", example=5),
        Key("install_slot", Integer(1, LAST_SLOT), "the PCI slot of the install media "
            "(vm-bhyve's install_slot)", example=2),
        Key("ahci_device_limit", Integer(1, AHCI_PORTS), "ahci disks per ahci controller "
            "(vm-bhyve's ahci_device_limit)", example=8),
        Key("grub_run_dir", Text(), "grub-bhyve -d without [grub] config: where grub.cfg is "
            "on the root device (vm-bhyve's grub_run_dir)", example="/boot/grub",
            rule=rules.grub_word),
        Key("grub_run_file", Text(), "grub-bhyve -g without [grub] config: grub.cfg's name "
            "(vm-bhyve's grub_run_file)", example="grub.conf", rule=rules.grub_word),
    ),
)  # fmt: skip

LOADER_VARIABLE = Key(
    "<name>", Text(), "a bhyveload -e variable", example="3", rule=rules.argv_text
)

GUEST = TableSpec(
    model=GuestSpec,
    groups=(("lifecycle", Lifecycle),),
    keys=(
        Key("name", Text(), "the guest's name (vm name, nmdm device, logs)", example="web",
            rule=rules.guest_name, default_doc="the file name without .toml"),
        Key("cpus", Integer(1, MAX_CPUS), "virtual CPUs", example=4),
        Key("memory", Size(), "guest memory", example="2G", rule=rules.memory),
        Key("topology", SubTable(TOPOLOGY), "how the vCPUs look to the guest (bhyve -c)",
            rule=rules.topology),
        Key("uuid", Text(), "the UUID the guest sees (bhyve -U)",
            example="8e3f4b1c-61b6-11ef-9a0c-002590f1a2b3", rule=rules.uuid,
            default_doc="bhyve's, from the host and guest names"),
        Key("state", Choice(STATES), "whether the guest should run", example="stopped",
            field="lifecycle.state"),
        Key("loader", Choice(LOADERS), "what loads the guest's kernel", example="uefi"),
        Key("console", Text(), 'the serial console: "nmdm" (/dev/nmdm-NAME.1A) or a device',
            example="/dev/nmdm0A", rule=rules.console),
        Key("order", Integer(), "guests start by ascending order and stop in reverse",
            example=10, field="lifecycle.order"),
        Key("restart", Choice(RESTART_POLICIES), "what to do when the guest exits",
            example="always", field="lifecycle.restart"),
        Key("on_change", Choice(ON_CHANGES), "when an edit that changes what boots applies",
            example="next-boot", field="lifecycle.on_change"),
        Key("stop_timeout", Duration(MAX_STOP_TIMEOUT), "how long an ACPI shutdown may take "
            "before a forced power-off", example="5m", field="lifecycle.stop_timeout",
            default_doc="the daemon config's stop_timeout"),
        Key("host", Text(), "the host that runs the guest (the daemon config's host_name); "
            "other hosts validate the file and leave the guest alone", example="hv1",
            field="lifecycle.host", rule=rules.host_name,
            default_doc='this host with placement = "any", none with "required"'),
        Key("shared_storage", Boolean(), "its disks are on storage other hosts see (NFS): "
            "a lock file beside the first disk lets one host at a time boot it",
            example=True, field="lifecycle.shared_storage", rule=rules.shared_storage),
        Key("utc_clock", Boolean(), "the RTC keeps UTC, not local time", example=True),
        Key("ignore_msrs", Boolean(), "ignore accesses to unknown MSRs (bhyve -w)", example=True),
        Key("wire_memory", Boolean(), "wire guest memory (bhyve -S); passthru implies it",
            example=True),
        Key("passthru", Array(), 'PCI devices to pass through, "bus/slot/function"',
            example=["2/0/0"], rule=rules.passthru),
        Key("loader_env", TableMap(LOADER_VARIABLE, rules.loader_variable_name,
            "autoboot_delay"), "bhyveload environment variables", only_with=("loader",
            "bhyveload")),
        Key("install", SubTable(INSTALL), "install media"),
        Key("disk", TableArray(DISK), "the guest's disks, in PCI slot order", field="disks",
            rule=diskrules.disks, required="a guest needs at least one [[disk]]"),
        Key("nic", TableArray(NIC), "the guest's network interfaces", field="nics",
            rule=rules.nics),
        Key("uefi", SubTable(UEFI), "UEFI firmware", only_with=("loader", "uefi")),
        Key("graphics", SubTable(GRAPHICS), "a framebuffer served over VNC",
            only_with=("loader", "uefi")),
        Key("grub", SubTable(GRUB), "grub-bhyve settings", only_with=("loader", "grub")),
        Key("layout", Choice(LAYOUTS), 'PCI slots and argument order: vmrun.sh\'s, or '
            '"vm-bhyve" for a guest vm-bhyve installed', example="vm-bhyve"),
        Key("vm_bhyve", SubTable(VM_BHYVE), "vm-bhyve's slot and loader settings",
            only_with=("layout", "vm-bhyve")),
        Key("cloud_init", SubTable(CLOUD_INIT), "a NoCloud seed (cloud-init) on a CD, rebuilt "
            "before a boot whenever it changes"),
    ),
    rule=rules.device_count,
)  # fmt: skip
