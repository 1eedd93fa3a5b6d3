"""`import vm-bhyve VM_DIR`: every guest of a vm-bhyve datastore as a spec in conf.d, and the
report of what carried over, what did not and why, and what the admin must do.

Edge code for the CLI: it reads the datastore (on the simulated host's file system under
--simulate), asks the host for its interfaces when there is one, lets the pure importer
(`reconciler.vmbhyve.datastore`) decide, then writes each new spec (never over an existing
file) and, with --config, the bridges the daemon config lacks.
"""

from __future__ import annotations

import argparse
import posixpath
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from reconciler.cli.context import Context, open_host
from reconciler.cli.import_report import ConfigNote, Outcome, bridge_text, print_report
from reconciler.cli.parser import Commands
from reconciler.cli.specfiles import (
    ConfDirState,
    check_spec_text,
    create_file,
    read_conf_dir,
    spec_text,
)
from reconciler.config import parse_config
from reconciler.errors import ReconcilerError
from reconciler.guestfile import SUFFIX
from reconciler.host.files import write_atomic
from reconciler.spec import GuestSpec
from reconciler.valuerules import IFNAME_RE, IFNAME_RULE
from reconciler.vmbhyve import parse_conf, parse_system_conf
from reconciler.vmbhyve.datastore import BridgeTable, DatastoreImport, GuestFile, import_datastore

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_INCOMPLETE = 2
MAX_CONF_BYTES = 64 * 1024  # a guest .conf is a few hundred bytes; anything huge is not one
SUMMARY = "write a spec for every guest of a vm-bhyve datastore, and report what carried over"
DETAILS = (
    "With --config FILE (given here), the bridges the config lacks are added to FILE; "
    "without, they are printed."
)
_DATASET_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]*(?:/[A-Za-z0-9_.:-]+)*")


def bridge_option(text: str) -> tuple[str, str]:
    """`--bridge SWITCH=BRIDGE`."""
    switch, sep, bridge = text.partition("=")
    if not sep or not switch or IFNAME_RE.fullmatch(bridge) is None:
        raise argparse.ArgumentTypeError(f"expected SWITCH=BRIDGE, BRIDGE {IFNAME_RULE}")
    return switch, bridge


def dataset_option(text: str) -> str:
    if _DATASET_RE.fullmatch(text) is None:
        raise argparse.ArgumentTypeError("expected a ZFS dataset like zroot/vm")
    return text


def register(commands: Commands) -> None:
    add_arguments(
        commands.add(
            "import",
            SUMMARY,
            cmd_import,
            details=DETAILS,
            exits=(
                (EXIT_OK, "every guest was converted and written (or, with --dry-run, would be)"),
                (EXIT_ERROR, "the datastore or the daemon config could not be read"),
                (EXIT_INCOMPLETE, "some were not (refused, a spec file exists, a conflict)"),
            ),
        )
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", choices=("vm-bhyve",), help="the manager to import from")
    parser.add_argument(
        "vm_dir",
        metavar="VM_DIR",
        help="the vm-bhyve datastore: VM_DIR/NAME/NAME.conf per guest (a zfs: datastore "
        "by its mountpoint)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        metavar="DIR",
        help="where the specs go (default: the config's conf_dir)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the report, write nothing")
    parser.add_argument(
        "--zfs-dataset",
        type=dataset_option,
        metavar="DATASET",
        help='the datastore\'s ZFS dataset (vm_dir="zfs:DATASET"), for zvol disks',
    )
    parser.add_argument(
        "--bridge",
        type=bridge_option,
        action="append",
        default=[],
        metavar="SWITCH=BRIDGE",
        help="the bridge a vm-bhyve switch becomes (default: a bridgeN); repeatable",
    )


@dataclass(frozen=True)
class _Datastore:
    host_path: str  # VM_DIR as the host (and the specs) name it
    local: Path  # where this process reads it


def _datastore(ctx: Context, vm_dir: str) -> _Datastore:
    if ctx.sim_root is None:
        local = Path(vm_dir).absolute()
        return _Datastore(posixpath.normpath(str(local)), local)
    if not vm_dir.startswith("/"):
        raise ReconcilerError(f"{vm_dir}: on the simulated host, VM_DIR is an absolute path")
    host = posixpath.normpath(vm_dir)
    return _Datastore(host, ctx.sim_root / host.lstrip("/"))


def _read_text(path: Path) -> str:
    with open(path, "rb") as f:
        data = f.read(MAX_CONF_BYTES + 1)
    if len(data) > MAX_CONF_BYTES:
        raise ValueError(f"larger than {MAX_CONF_BYTES} bytes: not a vm-bhyve .conf")
    return data.decode()


def read_guests(local: Path) -> list[GuestFile]:
    """Every `NAME/NAME.conf` under the datastore (vm-bhyve keeps its own files in dotdirs)."""
    guests = []
    for entry in sorted(local.iterdir()):
        conf = entry / f"{entry.name}.conf"
        if entry.name.startswith(".") or not entry.is_dir() or not conf.is_file():
            continue
        try:
            guests.append(GuestFile(entry.name, parse_conf(_read_text(conf))))
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else str(exc)
            guests.append(GuestFile(entry.name, None, f"cannot read {conf}: {reason}"))
    return guests


def _interfaces(ctx: Context) -> tuple[frozenset[str], str | None]:
    """The host's interfaces (bridgeN names taken), or none and why."""
    if ctx.host_kind == "none":
        return frozenset(), "no host to ask (not FreeBSD, no --simulate)"
    try:
        return frozenset(open_host(ctx).observe_interfaces()), None
    except ReconcilerError as exc:
        return frozenset(), str(exc)


def cmd_import(ctx: Context, args: argparse.Namespace) -> int:
    store = _datastore(ctx, args.vm_dir)
    output: Path = args.output or ctx.config.conf_dir
    for path, what in ((store.local, "VM_DIR"), (output, "the output directory")):
        if not path.is_dir():
            print(f"bhyve-reconciler: {what} {path} is not a directory", file=sys.stderr)
            return EXIT_ERROR
    system_file = store.local / ".config" / "system.conf"
    try:
        system_text = _read_text(system_file) if system_file.is_file() else ""
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        print(f"bhyve-reconciler: cannot read {system_file}: {reason}", file=sys.stderr)
        return EXIT_ERROR
    guests = read_guests(store.local)
    if not guests and not system_text:
        print(f"bhyve-reconciler: {store.local} holds no vm-bhyve guest", file=sys.stderr)
        return EXIT_ERROR
    existing = read_conf_dir(output, ctx.root)
    interfaces, unobserved = _interfaces(ctx)
    named = {n.bridge for g in existing.guests.values() for n in g.nics if n.bridge}
    result = import_datastore(
        store.host_path,
        guests,
        parse_system_conf(system_text),
        zfs_dataset=args.zfs_dataset,
        config_bridges=ctx.config.bridges,
        taken=interfaces | named,
        overrides=dict(args.bridge),
        file_exists=lambda path: (ctx.root / path.lstrip("/")).exists(),
    )
    outcomes = _write_specs(result, output, existing, dry_run=args.dry_run)
    config_note = _config_bridges(ctx, args, result.bridges)
    running = {g.name for g in guests if (store.local / g.name / "run.lock").exists()}
    notes = [f"host interfaces not observed ({unobserved}): bridge names may be taken"]
    print_report(
        store.host_path,
        output,
        result,
        outcomes,
        running=running,
        notes=notes if unobserved else [],
        config_note=config_note,
        dry_run=args.dry_run,
    )
    done = all(o.status in ("written", "unchanged", "would write") for o in outcomes.values())
    return EXIT_OK if done and len(outcomes) == len(result.guests) else EXIT_INCOMPLETE


def _write_specs(
    result: DatastoreImport, output: Path, existing: ConfDirState, *, dry_run: bool
) -> dict[str, Outcome]:
    """Each converted guest's spec written as `output/NAME.toml`, unless a file is there or
    it claims what a spec there holds; what became of each guest."""
    outcomes: dict[str, Outcome] = {}
    pending: dict[Path, tuple[GuestSpec, str, str]] = {}
    for guest in result.guests:
        if guest.spec is None:
            outcomes[guest.name] = Outcome("not converted")
            continue
        path = output / f"{guest.name}{SUFFIX}"
        text = spec_text(guest.spec, header(guest.conf_path))
        errors = check_spec_text(text, path)
        if errors:  # the importer validated it: a bug, and nothing is written
            outcomes[guest.name] = Outcome("invalid", tuple(map(str, errors)), path)
        elif path.exists():
            same = path.read_text(errors="replace") == text
            outcomes[guest.name] = Outcome("unchanged" if same else "exists", (), path)
        else:
            pending[path] = (guest.spec, guest.name, text)
    clashes = existing.clashes({path: spec for path, (spec, _n, _t) in pending.items()})
    for path, (_spec, name, text) in pending.items():
        outcomes[name] = _write(path, text, clashes.get(path), dry_run=dry_run)
    return outcomes


def _write(path: Path, text: str, clashes: list[str] | None, *, dry_run: bool) -> Outcome:
    if clashes:
        return Outcome("conflict", tuple(clashes), path)
    if dry_run:
        return Outcome("would write", (), path)
    try:
        written = create_file(path, text)
    except OSError as exc:
        return Outcome("failed", (exc.strerror or str(exc),), path)
    return Outcome("written" if written else "exists", (), path)


def header(conf_path: str) -> list[str]:
    return [
        f"Imported from vm-bhyve's {conf_path} by `bhyve-reconciler import vm-bhyve`.",
        'layout = "vm-bhyve" keeps the PCI slots vm-bhyve gave this guest.',
    ]


def _config_bridges(
    ctx: Context, args: argparse.Namespace, tables: tuple[BridgeTable, ...]
) -> ConfigNote | None:
    """With --config (given on this command line), append the bridges it lacks; what was
    done, or None when the tables are only printed."""
    new = [t for t in tables if t.new and t.members]
    if args.config is None or not new:
        return None
    clashing = [t.bridge for t in new if t.bridge in ctx.config.bridges]
    if clashing:
        text = f"{args.config} already has [bridges.{clashing[0]}] with other members"
        return ConfigNote(text, done=False)
    if args.dry_run:
        return ConfigNote(f"would add {len(new)} bridge table(s) to {args.config}", done=True)
    path = Path(args.config)
    try:
        old = path.read_text()
        text = old + ("" if old.endswith("\n") or not old else "\n") + "\n" + bridge_text(new)
        _config, errors = parse_config(text, file=str(path))
        if errors:
            return ConfigNote(f"not added to {path} ({errors[0]})", done=False)
        write_atomic(path, text, path.stat().st_mode & 0o7777)
    except (OSError, UnicodeDecodeError) as exc:
        return ConfigNote(f"not added to {path} ({exc})", done=False)
    return ConfigNote(f"added {len(new)} bridge table(s) to {path}", done=True)
