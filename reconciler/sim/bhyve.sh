# Simulated bhyve(8): the long-running part of one guest, exec'd by the bhyve tool once the
# VM, its taps and its pid are set up. $1 is the guest's directory under ROOT/.sim/guests.
# A command (bhyvectl, a test's guest_do) writes an exit status to $1/cmd, optionally followed
# by lines bhyve prints on stderr, then sends SIGUSR1.
# SIGTERM is the ACPI power button: the guest powers off (exit 1) unless $1/noacpi exists.
# Whenever the guest ends on its own it records its status in $1/exit: the VM's vCPUs are then
# suspended (vmexit_suspend), which is what lets a loader vm_reinit() it. A SIGKILL leaves no
# record, as a killed bhyve leaves its vCPUs active.
# $2 is its console's B side (a link under the root; empty without an nmdm console), whose A
# side this shell holds as fd 4; SIGUSR2 starts the console's getty for one session
# (console.py, run by the interpreter $3 from the package directory $4).
dir=$1
console=$2
python=$3
package=$4

finish() {
	if [ -n "$console" ]; then rm -f "$console"; fi
	echo "$1" > "$dir/exit"
	owner=
	read -r owner < "$dir/pid" 2>/dev/null
	if [ "$owner" = "$$" ]; then rm -f "$dir/pid"; fi
	exit "$1"
}

power_button() {
	if [ -e "$dir/noacpi" ]; then return 0; fi
	sleep 0.05
	finish 1
}

on_command() {
	status=4
	if [ -r "$dir/cmd" ]; then
		{
			read -r status
			while IFS= read -r line; do
				if [ -n "$line" ]; then printf '%s\n' "$line" >&2; fi
			done
		} < "$dir/cmd"
	fi
	rm -f "$dir/cmd"
	finish "$status"
}

getty() {
	if [ -n "$console" ]; then
		"$python" -SE -c 'import sys; sys.path.insert(0, sys.argv[1])
from reconciler.sim.console import main
sys.exit(main(sys.argv[2:]))' "$package" "$dir" &
	fi
}

trap power_button TERM
trap on_command USR1
trap getty USR2
# Written only once the traps are set, so whoever reads the pid can signal it safely.
echo $$ > "$dir/pid"
# Block in the read builtin on a FIFO nobody writes: no child process (a sleep would be
# orphaned by SIGKILL), and a trapped signal interrupts the read.
exec 3<>"$dir/wake"
while :; do
	read -r _ <&3
done
