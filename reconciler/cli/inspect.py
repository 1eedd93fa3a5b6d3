"""`validate`, `commands`, `plan` and `apply`: what the files say and what the host would do.

Each subcommand wires config, specs and the host together and turns results into lines and
an exit status; `plan` and `apply` run the daemon's own pass (`converge.Converger`).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from reconciler.cli.context import Context, open_host
from reconciler.converge import Converger
from reconciler.errors import SpecError, StateError
from reconciler.execute import Outcome
from reconciler.host.files import load_accepted, load_ledger
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import SubprocessRunner
from reconciler.plan import allocate_taps, next_boot, plan_context
from reconciler.specdir import ConfDir, ConfSnapshot

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_PENDING = 2


def conf_dir(
    ctx: Context, root: Path | None = None, *, strict: bool = True, check_disks: bool = False
) -> ConfDir:
    """conf_dir as the daemon judges it: seeded with what it accepted before (a broken file
    keeps its guest's spec; a refused duplicate stays refused) and the taps it allocated.
    With `strict` off, state this user cannot read is left out (validate as non-root)."""
    try:
        accepted = load_accepted(ctx.config.state_dir)
        claims = load_ledger(ctx.config.state_dir).tap_claims()
    except StateError:
        if strict:
            raise
        accepted, claims = {}, {}
    return ConfDir(
        ctx.config.conf_dir,
        root=root or ctx.root,
        accepted=accepted,
        claims=claims,
        check_disks=check_disks,
    )


def cmd_validate(ctx: Context, args: argparse.Namespace) -> int:
    snapshot = conf_dir(ctx, strict=False, check_disks=True).scan()
    by_file: dict[str, list[SpecError]] = {}
    for problem in snapshot.problems:
        by_file.setdefault(problem.file, []).append(problem)
    for file in sorted(set(snapshot.files) | set(by_file)):
        problems = by_file.get(file, [])
        for p in problems:
            print(format_problem(p))
        status = snapshot.files.get(file)
        if status is not None and not any(not p.warning for p in problems):
            print(f"{file}: valid (guest {status.guest})")
    if not snapshot.files:
        print(f"{ctx.config.conf_dir}: no guest specs (*.toml)")
    return EXIT_ERROR if snapshot.errors else EXIT_OK


def format_problem(p: SpecError) -> str:
    return f"{p.file}: {p.key}: {'warning: ' if p.warning else ''}{p.message}"


def report_problems(problems: Sequence[SpecError]) -> None:
    for p in problems:
        print(format_problem(p), file=sys.stderr)


def cmd_commands(ctx: Context, args: argparse.Namespace) -> int:
    snapshot = conf_dir(ctx).scan()
    guest = snapshot.guests.get(args.name)
    if guest is None:
        report_problems(snapshot.errors)
        print(f"bhyve-reconciler: no valid guest named {args.name!r}", file=sys.stderr)
        return EXIT_ERROR
    ledger = load_ledger(ctx.config.state_dir)
    if ctx.host_kind == "none":
        host = FreeBSDHost(SubprocessRunner(), root=ctx.root, vmm_dir=ctx.config.vmm_dir)
        interfaces: frozenset[str] = frozenset()
    else:
        host = open_host(ctx)
        interfaces = frozenset(host.observe_interfaces())
    boot = next_boot(
        guest,
        taps=allocate_taps(snapshot.guests, interfaces, ledger)[guest.name],
        ctx=plan_context(ctx.config),
        first_disk_bootable=host.first_disk_bootable(guest),
    )
    if boot.loader is not None:
        print(shlex.join(boot.loader))
    print(shlex.join(boot.bhyve))
    return EXIT_OK


def _converger(ctx: Context) -> tuple[Converger, ConfSnapshot]:
    host = open_host(ctx)
    snapshot = conf_dir(ctx, host.root).scan()
    report_problems(snapshot.problems)
    return Converger(host, ctx.config, load_ledger(ctx.config.state_dir)), snapshot


def cmd_plan(ctx: Context, args: argparse.Namespace) -> int:
    converger, snapshot = _converger(ctx)
    result = converger.observe_and_plan(snapshot.guests, supervised=None)
    report_host_errors(result.errors)
    actions = result.actions
    held = sorted(
        name
        for name in result.held
        if (g := snapshot.guests.get(name)) is not None and g.lifecycle.state == "running"
    )
    if args.json:
        print(json.dumps([a.as_dict() for a in actions], indent=2))
    elif not actions and result.complete and not result.plan.blocked:
        print("converged: nothing to do")
    else:
        for action in actions:
            print(action.describe())
    if not args.json:
        for name in held:
            print(f"= {name} held by stop (`bhyve-reconciler start {name}` boots it)")
        for name in sorted(result.plan.blocked):  # why: on stderr, with the host's errors
            print(f"= {name} waits (see above)")
    if not result.complete:
        return EXIT_ERROR
    return EXIT_PENDING if actions or result.plan.blocked else EXIT_OK


def cmd_apply(ctx: Context, args: argparse.Namespace) -> int:
    converger, snapshot = _converger(ctx)
    result = converger.converge(snapshot.guests, supervised=None, on_outcome=print_outcome)
    failed_lines = {o.action.describe() for o in result.failed}
    report_host_errors(e for e in result.errors if e.split(": ", 1)[0] not in failed_lines)
    if not result.actions and result.complete:
        print("converged: nothing to do")
    if result.failed:
        count = len(result.failed)
        print(f"{count} action(s) failed or were skipped; the next apply retries them")
    if not result.complete:
        print("some host facts were not observed: what needs them waits for the next apply")
    return EXIT_ERROR if result.failed or not result.complete else EXIT_OK


def report_host_errors(errors: Iterable[str]) -> None:
    for error in errors:
        print(f"bhyve-reconciler: {error}", file=sys.stderr)


def print_outcome(outcome: Outcome) -> None:
    line = outcome.action.describe()
    if outcome.status in ("done", "unchanged"):
        print(line)
    elif outcome.status == "failed":
        err = outcome.error
        assert err is not None
        print(
            f"{line}: FAILED: {shlex.join(err.argv)}: exit status {err.status}: "
            f"{err.stderr.strip() or 'no output'}"
        )
    elif outcome.status == "skipped":
        print(f"{line}: skipped (waiting for {', '.join(outcome.waiting_for)} which failed)")
    else:
        print(f"{line}: pending (guests are started and stopped by `bhyve-reconciler run`)")
