"""`validate`, `commands`, `plan`, `apply` and `schema`: what the files say and what the host
would do.

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
from reconciler.cli.parser import Commands, json_option, name_argument
from reconciler.converge import Converger
from reconciler.errors import SpecError, StateError
from reconciler.execute import Outcome
from reconciler.host.files import load_accepted, load_ledger
from reconciler.host.freebsd import FreeBSDHost
from reconciler.host.runner import SubprocessRunner
from reconciler.plan import allocate_taps, next_boot, plan_context
from reconciler.specdir import ConfDir, ConfSnapshot
from reconciler.specschema import guest_schema

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


def register(commands: Commands) -> None:
    commands.add(
        "validate",
        "check every spec file in conf_dir: one line per problem, FILE: KEY: what is wrong",
        cmd_validate,
        exits=((EXIT_OK, "every file is valid"), (EXIT_ERROR, "a file has an error")),
        details="Warnings (install media not there yet) do not fail it. Needs no host.",
    )
    c = commands.add(
        "commands",
        "print the loader and bhyve command lines of a guest's next boot; changes nothing",
        cmd_commands,
        exits=((EXIT_OK, "printed"), (EXIT_ERROR, "no valid guest of that name")),
    )
    name_argument(c)
    pl = commands.add(
        "plan",
        "show what `apply` (or the daemon) would change on this host, and why",
        cmd_plan,
        exits=(
            (EXIT_OK, "converged: nothing to do"),
            (EXIT_ERROR, "a host fact could not be observed"),
            (EXIT_PENDING, "changes are pending"),
        ),
        details="+ creates, ~ changes, - removes (only what the reconciler created).",
    )
    json_option(pl, "the actions, each with its argv,")
    commands.add(
        "apply",
        "make the host match conf.d once (modules, interfaces, disks), then exit",
        cmd_apply,
        exits=(
            (EXIT_OK, "done: the host matches (guest starts and stops are left to `run`)"),
            (EXIT_ERROR, "an action failed or a fact could not be observed (the rest was done)"),
        ),
        details=(
            "Ends with a summary: N changed, N pending for run, N failed. Guests are booted "
            "and stopped only by the daemon (`run`)."
        ),
    )
    commands.add(
        "schema",
        "print the JSON Schema of a guest spec file (for editors: `#:schema FILE`)",
        cmd_schema,
        exits=((EXIT_OK, "printed"),),
        details=(
            "Generated from the one description of every key: types, allowed values, "
            "defaults and each key's meaning. Taplo / Even Better TOML read it when a spec "
            "file starts with `#:schema /path/to/guest.schema.json`."
        ),
    )


def cmd_schema(ctx: Context, args: argparse.Namespace) -> int:
    print(json.dumps(guest_schema(), indent=2, ensure_ascii=False))
    return EXIT_OK


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
    if not result.complete:
        print("some host facts were not observed: what needs them waits for the next apply")
    print(apply_summary(result.outcomes))
    return EXIT_ERROR if result.failed or not result.complete else EXIT_OK


def apply_summary(outcomes: Sequence[Outcome]) -> str:
    """`3 changed, 1 pending for run, 0 failed`: what apply did (an action that found its
    work done already is not a change), what it leaves to the daemon, what it could not do."""
    changed = sum(o.status == "done" for o in outcomes)
    pending = sum(o.status == "pending" for o in outcomes)
    skipped = sum(o.status == "skipped" for o in outcomes)
    failed = skipped + sum(o.status == "failed" for o in outcomes)
    line = f"{changed} changed, {pending} pending for run, {failed} failed"
    if skipped:
        line += f" ({skipped} skipped: they need what failed)"
    return line + ("; the next apply retries them" if failed else "")


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
