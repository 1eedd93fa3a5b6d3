"""Simulated nmdm(4) pairs: a pty pair per guest console, and what the guest's kernel prints.

nmdm(4): "two tty(4) devices connected by a virtual null modem cable", /dev/nmdmNA and
/dev/nmdmNB, created on first open (sys/dev/nmdm/nmdm.c, devfs cloning); what is written on
one side is read on the other. Here the A side is a pty master, held by the simulated bhyve
(bhyve opens the A side, bhyverun.c via uart_backend.c), and the B side is its slave, reached
through ROOT/dev/nmdm-NAME.1B (a symlink to /dev/pts/N) by `cu -l`. Unlike nmdm, the pair lives
as long as that bhyve: a reboot makes a new one. The master is handed to bhyve.sh as fd 4; the
guest's getty (console.py) uses it when someone connects.
"""

from __future__ import annotations

import contextlib
import os
import tty

from reconciler.sim import state as st

CONSOLE_FD = 4  # the fd bhyve.sh holds the A side on


def b_side(device: str) -> str | None:
    """The B side of an nmdm A side (`/dev/nmdm-web.1A` -> `/dev/nmdm-web.1B`)."""
    if device.startswith("/dev/nmdm") and device.endswith("A"):
        return device[:-1] + "B"
    return None


def banner(release: str, name: str, cpus: str, memory: str) -> bytes:
    """What the guest's kernel prints as it boots: the copyright and version lines of
    sys/sys/copyright.h and sys/conf/newvers.sh, then a word on what this guest is."""
    lines = [
        "Copyright (c) 1992-2024 The FreeBSD Project.",
        "Copyright (c) 1979, 1980, 1983, 1986, 1988, 1989, 1991, 1992, 1993, 1994",
        "\tThe Regents of the University of California. All rights reserved.",
        "FreeBSD is a registered trademark of The FreeBSD Foundation.",
        f"FreeBSD {release} GENERIC amd64",
        f"(a guest simulated by bhyve-reconciler: {cpus} CPU(s), {memory} of memory, VM {name})",
        "",
    ]
    return "\r\n".join(lines).encode() + b"\r\n"


def open_pair(root: str, device: str, text: bytes) -> tuple[int, str] | None:
    """A new pty pair for console `device` (an nmdm A side): its B side linked under `root`,
    in raw mode (cu(1) sets it so anyway), `text` waiting on it. The master's fd and the B
    side's path; None when the host has no pty to give."""
    peer = b_side(device)
    if peer is None:
        return None
    try:
        master, slave = os.openpty()
    except OSError:
        return None
    try:
        tty.setraw(slave)
        link = st.host_path(root, peer)
        os.makedirs(os.path.dirname(link), exist_ok=True)
        tmp = f"{link}.{os.getpid()}.tmp"
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, link)
    except OSError:
        os.close(master)
        return None
    finally:
        os.close(slave)
    # Non-blocking: a guest must never hang on a console nobody reads.
    os.set_blocking(master, False)
    with contextlib.suppress(OSError):
        os.write(master, text)
    return master, link
