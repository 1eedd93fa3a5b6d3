"""Timings: every delay, period and grace the daemon waits on, in one injected value.

Pure values. The daemon builds one `Timings` from its config and hands it to the watcher, the
supervisors and the restart policy, as kopf passes its settings; nothing reads a timing from a
module constant. Tests run the real code on short timings instead of sleeping through long ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Crash backoff: `base` seconds doubling to `cap`, forgiven after `stable_after` seconds of
    running without a failure (DESIGN.md: 1 s doubling to 5 min, reset after 10 min)."""

    base: float = 1.0
    cap: float = 300.0
    stable_after: float = 600.0


@dataclass(frozen=True)
class Timings:
    backoff: Backoff = field(default_factory=Backoff)
    # After `bhyvectl --force-poweroff` (or a loader's SIGTERM): how long before SIGKILL, and
    # after SIGKILL how long before the stop is given up as processes that cannot die.
    kill_grace: float = 5.0
    # conf.d bursts (a git pull, a config-management run) are gathered for `conf_quiet` seconds
    # after the last event, but never longer than `conf_max_wait` after the first.
    conf_quiet: float = 0.02
    conf_max_wait: float = 0.5
    # The loop wakes at least this often, to check timers and its watchers' health.
    max_sleep: float = 5.0
    # While a guest is starting (its loader runs, bhyve is not up yet) it is looked at this
    # often: bhyve's start is learnt from its shim's record, not from the kernel.
    starting_poll: float = 0.05
    # How often the boot logs of live guests are looked at (a guest that makes bhyve print
    # forever must not fill run_dir between two boots).
    boot_log_check: float = 10.0
