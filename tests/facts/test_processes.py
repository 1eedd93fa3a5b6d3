"""Telling a guest's own processes from everything else in one `ps` listing."""

from __future__ import annotations

from reconciler.processes import parse_ps, runs_bhyve, runs_loader

# FreeBSD 14 `ps -axww -o pid=,ppid=,args=`: bhyve shows its setproctitle title.
LISTING = b"""\
    1     0 /sbin/init --
  812     1 /usr/sbin/daemon -P /var/run/bhyve_reconciler.pid -r bhyve-reconciler run
 9001     1 /bin/sh /lib/rc/shim.sh /var/run/bhyve-reconciler/guests/web 0 bhyve -c 2 web
 9002  9001 bhyve: web (bhyve)
 9101     1 /bin/sh /lib/rc/shim.sh /var/run/bhyve-reconciler/guests/db 8 bhyveload
 9102  9101 bhyveload -c /dev/nmdm-db.1A -m 1G -d /vm/db.img db
 9200     1 bhyve: manual (bhyve)
 9300     1 /usr/local/bin/python3 -SE /sim/bin/grub-bhyve -m /s/device.map -r hd0,msdos1 -M 1G lin
 9400     1 vi /usr/local/etc/bhyve-reconciler/conf.d/web.toml
 9500     1 sleep \xff\xfe
"""


def test_bhyve_titles_and_raw_argv_name_their_guest() -> None:
    assert runs_bhyve("bhyve: web (bhyve)") == "web"
    assert runs_bhyve("/usr/sbin/bhyve -c 1 -m 1G -H -P -s 0:0,hostbridge web") == "web"
    assert runs_bhyve("vi bhyve.conf") is None
    assert runs_bhyve("bhyvectl --vm=web --destroy") is None


def test_loaders_name_their_guest_even_under_an_interpreter() -> None:
    assert runs_loader("bhyveload -m 1G -d /vm/a.img a") == "a"
    assert runs_loader("/usr/local/bin/python3 -SE /sim/bin/grub-bhyve -M 1G lin") == "lin"
    assert runs_loader("bhyveload") is None
    assert runs_loader("sleep 60") is None


def test_a_recorded_pid_is_trusted_only_as_what_it_claims_to_be() -> None:
    table = parse_ps(LISTING)
    assert table.bhyve_of(9002, "web")
    assert not table.bhyve_of(9002, "db")
    assert not table.bhyve_of(9400, "web")  # a reused pid: an editor, not a guest
    assert not table.bhyve_of(4242, "web")  # no such process
    assert table.loader_of(9102, "db")
    assert not table.loader_of(9002, "web")
    assert table.shim_of(9001, "/var/run/bhyve-reconciler/guests/web")
    assert not table.shim_of(9001, "/var/run/bhyve-reconciler/guests/we")
    assert not table.shim_of(9101, "/var/run/bhyve-reconciler/guests/web")


def test_every_bhyve_on_the_host_is_found_whoever_started_it() -> None:
    table = parse_ps(LISTING)
    assert table.bhyves() == {"web": 9002, "manual": 9200}


def test_any_bytes_parse_and_garbage_rows_are_skipped() -> None:
    table = parse_ps(LISTING + b"  PID  PPID COMMAND\n\n garbage\n")
    assert table.by_pid[9500].args == "sleep \ufffd\ufffd"
    assert len(table.by_pid) == 10
