#!/bin/sh
# One boot of one guest: the loader (when there is one), then bhyve, as one iteration of
# vmrun.sh's loop. The daemon starts this in its own session, so a daemon that dies leaves
# the guest running; it records pids and the exit status in DIR for the next daemon.
#
# usage: shim.sh DIR NLOADER [LOADER ARGV (NLOADER words)] BHYVE ARGV...
#
# Records, each replaced atomically (written to NAME.tmp, then renamed):
#   DIR/shim.pid    this shell's pid (also the process group of the whole boot)
#   DIR/loader.pid  the loader's pid, while it runs
#   DIR/bhyve.pid   bhyve's pid, once it runs
#   DIR/exit        "loader N" (a failed loader ends the boot) or "bhyve N"; N is sh's $?
# Arguments are passed on untouched: no eval, nothing is ever re-parsed by the shell.

dir=$1
nloader=$2
shift 2

record() {
	printf '%s\n' "$2" >"$dir/$1.tmp" && mv -f "$dir/$1.tmp" "$dir/$1"
}

record shim.pid "$$"

if [ "$nloader" -gt 0 ]; then
	(
		# Keep only the first NLOADER words: rotate each of them to the end, drop the rest.
		total=$#
		i=0
		while [ "$i" -lt "$total" ]; do
			if [ "$i" -lt "$nloader" ]; then
				set -- "$@" "$1"
			fi
			shift
			i=$((i + 1))
		done
		exec "$@"
	) &
	pid=$!
	record loader.pid "$pid"
	wait "$pid"
	status=$?
	rm -f "$dir/loader.pid"
	if [ "$status" -ne 0 ]; then
		record exit "loader $status"
		exit "$status"
	fi
	shift "$nloader"
fi

"$@" &
pid=$!
record bhyve.pid "$pid"
wait "$pid"
status=$?
record exit "bhyve $status"
exit "$status"
