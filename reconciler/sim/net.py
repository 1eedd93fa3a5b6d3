"""Simulated ifconfig(8): interface status in FreeBSD 14's format, cloning, bridges, flags.

Owns the formatting of `ifconfig` output and the semantics of its parameters (create,
destroy, addm, deletem, up, down, description, group, mtu) with FreeBSD's messages and exit
statuses (reference §4.3-4.5). It must not print directly: it writes to the tool's Output.
"""

from __future__ import annotations

from reconciler.sim import state as st
from reconciler.sim.procs import bhyve_pid

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

_FLAG_NAMES = (
    (0x1, "UP"),
    (0x2, "BROADCAST"),
    (0x4, "DEBUG"),
    (0x8, "LOOPBACK"),
    (0x10, "POINTOPOINT"),
    (0x40, "RUNNING"),
    (0x80, "NOARP"),
    (0x100, "PROMISC"),
    (0x200, "ALLMULTI"),
    (0x800, "SIMPLEX"),
    (0x1000, "LINK0"),
    (0x8000, "MULTICAST"),
)
_CLONERS = ("tap", "bridge")
_MEMBER_FLAGS = "flags=143<LEARNING,DISCOVER,AUTOEDGE,AUTOPTP>"


def _flags(value: int) -> str:
    names = ",".join(name for bit, name in _FLAG_NAMES if value & bit)
    return f"flags={value:x}<{names}>"


def _ether(iface: st.Iface) -> str:
    index = iface["index"]
    prefix = "00:25:90" if iface["kind"] == "physical" else "58:9c:fc"
    return f"{prefix}:{(index * 37) & 0xFF:02x}:{(index >> 8) & 0xFF:02x}:{index & 0xFF:02x}"


def _bridge_of(state: st.State) -> dict[str, str]:
    return {
        member: name
        for name, iface in state["interfaces"].items()
        if iface["kind"] == "bridge"
        for member in iface["members"]
    }


def _opener(root: str, iface: st.Iface) -> int | None:
    guest = iface["opened_by"]
    return None if guest is None else bhyve_pid(root, guest)


def _cloner_groups(iface: st.Iface) -> list[str]:
    kind = iface["kind"]
    own = {"loopback": ["lo"], "physical": [], "tap": ["tap"], "bridge": ["bridge"]}[kind]
    return own + iface["groups"]


def status_text(root: str, state: st.State, name: str, bridges: dict[str, str]) -> list[str]:
    """The lines `ifconfig NAME` prints for one interface."""
    iface = state["interfaces"][name]
    kind = iface["kind"]
    up = iface["up"]
    pid = _opener(root, iface) if kind == "tap" else None
    if kind == "loopback":
        flags = 0x8008 | (0x41 if up else 0)
    else:
        flags = 0x8802 | (0x1 if up else 0)
        if (kind in ("physical", "bridge") and up) or pid is not None:
            flags |= 0x40
        if name in bridges:
            flags |= 0x100
    lines = [f"{name}: {_flags(flags)} metric 0 mtu {iface['mtu']}"]
    if iface["description"] is not None:
        lines.append(f"\tdescription: {iface['description']}")
    if kind == "loopback":
        lines += [
            "\toptions=680003<RXCSUM,TXCSUM,LINKSTATE,RXCSUM_IPV6,TXCSUM_IPV6>",
            "\tinet6 ::1 prefixlen 128",
            f"\tinet6 fe80::1%{name} prefixlen 64 scopeid 0x{iface['index']:x}",
            "\tinet 127.0.0.1 netmask 0xff000000",
        ]
    elif kind == "physical":
        lines += [
            "\toptions=4e527bb<RXCSUM,TXCSUM,VLAN_MTU,VLAN_HWTAGGING,JUMBO_MTU,VLAN_HWCSUM,TSO4,"
            "TSO6,LRO,WOL_MAGIC,VLAN_HWFILTER,VLAN_HWTSO,RXCSUM_IPV6,TXCSUM_IPV6,NOMAP>",
            f"\tether {_ether(iface)}",
        ]
        if iface["index"] == 1:
            lines.append("\tinet 192.168.1.10 netmask 0xffffff00 broadcast 192.168.1.255")
    elif kind == "tap":
        lines += ["\toptions=80000<LINKSTATE>", f"\tether {_ether(iface)}"]
    else:
        ether = _ether(iface)
        lines += [
            "\toptions=0",
            f"\tether {ether}",
            f"\tid {ether} priority 32768 hellotime 2 fwddelay 15",
            "\tmaxage 20 holdcnt 6 proto rstp maxaddr 2000 timeout 1200",
            f"\troot id {ether} priority 32768 ifcost 0 port 0",
        ]
        # FreeBSD lists the most recently added member first.
        for member in reversed(iface["members"]):
            info = state["interfaces"].get(member)
            port = info["index"] if info else 0
            cost = 20000 if info and info["kind"] == "physical" else 2000000
            lines += [
                f"\tmember: {member} {_MEMBER_FLAGS}",
                f"\t        ifmaxaddr 0 port {port} priority 128 path cost {cost}",
            ]
    groups = _cloner_groups(iface)
    if groups:
        lines.append("\tgroups: " + " ".join(groups))
    if kind == "physical":
        lines += ["\tmedia: Ethernet autoselect (1000baseT <full-duplex>)", "\tstatus: active"]
    elif kind == "tap":
        lines += [
            "\tmedia: Ethernet autoselect",
            "\tstatus: " + ("active" if pid is not None else "no carrier"),
        ]
    if kind == "loopback":
        lines.append("\tnd6 options=21<PERFORMNUD,AUTO_LINKLOCAL>")
    elif kind == "bridge":
        lines.append("\tnd6 options=9<PERFORMNUD,IFDISABLED>")
    else:
        lines.append("\tnd6 options=29<PERFORMNUD,IFDISABLED,AUTO_LINKLOCAL>")
    if pid is not None:
        lines.append(f"\tOpened by PID {pid}")
    return lines


def new_iface(state: st.State, kind: st.IfaceKind) -> st.Iface:
    index = state["next_ifindex"]
    state["next_ifindex"] += 1
    return {
        "kind": kind,
        "up": False,
        "members": [],
        "description": None,
        "groups": [],
        "mtu": 1500,
        "index": index,
        "opened_by": None,
    }


def _clone_name(state: st.State, cloner: str) -> str:
    unit = 0
    while f"{cloner}{unit}" in state["interfaces"]:
        unit += 1
    return f"{cloner}{unit}"


def _cloner_of(name: str) -> str | None:
    for cloner in _CLONERS:
        unit = name[len(cloner) :]
        if name.startswith(cloner) and (unit == "" or unit.isdigit()):
            return cloner
    return None


def _maybeload(state: st.State, cloner: str) -> bool:
    """ifconfig's ifmaybeload(): load the cloner's module unless it is already in the kernel.

    sbin/ifconfig/ifconfig.c module_map maps "tap" to if_tuntap; other names to if_<name>.
    """
    module = "if_tuntap" if cloner == "tap" else f"if_{cloner}"
    if module in st.modules_present(state):
        return False
    st.kld_load(state, module + ".ko")
    return True


def create(store: st.Store, name: str, out: Output) -> str | None:
    """SIOCIFCREATE2; returns the new interface's name, or None after printing the error."""
    state = store.state
    cloner = _cloner_of(name)
    if cloner is None:
        # ifclone.c ifclonecreate(): no cloner claims the name, the kernel says EINVAL.
        out.error("ifconfig: SIOCIFCREATE2: Invalid argument")
        return None
    _maybeload(state, cloner)
    actual = _clone_name(state, cloner) if name == cloner else name
    state["interfaces"][actual] = new_iface(state, "tap" if cloner == "tap" else "bridge")
    store.dirty = True
    if actual != name:
        # ifclone.c: "If we get a different name back than we put in, print it."
        out.print(actual)
    return actual


def _destroy(store: st.Store, name: str, out: Output) -> bool:
    state = store.state
    iface = state["interfaces"][name]
    if iface["kind"] not in ("tap", "bridge"):
        out.error("ifconfig: SIOCIFDESTROY: Invalid argument")
        return False
    for other in state["interfaces"].values():
        if name in other["members"]:
            other["members"].remove(name)
    del state["interfaces"][name]
    store.dirty = True
    return True


def _addm(store: st.Store, bridge: str, member: str, out: Output) -> bool:
    state = store.state
    if state["interfaces"][bridge]["kind"] != "bridge":
        out.error(f"ifconfig: BRDGADD {member}: Invalid argument")
        return False
    target = state["interfaces"].get(member)
    if target is None:
        out.error(f"ifconfig: BRDGADD {member}: No such file or directory")
        return False
    owner = _bridge_of(state).get(member)
    if owner == bridge:
        out.error(f"ifconfig: BRDGADD {member}: File exists")
        return False
    if owner is not None:
        out.error(f"ifconfig: BRDGADD {member}: Device busy")
        return False
    if target["kind"] not in ("physical", "tap") or member == bridge:
        out.error(f"ifconfig: BRDGADD {member}: Invalid argument")
        return False
    state["interfaces"][bridge]["members"].append(member)
    store.dirty = True
    return True


def _deletem(store: st.Store, bridge: str, member: str, out: Output) -> bool:
    iface = store.state["interfaces"][bridge]
    if iface["kind"] != "bridge" or member not in iface["members"]:
        error = "Invalid argument" if iface["kind"] != "bridge" else "No such file or directory"
        out.error(f"ifconfig: BRDGDEL {member}: {error}")
        return False
    iface["members"].remove(member)
    store.dirty = True
    return True


# Parameters that take one value, as ifconfig's parser knows them.
_WITH_VALUE = ("addm", "deletem", "description", "descr", "group", "-group", "mtu")


def _apply(store: st.Store, name: str, params: list[str], out: Output) -> int:
    state = store.state
    i = 0
    while i < len(params):
        param = params[i]
        value = ""
        if param in _WITH_VALUE:
            if i + 1 >= len(params):
                out.error(f"ifconfig: {param}: missing argument")
                return 1
            value = params[i + 1]
            i += 1
        i += 1
        if name not in state["interfaces"]:
            out.error(f"ifconfig: interface {name} does not exist")
            return 1
        iface = state["interfaces"][name]
        ok = True
        if param == "destroy":
            ok = _destroy(store, name, out)
        elif param in ("up", "down"):
            iface["up"] = param == "up"
        elif param == "addm":
            ok = _addm(store, name, value, out)
        elif param == "deletem":
            ok = _deletem(store, name, value, out)
        elif param in ("description", "descr"):
            iface["description"] = value or None
        elif param in ("-description", "-descr"):
            iface["description"] = None
        elif param == "group":
            if value[-1:].isdigit() or not value:
                out.error("ifconfig: SIOCAIFGROUP: Invalid argument")
                return 1
            if value not in iface["groups"]:
                iface["groups"].append(value)
        elif param == "-group":
            if value in iface["groups"]:
                iface["groups"].remove(value)
        elif param == "mtu":
            if not value.isdigit() or not 72 <= int(value) <= 65535:
                out.error("ifconfig: SIOCSIFMTU (set mtu): Invalid argument")
                return 1
            iface["mtu"] = int(value)
        else:
            out.error(f"ifconfig: {param}: bad value")
            return 1
        if not ok:
            return 1
        store.dirty = True
    return 0


def ifconfig(store: st.Store, args: list[str], out: Output) -> int:
    state = store.state
    if not args or args[0] == "-a":
        bridges = _bridge_of(state)
        for name in state["interfaces"]:
            for line in status_text(store.root, state, name, bridges):
                out.print(line)
        return 0
    if args[0] == "-l":
        names = list(state["interfaces"])
        if "-u" in args[1:] or "-d" in args[1:]:
            want_up = "-u" in args[1:]
            names = [n for n in names if state["interfaces"][n]["up"] == want_up]
        out.print(" ".join(names))
        return 0
    if args[0] == "-g" and len(args) == 2:
        group = args[1]
        for name, iface in state["interfaces"].items():
            if group in _cloner_groups(iface):
                out.print(name)
        return 0
    if args[0].startswith("-"):
        out.error(
            "usage: ifconfig [-j jail] [-f type:format] [-L] [-C] [-g groupname] interface "
            "address_family [address [dest_address]] [parameters]"
        )
        return 1
    name, params = args[0], args[1:]
    cloner = _cloner_of(name)
    if cloner is not None:
        # ifconfig.c main(): ifmaybeload(ifname) runs before the name is even looked up.
        store.dirty = _maybeload(state, cloner) or store.dirty
    if params[:1] in (["create"], ["plumb"]):
        if name not in state["interfaces"]:
            created = create(store, name, out)
            if created is None:
                return 1
            return _apply(store, created, params[1:], out)
        # sbin/ifconfig/ifconfig.c main() (13.x, 14.x, 15): a bare `create` of an existing
        # name fails before any ioctl; with more arguments the word is dropped and the
        # existing interface is configured.
        if len(params) == 1:
            out.error(f"ifconfig: interface {name} already exists")
            return 1
        params = params[1:]
    if name not in state["interfaces"]:
        out.error(f"ifconfig: interface {name} does not exist")
        return 1
    if not params:
        for line in status_text(store.root, state, name, _bridge_of(state)):
            out.print(line)
        return 0
    return _apply(store, name, params, out)
