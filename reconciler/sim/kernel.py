"""Simulated kldstat(8), kldload(8), kldunload(8) and sysctl(8).

Owns the kernel side of the sim: linker files with the modules they hold, and the sysctl
tree, printed exactly as FreeBSD's tools print them (reference §4.1, §4.2, §4.6). It must not
print directly: it writes to the tool's Output.
"""

from __future__ import annotations

import os

from reconciler.sim import state as st
from reconciler.sim.args import UsageError, getopt

TYPE_CHECKING = False
if TYPE_CHECKING:
    from reconciler.sim.tools import Output

_KERNEL_ADDRESS = 0xFFFFFFFF80200000
_HEADER = "Id Refs Address                Size Name"


def _layout(state: st.State) -> dict[str, tuple[int, int, int]]:
    """name -> (refs, address, size): stable fake numbers that look like amd64's."""
    files = state["kld_files"]
    refs = {f["name"]: 1 for f in files}
    refs["kernel"] = len(files)
    for f in files:
        for dependency in _depends(f["name"]):
            refs[dependency] = refs.get(dependency, 1) + 1
    layout: dict[str, tuple[int, int, int]] = {}
    address = _KERNEL_ADDRESS
    for f in files:
        size = 0x1F3E2D8 if f["name"] == "kernel" else 0x3000 + 0x2B9C1 * len(f["name"])
        layout[f["name"]] = (refs[f["name"]], address, size)
        address += (size + 0x1FFFFF) & ~0x1FFFFF
    return layout


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            break
        value /= 1024
    text = f"{value:.1f}{unit}" if value < 10 and unit != "B" else f"{int(value)}{unit}"
    return f"{text:>5}"


def _file_lines(state: st.State, f: st.KldFile, verbose: bool, human: bool) -> list[str]:
    refs, address, size = _layout(state)[f["name"]]
    size_text = _human(size) if human else f"{size:8x}"
    row = f"{f['id']:2d} {refs:4d} {address:#18x} {size_text} {f['name']}"
    if not verbose:
        return [row]
    lines = [f"{row} ({f['path']})", "\tContains modules:", "\t\t Id Name"]
    lines += [f"\t\t{mod_id:3d} {module}" for mod_id, module in f["modules"]]
    return lines


def _find_file(state: st.State, name: str) -> st.KldFile | None:
    base = os.path.basename(name)
    for f in state["kld_files"]:
        if base in (f["name"], f["name"].removesuffix(".ko")) or name == f["path"]:
            return f
    return None


def kldstat(store: st.Store, args: list[str], out: Output) -> int:
    state = store.state
    try:
        options, rest = getopt(args, "dhi:m:n:qv")
    except UsageError as exc:
        out.error(f"kldstat: {exc}")
        out.error("usage: kldstat [-dhqv] [-i id] [-n filename]\n       kldstat [-dq] [-m modname]")
        return 1
    flags = {letter for letter, _ in options}
    values = dict(options)
    quiet, verbose, human = "q" in flags, "v" in flags, "h" in flags
    if "m" in values:
        wanted = values["m"]
        for f in state["kld_files"]:
            for mod_id, module in f["modules"]:
                if module == wanted:
                    if not quiet:
                        out.print("Id  Refs Name")
                        out.print(f"{mod_id:3d} {1:4d} {module}")
                    return 0
        if not quiet:
            out.error(f"kldstat: can't find module {wanted}: No such file or directory")
        return 1
    selected = state["kld_files"]
    if "n" in values or "i" in values:
        found = (
            _find_file(state, values["n"])
            if "n" in values
            else next((f for f in selected if str(f["id"]) == values["i"]), None)
        )
        if found is None:
            if not quiet:
                what = f"file {values['n']}" if "n" in values else f"file id {values['i']}"
                out.error(f"kldstat: can't find {what}: No such file or directory")
            return 1
        if quiet:
            return 0
        selected = [found]
    if rest:
        out.error("usage: kldstat [-dhqv] [-i id] [-n filename]\n       kldstat [-dq] [-m modname]")
        return 1
    out.print(_HEADER)
    for f in selected:
        for line in _file_lines(state, f, verbose, human):
            out.print(line)
    return 0


def _catalogue_name(name: str) -> str | None:
    base = os.path.basename(name)
    filename = base if base.endswith(".ko") else base + ".ko"
    return filename if filename in st.KLD_CATALOGUE else None


def kldload(store: st.Store, args: list[str], out: Output) -> int:
    state = store.state
    try:
        options, names = getopt(args, "nqv")
    except UsageError as exc:
        out.error(f"kldload: {exc}")
        out.error("usage: kldload [-nqv] file ...")
        return 1
    flags = {letter for letter, _ in options}
    if not names:
        out.error("usage: kldload [-nqv] file ...")
        return 1
    status = 0
    present = st.modules_present(state)
    for name in names:
        short = os.path.basename(name).removesuffix(".ko")
        loaded = _find_file(state, name) is not None or short in present
        if loaded:
            # sbin/kldload/kldload.c: kldload(2) fails with EEXIST whether the module came
            # from a file or is compiled into the kernel.
            if "n" in flags:
                continue
            if "q" not in flags:
                out.error(f"kldload: can't load {name}: module already loaded or in kernel")
            status = 1
            continue
        filename = _catalogue_name(name)
        if filename is None:
            if "q" not in flags:
                out.error(f"kldload: can't load {name}: No such file or directory")
            status = 1
            continue
        st.kld_load(state, filename)
        store.dirty = True
        present = st.modules_present(state)
        if "v" in flags:
            found = _find_file(state, filename)
            assert found is not None
            out.print(f"Loaded {name}, id={found['id']}")
    return status


def _depends(filename: str) -> tuple[str, ...]:
    return st.KLD_CATALOGUE.get(filename, ((), ()))[1]


def kldunload(store: st.Store, args: list[str], out: Output) -> int:
    state = store.state
    try:
        options, names = getopt(args, "fvi:n:")
    except UsageError as exc:
        out.error(f"kldunload: {exc}")
        return 1
    values = dict(options)
    if "n" in values:
        names.append(values["n"])
    if not names:
        out.error("usage: kldunload [-fv] -i id ...\n       kldunload [-fv] [-n] name ...")
        return 1
    for name in names:
        f = _find_file(state, name)
        if f is None or f["name"] == "kernel":
            out.error(f"kldunload: can't find file {name}: No such file or directory")
            return 1
        needed_by = [g for g in state["kld_files"] if f["name"] in _depends(g["name"])]
        in_use = (f["name"] == "vmm.ko" and bool(os.listdir(st.vmm_dir(store.root)))) or (
            f["name"] == "if_bridge.ko"
            and any(i["kind"] == "bridge" for i in state["interfaces"].values())
        )
        busy = bool(needed_by) or in_use
        if busy:
            out.error("kldunload: can't unload file: Device busy")
            return 1
        state["kld_files"].remove(f)
        st.sync_module_sysctls(state)
        store.dirty = True
        if "v" in values:
            out.print(f"Unloading {f['name']}, id={f['id']}")
    return 0


def _writable(oid: str) -> bool:
    spec = st.sysctl_spec(oid)
    return spec is not None and spec[1]


def _is_integer(oid: str) -> bool:
    spec = st.sysctl_spec(oid)
    return spec is not None and spec[0].lstrip("-").isdigit()


def sysctl(store: st.Store, args: list[str], out: Output) -> int:
    state = store.state
    tree = state["sysctl"]
    try:
        options, names = getopt(args, "aeinNq")
    except UsageError as exc:
        out.error(f"sysctl: {exc}")
        out.error("usage: sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...")
        return 1
    flags = {letter for letter, _ in options}
    value_only, quiet, ignore = "n" in flags, "q" in flags, "i" in flags
    separator = "=" if "e" in flags else ": "

    def show(oid: str) -> None:
        if "N" in flags:
            out.print(oid)
        else:
            out.print(tree[oid] if value_only else f"{oid}{separator}{tree[oid]}")

    if "a" in flags and not names:
        for oid in sorted(tree):
            show(oid)
        return 0
    if not names:
        out.error("usage: sysctl [-bdehiNnoqTtWx] [ -B <bufsize> ] [-f filename] name[=value] ...")
        return 1
    status = 0
    for item in names:
        oid, assign, value = item.partition("=")
        if assign:
            if oid not in tree:
                if not ignore:
                    if not quiet:
                        out.error(f"sysctl: unknown oid '{oid}'")
                    status = 1
                continue
            if not _writable(oid):
                if not quiet:
                    out.error(f"sysctl: oid '{oid}' is read only")
                status = 1
                continue
            if _is_integer(oid) and not value.lstrip("-").isdigit():
                if not quiet:
                    out.error(f"sysctl: invalid integer '{value}'")
                status = 1
                continue
            old = tree[oid]
            tree[oid] = str(int(value)) if _is_integer(oid) else value
            store.dirty = True
            if not quiet:
                out.print(f"{old} -> {tree[oid]}" if value_only else f"{oid}: {old} -> {tree[oid]}")
            continue
        children = sorted(o for o in tree if o.startswith(oid + "."))
        if oid in tree:
            show(oid)
        elif children:
            for child in children:
                show(child)
        elif not ignore:
            if not quiet:
                out.error(f"sysctl: unknown oid '{oid}'")
            status = 1
    return status
