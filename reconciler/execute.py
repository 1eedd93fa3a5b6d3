"""Running a plan's actions in order: what ran, what failed, what waits.

`execute_actions` applies each action through the driver's `apply_one` unless an action it
requires failed or was skipped (then it is skipped this pass: failures stay local), and leaves
guest starts and stops, and what waits on them, pending for the supervisors. It decides nothing
else and touches the host only through `apply_one`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from reconciler.actions import Action, Key
from reconciler.errors import HostCommandError, ReconcilerError
from reconciler.ledger import Ledger


class ActionDeferred(ReconcilerError):
    """The action runs on in the background (a large copy): its outcome is pending, and a later
    pass sees what it made."""


Status = Literal["done", "unchanged", "failed", "skipped", "pending"]


@dataclass(frozen=True)
class Outcome:
    action: Action
    status: Status
    error: HostCommandError | None = None
    waiting_for: tuple[str, ...] = ()


@dataclass
class ApplyReport:
    outcomes: list[Outcome] = field(default_factory=list)
    ledger: Ledger = field(default_factory=Ledger)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "skipped")]

    @property
    def pending(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "pending"]


def execute_actions(
    actions: Iterable[Action],
    apply_one: Callable[[Action], bool],
    ledger: Ledger,
    *,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> ApplyReport:
    """Run actions in order. An action whose prerequisite (a `Key` in its `requires`) failed or
    was skipped is skipped this pass; every independent action still runs; guest starts and
    stops (and what waits on them), and copies the driver runs in the background, are left
    pending. Outcomes name the keys
    waited for as text, as `plan --json` prints them."""
    report = ApplyReport(ledger=ledger)
    status_of: dict[Key, Status] = {}
    for action in actions:
        blocked = tuple(
            str(k) for k in action.requires if status_of.get(k) in ("failed", "skipped")
        )
        waiting = tuple(str(k) for k in action.requires if status_of.get(k) == "pending")
        outcome: Outcome
        if blocked:
            outcome = Outcome(action, "skipped", waiting_for=blocked)
        elif action.supervised or waiting:
            outcome = Outcome(action, "pending", waiting_for=waiting)
        else:
            try:
                changed = apply_one(action)
            except ActionDeferred:
                outcome = Outcome(action, "pending")
            except HostCommandError as exc:
                outcome = Outcome(action, "failed", error=exc)
            except OSError as exc:
                err = HostCommandError(action.argv or (type(action).__name__,), 1, str(exc))
                outcome = Outcome(action, "failed", error=err)
            else:
                outcome = Outcome(action, "done" if changed else "unchanged")
                if changed or action.sign == "-":
                    report.ledger = report.ledger.after(action)
        status_of[action.key] = outcome.status
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return report
