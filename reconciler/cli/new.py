"""`new NAME`: a valid starter spec in conf.d from a few options, and the command lines it will
boot with.

Edge code for the CLI: it builds the guest file's document, lets the one parser validate it,
refuses what would clash with the specs already in conf.d, writes the file (never over an
existing one) and prints its path and `commands NAME`'s lines. Cloud images (`--image`,
`--ssh-key`) are not offered yet: their spec keys are not on main.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from reconciler.cli.context import Context, open_host
from reconciler.cli.parser import Commands
from reconciler.cli.specfiles import check_spec_text, create_file, read_conf_dir, spec_text
from reconciler.guestfile import SUFFIX, guest_to_toml, parse_guest
from reconciler.host.files import load_ledger
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import SubprocessRunner
from reconciler.plan import allocate_taps, next_boot, plan_context
from reconciler.spec import LOADERS, GuestSpec

EXIT_OK = 0
EXIT_ERROR = 1
DEFAULT_DISK = "16G"
DEFAULT_DISK_DIR = "/vm"
SUMMARY = "write a starter spec into conf_dir and print the commands it will boot with"


def register(commands: Commands) -> None:
    add_arguments(
        commands.add(
            "new",
            SUMMARY,
            cmd_new,
            exits=(
                (EXIT_OK, "the spec was written (or printed with --dry-run)"),
                (EXIT_ERROR, "it was not"),
            ),
        )
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the guest's name, and its file conf_dir/NAME.toml")
    parser.add_argument("--loader", choices=LOADERS, help="what boots it (default bhyveload)")
    parser.add_argument("--cpus", type=int, help="virtual CPUs (default 1)")
    parser.add_argument("--memory", help="guest memory, like 2G (default 512M)")
    parser.add_argument(
        "--disk",
        action="append",
        default=[],
        metavar="SIZE",
        help=f"a disk of SIZE, created at the first apply; repeatable (default one {DEFAULT_DISK})",
    )
    parser.add_argument(
        "--zvol",
        metavar="POOL/DATASET",
        help="make the disks ZFS volumes POOL/DATASET/NAME-diskN instead of files",
    )
    parser.add_argument(
        "--disk-dir",
        default=DEFAULT_DISK_DIR,
        help=f"file disks are DIR/NAME/diskN.img (default {DEFAULT_DISK_DIR})",
    )
    parser.add_argument(
        "--bridge", action="append", default=[], help="a NIC whose tap joins BRIDGE; repeatable"
    )
    parser.add_argument(
        "--tap",
        action="store_true",
        help="write the next free tap into each NIC now (default: the daemon picks one)",
    )
    parser.add_argument("--iso", help="install media, booted until the first disk can boot")
    parser.add_argument("--dry-run", action="store_true", help="print the spec, write nothing")


def starter_document(args: argparse.Namespace) -> dict[str, Any]:
    """The guest file the options describe; a UEFI guest keeps its variables (boot entries)."""
    doc: dict[str, Any] = {"name": args.name}
    for key, value in (("loader", args.loader), ("cpus", args.cpus), ("memory", args.memory)):
        if value is not None:
            doc[key] = value
    disks = []
    for index, size in enumerate(args.disk or [DEFAULT_DISK]):
        if args.zvol:
            disks.append({"zvol": f"{args.zvol}/{args.name}-disk{index}", "size": size})
        else:
            path = f"{args.disk_dir.rstrip('/')}/{args.name}/disk{index}.img"
            disks.append({"path": path, "size": size})
    doc["disk"] = disks
    if args.bridge:
        doc["nic"] = [{"bridge": bridge} for bridge in args.bridge]
    if args.iso:
        doc["install"] = {"iso": args.iso}
    if args.loader == "uefi":
        doc["uefi"] = {"vars": True}
    return doc


def _host(ctx: Context) -> tuple[FreeBSDHost, frozenset[str]]:
    """The host to read the first disk from, and its interfaces when it can be asked."""
    if ctx.host_kind == "none":
        runner = SubprocessRunner()
        return FreeBSDHost(runner, root=ctx.root, vmm_dir=ctx.config.vmm_dir), frozenset()
    host = open_host(ctx)
    return host, frozenset(host.observe_interfaces())


def cmd_new(ctx: Context, args: argparse.Namespace) -> int:
    conf_dir = ctx.config.conf_dir
    path = conf_dir / f"{args.name}{SUFFIX}"
    if not conf_dir.is_dir():
        return _fail(f"conf_dir {conf_dir} is not a directory")
    if path.exists():
        return _fail(f"{path} exists: `new` never overwrites a spec")
    spec, errors = parse_guest(starter_document(args), file=str(path), stem=args.name)
    if spec is None:
        return _fail(*(f"{e.key}: {e.message}" for e in errors))
    existing = read_conf_dir(conf_dir, ctx.root)
    host, interfaces = _host(ctx)
    ledger = load_ledger(ctx.config.state_dir)
    taps = allocate_taps({**existing.guests, spec.name: spec}, interfaces, ledger)[spec.name]
    if args.tap:
        spec = _with_taps(spec, taps, path)
    clashes = existing.clashes({path: spec}).get(path)
    if clashes:
        return _fail(*clashes)
    text = spec_text(spec, [f"Made by `bhyve-reconciler new {args.name}`: edit it freely."])
    problems = check_spec_text(text, path)
    if problems:
        return _fail(*map(str, problems))
    if args.dry_run:
        print(text, end="")
    elif not create_file(path, text):
        return _fail(f"{path} exists: `new` never overwrites a spec")
    else:
        print(f"wrote {path}")
    boot = next_boot(
        spec,
        taps=taps,
        ctx=plan_context(ctx.config),
        first_disk_bootable=host.first_disk_bootable(spec),
    )
    print("it will boot with:")
    for argv in (boot.loader, boot.bhyve):
        if argv is not None:
            print(f"  {shlex.join(argv)}")
    return EXIT_OK


def _with_taps(spec: GuestSpec, taps: tuple[str, ...], path: Path) -> GuestSpec:
    """`spec` with the pass's taps written into its NICs (`--tap`)."""
    doc = guest_to_toml(spec)
    for nic, tap in zip(doc.get("nic", []), taps, strict=True):
        nic["tap"] = tap
    tapped, _errors = parse_guest(doc, file=str(path), stem=spec.name)
    assert tapped is not None
    return tapped


def _fail(*lines: str) -> int:
    for line in lines:
        print(f"bhyve-reconciler: {line}", file=sys.stderr)
    return EXIT_ERROR
