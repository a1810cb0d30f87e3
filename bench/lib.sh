# shellcheck shell=bash
# bench/lib.sh — helpers shared by the bench scripts (sourced, not run):
# free loopback ports below the ephemeral range, and the CPU readings the
# noise guards use. The sourcing script defines die().

# free_port: a loopback TCP port no socket uses, below the ephemeral range;
# ports handed out in this run are skipped.
USED_PORTS=" "
EPHEMERAL_LOW=$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
free_port() {
	local p _ span=$((EPHEMERAL_LOW - 10000))
	((span > 1000)) || span=20000
	for _ in $(seq 1 200); do
		p=$((10000 + RANDOM % span))
		[[ $USED_PORTS == *" $p "* ]] && continue
		if command -v ss >/dev/null; then
			[[ -z $(ss -Htan "( sport = :$p or dport = :$p )") ]] || continue
		elif (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			continue
		fi
		USED_PORTS+="$p "
		echo "$p"
		return
	done
	die "no free port found"
}

# cpu_busy: the machine's busy share (%) over one second.
cpu_busy() {
	local a b
	a=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / {print $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		busy = y[1] - x[1]; idle = y[2] - x[2]
		printf "%d", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0
	}'
}

# other_pct A B: the share (%) of the machine used by others between two
# ticks readings ("total others steal").
other_pct() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		total = y[1] - x[1]; o = (y[2] - x[2]) + (y[3] - x[3])
		printf "%d", (total > 0 && o > 0) ? 100 * o / total : 0
	}'
}

# machine: what of the machine moves the figures most between runs: the
# kernel, and whether it isolates page tables (PTI makes every system call
# dearer, so a proxy that makes fewer of them gains more there).
machine() {
	local pti
	pti=$(cat /sys/devices/system/cpu/vulnerabilities/meltdown 2>/dev/null || echo unknown)
	echo "kernel $(uname -r); meltdown: $pti"
}
