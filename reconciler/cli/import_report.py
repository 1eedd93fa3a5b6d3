"""The report `import vm-bhyve` prints: per guest what carried over, what did not and why, and
what the admin must do; the daemon config's bridges; the cut-over, one guest at a time.

Edge code for the CLI: it only prints what the importer and the writer decided.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.vmbhyve.convert import GuestImport
from reconciler.vmbhyve.datastore import BridgeTable, DatastoreImport

# What became of a guest's spec file.
STATUS_TEXT = {
    "written": "converted, written to {path}",
    "would write": "converted, would be written to {path}",
    "unchanged": "converted before: {path} holds this spec already",
    "exists": "converted, NOT written: {path} exists (never overwritten)",
    "conflict": "converted, NOT written: it claims what a spec in conf.d holds",
    "failed": "converted, NOT written to {path}",
    "invalid": "converted, NOT written: the spec does not validate (a bug: please report it)",
    "not converted": "NOT converted",
}


@dataclass(frozen=True)
class ConfigNote:
    """What became of the bridges --config asked to have added: `done`, or why not."""

    text: str
    done: bool


@dataclass(frozen=True)
class Outcome:
    status: str  # a key of STATUS_TEXT
    details: tuple[str, ...] = ()
    path: Path | None = None


def _guest_lines(guest: GuestImport, outcome: Outcome) -> list[str]:
    lines = [f"{guest.name}: " + STATUS_TEXT[outcome.status].format(path=outcome.path)]
    lines += [f"  {detail}" for detail in outcome.details]
    if guest.refused:
        lines.append("  refused (the guest would not see the machine it knows):")
        lines += [f"    {note}" for note in guest.refused]
    if guest.carried:
        lines.append("  carried over: " + ", ".join(guest.carried))
    if guest.dropped:
        lines.append("  not carried over (the guest boots the same without them):")
        lines += [f"    {note}" for note in guest.dropped]
    if guest.todo and guest.spec is not None:
        lines.append("  to do:")
        lines += [f"    {item}" for item in guest.todo]
    return lines


def bridge_text(tables: Sequence[BridgeTable]) -> str:
    """The `[bridges.NAME]` tables, as TOML text naming the switch each stands for."""
    out = []
    for table in tables:
        members = ", ".join(f'"{m}"' for m in table.members)
        out.append(
            f"# vm-bhyve switch {table.switch}\n[bridges.{table.bridge}]\nmembers = [{members}]\n"
        )
    return "\n".join(out)


def _bridge_lines(tables: Sequence[BridgeTable], config: ConfigNote | None) -> list[str]:
    new = [t for t in tables if t.new and t.members]
    lines = [f"vm-bhyve switch {t.switch} is bridge {t.bridge}" for t in tables]
    if config is not None:
        lines.append(f"daemon config: {config.text}")
    if not new or (config is not None and config.done):
        return lines
    lines.append("the daemon config needs these bridges (add them, or import again with "
                 "--config FILE to have them added):")  # fmt: skip
    return [*lines, "", *bridge_text(new).splitlines(), ""]


def _cutover_lines(
    guests: Sequence[GuestImport], outcomes: Mapping[str, Outcome], running: Collection[str]
) -> list[str]:
    lines = []
    for guest in guests:
        outcome = outcomes[guest.name]
        if outcome.status not in ("written", "would write", "unchanged"):
            continue
        where = outcome.path
        if guest.name in running:
            lines.append(
                f"{guest.name} (vm-bhyve runs it; it stays with vm-bhyve until then): "
                f"`vm stop {guest.name}`, `sysrc vm_list-={guest.name}`; the daemon then "
                f"boots it from {where}"
            )
        else:
            lines.append(
                f"{guest.name} (vm-bhyve does not run it): the daemon boots it as soon as it "
                f"reads {where}; `sysrc vm_list-={guest.name}` so vm-bhyve never starts it too"
            )
    return lines


def print_report(
    vm_dir: str,
    output: Path,
    result: DatastoreImport,
    outcomes: Mapping[str, Outcome],
    *,
    running: Collection[str],
    notes: Sequence[str],
    config_note: ConfigNote | None,
    dry_run: bool,
) -> None:
    print(f"vm-bhyve datastore {vm_dir} -> {output}" + (" (dry run: nothing is written)"
                                                        if dry_run else ""))  # fmt: skip
    for note in notes:
        print(f"note: {note}")
    for guest in result.guests:
        print()
        print("\n".join(_guest_lines(guest, outcomes[guest.name])))
    sections = (
        ("Bridges", _bridge_lines(result.bridges, config_note)),
        ("On the host", [f"- {item}" for item in result.todo]),
        (
            "Cut-over, one guest at a time",
            _cutover_lines(result.guests, outcomes, running),
        ),
    )
    for title, lines in sections:
        if lines:
            print(f"\n{title}:")
            print("\n".join(f"  {line}" if line else "" for line in lines))
    counts: dict[str, int] = {}
    for outcome in outcomes.values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    print("\n" + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
