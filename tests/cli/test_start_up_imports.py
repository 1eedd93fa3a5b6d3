"""What starting `bhyve-reconciler` loads: libraries only some commands or configs use are
imported when used, not by every start.

A start is paid by every operator command, every daemon (re)start, and hundreds of times by this
suite. Each library below costs a start 10-50 ms of CPU: prometheus_client (with its HTTP, email
and urllib) only for a daemon configured with metrics, PyYAML only for a guest with
`[cloud_init]`, importlib.metadata only for `--version`.
"""

from __future__ import annotations

import json
import subprocess
import sys

LAZY = ("prometheus_client", "yaml", "importlib.metadata")


def loaded_after(code: str) -> set[str]:
    """The modules of LAZY that a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(done.stdout.splitlines()[-1])) & set(LAZY)


def test_the_daemon_and_every_command_start_without_the_optional_libraries() -> None:
    code = (
        "from reconciler.cli import build_parser\n"
        "from reconciler.daemon import Daemon\n"
        "from reconciler.config import DaemonConfig\n"
        "from reconciler.publish import Publisher\n"
        "Publisher(DaemonConfig(), files=lambda: (), watching=lambda: True,\n"
        "          host_name=lambda: 'hv1', wall_clock=lambda: 0.0).start()\n"
        "build_parser().parse_args(['status'])\n"
    )
    assert loaded_after(code) == set()


def test_each_is_loaded_once_it_is_needed() -> None:
    metrics = (
        "from pathlib import Path\n"
        "from reconciler.config import DaemonConfig\n"
        "from reconciler.publish import Publisher\n"
        "config = DaemonConfig(metrics_file=Path('/nonexistent/m.prom'))\n"
        "Publisher(config, files=lambda: (), watching=lambda: True,\n"
        "          host_name=lambda: 'hv1', wall_clock=lambda: 0.0)\n"
    )
    assert "prometheus_client" in loaded_after(metrics)
    guest = '[[disk]]\npath = "/vm/a.img"\n[cloud_init]\nuser_data = "#cloud-config\\nhostname: a"'
    cloud = (
        "from reconciler.guestfile import parse_guest_text\n"
        f"parse_guest_text({guest!r}, file='a.toml', stem='a')\n"
    )
    assert "yaml" in loaded_after(cloud)
    version = (
        "import contextlib, io\n"
        "from reconciler.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--version'])\n"
    )
    assert "importlib.metadata" in loaded_after(version)
