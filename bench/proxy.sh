#!/usr/bin/env bash
# bench/proxy.sh — the same small-GET load, in one run, against:
#   direct  the backend itself (the baseline)
#   banyan  banyan's proxy (`banyan serve`, its default `fast_path: on`:
#           io_uring where the kernel runs it, else goroutines)
#   banyan-uring  the same with `fast_path: io_uring` (the fast path on one
#           io_uring loop per CPU but one; fails where io_uring is refused)
#   banyan-goroutines  the same with `fast_path: goroutines` (a goroutine
#           a connection, waiting in Go's poller)
#   banyan-nethttp  the same with `fast_path: off` (net/http and
#           httputil.ReverseProxy for every request, as before ADR 0006)
#   banyan-base  banyan built from the git revision BASE (a change measured
#           beside the code before it, in the same run)
#   nginx   nginx as a reverse proxy (upstream keepalive 256, HTTP/1.1),
#           sending the backend what banyan and caddy send: the client's Host
#           and X-Forwarded-For/-Host/-Proto
#   nginx-plain  the same without those headers (nginx's own minimum)
#   caddy   caddy as a reverse proxy (reverse_proxy, 256 idle upstream conns)
#   bare    bench/bareproxy: the floor for a proxy in Go (a goroutine and a
#           backend connection per client connection, net.Conn reads and
#           writes, nothing else), to tell the Go runtime's cost from banyan's
#   bare-epoll  the same with one epoll event loop per CPU on raw system
#           calls instead of goroutines (nginx's model, in Go; Linux only)
#   bare-coro  one internal/uring loop per CPU: bare's straight-line code
#           as a coroutine a connection, its reads and writes queued on the
#           loop's io_uring, one io_uring_enter a turn (Linux 6.1 and later)
# all in front of the same tiny Go backend (bench/backend), all on 127.0.0.1.
#
# Per target:
#   1. max throughput: wrk -t2 -c$CONNS -d$DURATION --latency  -> req/s, p50, p99
#   2. fixed rate:     bench/loadgen -rate $RATE (open loop, latency measured
#                      from the scheduled send time; its raw client, one
#                      thread on epoll and a timerfd, unless LOADGEN_CLIENT
#                      says otherwise)                        -> p50, p99
#   3. equal load:     bench/loadgen -rate $CPU_RATE, below the maximum of
#                      the targets compared, so each serves the same requests
#                      in the same time   -> CPU µs a request of the target
#                      and the backend, and their threads' context switches
# and, from run 1, where the machine's time went a request: CPU µs of the
# target, the backend and wrk, idle µs, and the context switches of the
# target's and the backend's threads (/proc). Run 1 shows how the three
# processes share two saturated CPUs; run 3 what a request costs at that load.
#
# SCENARIO=shadow measures instead what shadow traffic costs the customer:
# banyan in front of the same fast backend (`legacy`, split 100) with a second
# backend instance answering after SHADOW_DELAY (`orders-svc`, split 0), once
# with the route's shadow off and once per SHADOW_POOLS entry with
# `shadow: {percent: 100}` (every request mirrored to the slow side), each at
# every SHADOW_RATES rate with bench/loadgen -> primary p50, p99, the p99
# ratio on/off, mirrors compared and dropped (banyan's /metrics) and banyan's
# peak RSS (/proc/PID/status VmRSS every 100 ms) during the measurement.
#
# Needs: go, curl, and from Debian: apt-get install -y wrk nginx caddy
#        (SCENARIO=shadow needs neither wrk, nginx nor caddy)
# Env:   SCENARIO (proxies, the default, or shadow)
#        DURATION (s, default 10)  RATE (default 2000)  CONNS (default 64)
#        CPU_RATE (req/s of run 3, default 10000; 0 leaves run 3 out)
#        WARMUP (s, default 2)     TARGETS (default "direct banyan nginx caddy")
#        BASE (the git revision banyan-base is built from; needed with it)
#        ROUNDS (default 1): measure every target ROUNDS times, the targets'
#        order rotated each round, and report each round and the medians
#        (with SCENARIO=shadow: every case, off and each pool, each round,
#        the ratio against shadow off of the same round)
#        OUT (keep raw outputs here; default: a temp dir removed on exit)
#        CADDY_IDLE (caddy keepalive_idle_conns_per_host, default 256)
#        QUIET_WAIT, QUIET_MAX (before each measurement wait up to QUIET_WAIT s,
#        default 60, for the machine to be at most QUIET_MAX % busy, default 10)
#        OTHER_MAX_PCT, RETRIES (repeat a measurement, up to RETRIES times,
#        default 3, while processes outside this run plus hypervisor steal
#        took more than OTHER_MAX_PCT %, default 5, of the machine during it)
#        PROFILE=1 (take a CPU profile of banyan during its max-throughput run,
#        if its admin listener serves /debug/pprof/)
#        AVOID (default "bench/cdc.sh"), AVOID_WAIT (s, default 1800): before
#        each measurement also wait, up to AVOID_WAIT, until `pgrep -f AVOID`
#        finds nothing (another benchmark that would skew both); AVOID= skips it
#        LOADGEN_CLIENT (bench/loadgen's -client: raw, the default, or
#        nethttp, Go's http.Client, which the figures in bench/README.md
#        before the raw client came used; it sends up to 1.3 ms late at p99)
#        SHADOW_RATES (default "500 2000")  SHADOW_DELAY (default 500ms)
#        SHADOW_POOLS (default "8:1000 64:5000": workers:queue of the pool,
#        one shadow-on case each)
# Every process it starts is stopped on exit; every step is time-bounded.
set -Eeuo pipefail

DURATION=${DURATION:-10}
RATE=${RATE:-2000}
CPU_RATE=${CPU_RATE:-10000}
CONNS=${CONNS:-64}
WARMUP=${WARMUP:-2}
TARGETS=${TARGETS:-"direct banyan nginx caddy"}
ROUNDS=${ROUNDS:-1}
PROFILE=${PROFILE:-0}
# caddy keeps at most 32 idle upstream connections per host by default; with
# 64 client connections that closes and reopens upstream connections all the
# time. 256 matches nginx's "keepalive 256". CADDY_IDLE=32 gives caddy's default.
CADDY_IDLE=${CADDY_IDLE:-256}
QUIET_WAIT=${QUIET_WAIT:-60}
QUIET_MAX=${QUIET_MAX:-10}
OTHER_MAX_PCT=${OTHER_MAX_PCT:-5}
RETRIES=${RETRIES:-3}
SCENARIO=${SCENARIO:-proxies}
AVOID=${AVOID-bench/cdc.sh}
AVOID_WAIT=${AVOID_WAIT:-1800}
SHADOW_RATES=${SHADOW_RATES:-"500 2000"}
LOADGEN_CLIENT=${LOADGEN_CLIENT:-raw}
case $LOADGEN_CLIENT in
raw | nethttp) ;;
*) printf 'proxy.sh: unknown LOADGEN_CLIENT %s (want raw or nethttp)\n' "$LOADGEN_CLIENT" >&2 && exit 1 ;;
esac
SHADOW_DELAY=${SHADOW_DELAY:-500ms}
SHADOW_POOLS=${SHADOW_POOLS:-"8:1000 64:5000"}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/banyan-bench.XXXXXX")
OUT=${OUT:-$TMP/out}
mkdir -p "$OUT"

PIDS=()
CHILD=       # the load generator running now, if any
SAMPLER_PID= # the RSS sampler running now, if any
cleanup() {
	local rc=$? pid
	# set -e stopped the script: say where (die and signals say why themselves).
	if ((rc != 0 && rc != 130)) && [[ -z ${DIED:-} && -n ${LAST_ERR:-} ]]; then
		printf 'proxy.sh: stopped: %s\n' "$LAST_ERR" >&2
	fi
	for pid in $CHILD $SAMPLER_PID "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $CHILD $SAMPLER_PID "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }
die() {
	DIED=1
	printf 'proxy.sh: %s\n' "$*" >&2
	exit 1
}
# The last command that failed, for cleanup to name when set -e stops the
# script (failures that do not stop it, inside $(...) or a condition, are
# overwritten by the one that does).
trap 'LAST_ERR="\"$BASH_COMMAND\" failed (exit $?) at line $LINENO"' ERR

case $SCENARIO in
proxies) TOOLS="go curl wrk" ;;
shadow)
	TOOLS="go curl"
	TARGETS=banyan
	;;
*) die "unknown SCENARIO $SCENARIO (want proxies or shadow)" ;;
esac
for tool in $TOOLS; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y wrk nginx caddy)"
done
for t in $TARGETS; do
	case $t in
	direct | banyan | banyan-uring | banyan-goroutines | banyan-nethttp | bare | bare-epoll | bare-coro) ;;
	banyan-base) [[ -n ${BASE:-} ]] || die "target banyan-base needs BASE=<git revision>" ;;
	nginx | nginx-plain | caddy) command -v "${t%-plain}" >/dev/null || die "${t%-plain} not found (apt-get install -y ${t%-plain}), or leave $t out of TARGETS" ;;
	*) die "unknown target $t (want direct, banyan, banyan-uring, banyan-goroutines, banyan-nethttp, banyan-base, nginx, nginx-plain, caddy, bare, bare-epoll, bare-coro)" ;;
	esac
done

# free_port (a loopback port below the kernel's ephemeral range, so no
# client connection can take it between the check and the bind), cpu_busy
# and other_pct are shared with the other bench scripts.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# wait_ok URL: poll until URL answers 200 with the backend's body, at most 15 s.
wait_ok() {
	local url=$1 _
	for _ in $(seq 1 150); do
		if curl -fsS --max-time 1 "$url" 2>/dev/null | grep -q bench-backend; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# wait_quiet: the figures mean nothing if something else is using the CPUs
# (a build, a test run). First wait up to AVOID_WAIT seconds for no process
# to match AVOID (another benchmark on the same cores; bench/cdc.sh in turn
# waits, up to its QUIET_WAIT, while this script runs). Then wait up to QUIET_WAIT seconds for the machine
# to be under QUIET_MAX % busy; go on with a warning otherwise. Sets BUSY.
wait_quiet() {
	local _ waited=0
	if [[ -n $AVOID ]]; then
		while pgrep -f "$AVOID" >/dev/null; do
			if ((waited >= AVOID_WAIT)); then
				log "warning: '$AVOID' still running after ${AVOID_WAIT}s; measuring anyway"
				break
			fi
			((waited % 60 == 0)) && log "waiting for '$AVOID' to finish (pid $(pgrep -f "$AVOID" | paste -sd' ' -))"
			sleep 5
			waited=$((waited + 5))
		done
	fi
	for _ in $(seq 1 "$QUIET_WAIT"); do
		BUSY=$(cpu_busy)
		((BUSY <= QUIET_MAX)) && return 0
	done
	log "warning: machine still ${BUSY}% busy before measuring; figures will be noisy"
}

# target_pids: the running target and its children (nginx's workers), one a
# line; nothing for direct, which has no process of its own.
target_pids() {
	[[ -n ${TARGET_PID:-} ]] || return 0
	echo "$TARGET_PID"
	pgrep -P "$TARGET_PID" 2>/dev/null || true
}

# ticks: "TOTAL STEAL OTHER" in clock ticks. TOTAL is the whole machine's
# time (/proc/stat, all CPUs, idle included); STEAL is time the hypervisor
# gave our vCPUs to someone else; OTHER is the CPU used by every
# process outside this run: all user processes except this script (whose
# reaped children, wrk and loadgen, land in its own cutime), the backend, the
# target and its children (nginx workers), and in the shadow scenario the
# slow backend and the RSS sampler; kernel threads are left out.
# Counting utime+stime+cutime+cstime keeps processes that ended in between
# (a compiler run by `go test`): their time moves to their parent's cutime.
# other_pct turns two samples into the share of the machine used by anything
# else during a measurement, so a concurrent build or test run shows up in the
# report instead of silently skewing the figures.
ticks() {
	local excl
	excl=" $$ ${BACKEND_PID:-} ${SLOW_PID:-} ${SAMPLER_PID:-} $(target_pids | tr '\n' ' ')"
	awk '/^cpu / {s = 0; for (i = 2; i <= 9; i++) s += $i; printf "%d %d ", s, $9}' /proc/stat  # guest time is already in user
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v excl="$excl " '{ # a process may end between the glob and the read
		pid = $1; l = $0; sub(/^.*\) /, "", l); split(l, f, " ")
		if (pid == 2 || f[2] == 2 || index(excl, " " pid " ")) next
		s += f[12] + f[13] + f[14] + f[15]
	} END {printf "%d\n", s}'
}

# start NAME CMD...: run CMD in the background, logs to $OUT/NAME.log.
start() {
	local name=$1
	shift
	"$@" >"$OUT/$name.log" 2>&1 &
	PIDS+=("$!")
	LAST_PID=$!
}

# run_load CMD...: run a load generator so that a signal stops the script at once
# (bash runs traps only after a foreground child ends; `wait` is interrupted).
run_load() {
	"$@" &
	CHILD=$!
	wait "$CHILD"
	CHILD=
}

stop() {
	kill "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# ---- build ----------------------------------------------------------------
log "building backend, loadgen and bareproxy"
(cd "$ROOT" && go build -o "$TMP/backend" ./bench/backend && go build -o "$TMP/loadgen" ./bench/loadgen &&
	go build -o "$TMP/bareproxy" ./bench/bareproxy)
if [[ " $TARGETS " == *" banyan"* ]]; then # always in SCENARIO=shadow
	log "building banyan"
	(cd "$ROOT" && go build -o "$TMP/banyan" ./cmd/banyan) || die "go build ./cmd/banyan failed; run with TARGETS=\"direct nginx caddy\" to skip banyan"
fi
if [[ " $TARGETS " == *" banyan-base "* ]]; then
	log "building banyan at $BASE"
	mkdir -p "$TMP/base-src"
	git -C "$ROOT" archive "$BASE" | tar -x -C "$TMP/base-src" || die "cannot check out BASE=$BASE"
	(cd "$TMP/base-src" && go build -o "$TMP/banyan-base" ./cmd/banyan) || die "go build of banyan at $BASE failed"
	BASE_REV=$(git -C "$ROOT" rev-parse --short "$BASE")
fi

# ---- backend --------------------------------------------------------------
BACKEND_PORT=$(free_port)
BACKEND=127.0.0.1:$BACKEND_PORT
start backend "$TMP/backend" -listen "$BACKEND"
BACKEND_PID=$LAST_PID
wait_ok "http://$BACKEND/" || die "backend did not come up; see $OUT/backend.log"

# ---- proxies: each started just before its turn and stopped after ---------
start_target() { # sets URL and TARGET_PID
	local t=$1 port admin mode bin
	TARGET_PID=
	case $t in
	direct)
		URL=http://$BACKEND/
		return
		;;
	bare | bare-epoll | bare-coro)
		port=$(free_port)
		mode=goroutines
		[[ $t == bare-epoll ]] && mode=epoll
		[[ $t == bare-coro ]] && mode=coro
		start "$t" "$TMP/bareproxy" -listen "127.0.0.1:$port" -backend "$BACKEND" -mode "$mode"
		;;
	banyan | banyan-uring | banyan-goroutines | banyan-nethttp | banyan-base)
		port=$(free_port)
		admin=$(free_port)
		ADMIN=127.0.0.1:$admin
		mkdir -p "$TMP/banyan-state"
		fast=on
		[[ $t == banyan-nethttp ]] && fast=off
		[[ $t == banyan-uring ]] && fast=io_uring
		[[ $t == banyan-goroutines ]] && fast=goroutines
		cat >"$TMP/banyan.yaml" <<EOF
listen: 127.0.0.1:$port
fast_path: $fast
admin: {listen: 127.0.0.1:$admin}
state: $TMP/banyan-state/state.db
backends:
  app: {url: http://$BACKEND}
routes:
  - name: all
    match: {path_prefix: /}
    split: {app: 100}
EOF
		bin=$TMP/banyan
		[[ $t == banyan-base ]] && bin=$TMP/banyan-base
		start "$t" env -u BANYAN_ADMIN_TOKEN -u BANYAN_FAST_PATH "$bin" serve --config "$TMP/banyan.yaml"
		;;
	nginx | nginx-plain)
		port=$(free_port)
		# nginx sends the backend what banyan and caddy send it: the
		# client's Host and the three X-Forwarded headers. nginx-plain sends
		# only nginx's own minimum (Host: app), so the backend has less to
		# parse behind it than behind the others.
		forwarded="proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Host \$http_host;
            proxy_set_header X-Forwarded-Proto \$scheme;"
		[[ $t == nginx-plain ]] && forwarded=""

		mkdir -p "$TMP/nginx"
		cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $TMP/nginx/body;
    proxy_temp_path $TMP/nginx/proxy;
    fastcgi_temp_path $TMP/nginx/fastcgi;
    uwsgi_temp_path $TMP/nginx/uwsgi;
    scgi_temp_path $TMP/nginx/scgi;
    upstream app {
        server $BACKEND;
        keepalive 256;
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            $forwarded
        }
    }
}
EOF
		start "$t" nginx -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" -g 'daemon off;'
		;;
	caddy)
		port=$(free_port)
		mkdir -p "$TMP/caddy"
		cat >"$TMP/caddy/Caddyfile" <<EOF
{
	admin off
	auto_https off
}
http://127.0.0.1:$port {
	reverse_proxy $BACKEND {
		transport http {
			keepalive_idle_conns_per_host $CADDY_IDLE
		}
	}
}
EOF
		start caddy env HOME="$TMP/caddy" XDG_DATA_HOME="$TMP/caddy" XDG_CONFIG_HOME="$TMP/caddy" \
			caddy run --config "$TMP/caddy/Caddyfile" --adapter caddyfile
		;;
	esac
	TARGET_PID=$LAST_PID
	URL=http://127.0.0.1:$port/
	wait_ok "$URL" || die "$t did not answer on $URL; see $OUT/$t.log"
}

# to_ms VALUE: wrk's "812.00us" / "1.69ms" / "1.02s" -> milliseconds.
to_ms() {
	awk -v v="$1" 'BEGIN {
		n = v + 0
		if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
		printf "%.2f", n
	}'
}

kv() { # kv KEY LINE: the value of KEY=... in a loadgen line
	tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"
}

# over A B: A / B to two decimals; n/a when B is not a positive number.
over() { awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.2f", a / b; else printf "n/a"}'; }

# median: the median of the numbers on stdin (separated by spaces); anything
# else ("n/a") is left out.
median() { tr ' ' '\n' | grep -E '^[-+]?[0-9.]+$' | sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# measure_max K: wrk at full speed on the running target; K is the target,
# or target.round with ROUNDS > 1. Sets RPS P50 P99 WRKERR[K] and OTHER.
measure_max() {
	local t=$1 t0 psec prof_pid=
	if [[ $t == banyan || $t == banyan.1 ]] && [[ $PROFILE == 1 ]]; then
		psec=$((DURATION > 2 ? DURATION - 2 : 1))
		curl -fsS --max-time $((psec + 10)) -o "$OUT/banyan.cpu.pprof" \
			"http://$ADMIN/debug/pprof/profile?seconds=$psec" 2>"$OUT/banyan.pprof.err" &
		prof_pid=$!
	fi
	t0=$(ticks)
	c0=$(cpu_split)
	run_load wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency "$URL" >"$OUT/$t.wrk.txt"
	c1=$(cpu_split)
	OTHER=$(other_pct "$t0" "$(ticks)")
	if [[ -n $prof_pid ]]; then
		cp "$TMP/banyan" "$OUT/banyan.bin"
		if wait "$prof_pid"; then
			log "banyan: CPU profile in $OUT/banyan.cpu.pprof (go tool pprof -top $OUT/banyan.bin $OUT/banyan.cpu.pprof)"
		else
			log "banyan: no CPU profile ($(cat "$OUT/banyan.pprof.err"))"
		fi
	fi
	RPS[$t]=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' "$OUT/$t.wrk.txt")
	P50[$t]=$(to_ms "$(awk '$1 == "50%" {print $2}' "$OUT/$t.wrk.txt")")
	P99[$t]=$(to_ms "$(awk '$1 == "99%" {print $2}' "$OUT/$t.wrk.txt")")
	WRKERR[$t]=$(grep -E 'Non-2xx|Socket errors' "$OUT/$t.wrk.txt" | tr -s ' ' | paste -sd';' - || true)
	CPU[$t]=$(per_request "$c0" "$c1" "$(awk '/^[[:space:]]*[0-9]+ requests in/ {print $1}' "$OUT/$t.wrk.txt")")
}

# cpu_split: "TOTAL IDLE TARGET BACKEND LOAD TSW BSW" in clock ticks: the
# machine's time (all CPUs), its idle time, the target with its children
# (nginx's workers), the backend, and the load generators this script has
# reaped (wrk lands in the script's cutime once it ends, so sample after it
# has); then the context switches, voluntary and not, of the target's and the
# backend's threads (how often they ran out of work or were pushed off a CPU).
cpu_split() {
	awk '/^cpu / {s = 0; for (i = 2; i <= 9; i++) s += $i; printf "%d %d ", s, $5 + $6}' /proc/stat
	local p t=0 b=0 l=0 tp
	tp=$(target_pids)
	for p in $tp; do
		t=$((t + $(proc_ticks "$p" 12 13)))
	done
	[[ -n ${BACKEND_PID:-} ]] && b=$(proc_ticks "$BACKEND_PID" 12 13)
	l=$(proc_ticks $$ 14 15)
	echo "$t $b $l $(switches $tp) $(switches ${BACKEND_PID:-})"
}

# task_sum FILE PROG PID...: over every live thread of PIDs, the sum s that
# the awk rule PROG adds up from /proc/PID/task/*/FILE. A thread that ends
# between two samples is lost from the second; the targets' threads (Go
# runtimes, nginx's single-threaded workers) live as long as the process.
task_sum() {
	local file=$1 prog=$2 p n=0
	shift 2
	for p in "$@"; do
		n=$((n + $(cat /proc/"$p"/task/*/"$file" 2>/dev/null | awk "$prog"' END {printf "%d", s}')))
	done
	echo "$n"
}

# switches PID...: the context switches of every thread of PIDs, summed.
switches() { task_sum status '/^(non)?voluntary_ctxt_switches/ {s += $2}' "$@"; }

# proc_ticks PID I J: fields I+J of /proc/PID/stat counted after the command
# name (12 13 = utime stime, 14 15 = cutime cstime); 0 for a gone process.
proc_ticks() {
	awk -v i="$2" -v j="$3" '{l = $0; sub(/^.*\) /, "", l); split(l, f, " "); print f[i] + f[j]}' "/proc/$1/stat" 2>/dev/null || echo 0
}

# per_request C0 C1 N: the CPU time per request, in µs, of the target, the
# backend, wrk and the rest (what the machine was busy with besides), the
# machine's idle time per request, and the target's and the backend's context
# switches per request, from two cpu_split samples.
per_request() {
	awk -v a="$1" -v b="$2" -v n="$3" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		if (n <= 0) { print "n/a n/a n/a n/a n/a n/a n/a"; exit }
		for (i = 1; i <= 5; i++) d[i] = (y[i] - x[i]) * 1e6 / hz / n
		rest = d[1] - d[2] - d[3] - d[4] - d[5]
		printf "%.1f %.1f %.1f %.1f %.1f %.2f %.2f", d[3], d[4], d[5], rest, d[2], (y[6] - x[6]) / n, (y[7] - x[7]) / n
	}'
}

# loadgen RATE SECONDS: bench/loadgen on $URL, its one-line report on stdout.
loadgen() {
	run_load "$TMP/loadgen" -url "$URL" -rate "$1" -duration "${2}s" -conns "$CONNS" -client "$LOADGEN_CLIENT"
}

# measure_fixed K: loadgen at $RATE; sets LINE[K] and OTHER.
measure_fixed() {
	local t=$1 t0
	t0=$(ticks)
	loadgen "$RATE" "$DURATION" >"$OUT/$t.loadgen.txt"
	LINE[$t]=$(cat "$OUT/$t.loadgen.txt")
	OTHER=$(other_pct "$t0" "$(ticks)")
}

# run_ns PID...: the CPU time, in ns, the threads of PIDs have had
# (schedstat, the scheduler's own count). With CPUs partly idle, utime and
# stime are skewed: they charge a whole tick to whoever runs when it fires.
run_ns() { task_sum schedstat '{s += $1}' "$@"; }

# load_split: "TARGET BACKEND TSW BSW": run_ns of the target with its
# children and of the backend, then their threads' context switches.
load_split() {
	local tp
	tp=$(target_pids)
	echo "$(run_ns $tp) $(run_ns ${BACKEND_PID:-}) $(switches $tp) $(switches ${BACKEND_PID:-})"
}

# measure_load K: loadgen at $CPU_RATE; sets LOAD[K] (the loadgen line),
# LOADCPU[K] ("TARGET BACKEND TSW BSW" a request: µs of CPU, context
# switches) and OTHER.
measure_load() {
	local t=$1 t0 c0 c1
	t0=$(ticks)
	c0=$(load_split)
	loadgen "$CPU_RATE" "$DURATION" >"$OUT/$t.load.txt"
	c1=$(load_split)
	OTHER=$(other_pct "$t0" "$(ticks)")
	LOAD[$t]=$(cat "$OUT/$t.load.txt")
	LOADCPU[$t]=$(awk -v a="$c0" -v b="$c1" -v n="$(kv ok "${LOAD[$t]}")" 'BEGIN {
		split(a, x, " "); split(b, y, " ")
		if (n <= 0) { print "n/a n/a n/a n/a"; exit }
		printf "%.1f %.1f %.2f %.2f", (y[1] - x[1]) / 1e3 / n, (y[2] - x[2]) / 1e3 / n, (y[3] - x[3]) / n, (y[4] - x[4]) / n
	}')
}

# measure PHASE T: run a phase until nothing else used more than OTHER_MAX_PCT
# of the machine during it, at most RETRIES times. Sets OTHER and TRIES.
measure() {
	local phase=$1 t=$2
	for TRIES in $(seq 1 "$RETRIES"); do
		wait_quiet
		"measure_$phase" "$t"
		((OTHER <= OTHER_MAX_PCT)) && return 0
		log "$t: other processes and steal took ${OTHER}% of the machine during the $phase measurement (try $TRIES of $RETRIES)"
	done
}

# ---- shadow scenario ------------------------------------------------------
# Same backend binary, second instance: answers after SHADOW_DELAY.
if [[ $SCENARIO == shadow ]]; then
	SLOW=127.0.0.1:$(free_port)
	start slow "$TMP/backend" -listen "$SLOW" -delay "$SHADOW_DELAY"
	SLOW_PID=$LAST_PID
	wait_ok "http://$SLOW/" || die "slow backend did not come up; see $OUT/slow.log"
fi

# start_banyan_shadow KEY POOL: a fresh banyan (fresh counters, fresh RSS)
# with the fast backend as `legacy` (split 100) and the slow one as
# `orders-svc` (split 0). POOL "off" leaves the route without shadow;
# "W:Q" mirrors 100 % of it to orders-svc through a pool of W workers and
# a queue of Q. Everything else is identical. Sets URL, ADMIN and TARGET_PID.
start_banyan_shadow() {
	local key=$1 pool=$2 port admin workers=8 queue=1000 route_shadow=""
	if [[ $pool != off ]]; then
		workers=${pool%%:*}
		queue=${pool##*:}
		route_shadow="shadow: {percent: 100, timeout: 5s}"
	fi
	port=$(free_port)
	admin=$(free_port)
	ADMIN=127.0.0.1:$admin
	mkdir -p "$TMP/$key"
	cat >"$TMP/$key/banyan.yaml" <<EOF
listen: 127.0.0.1:$port
admin: {listen: 127.0.0.1:$admin}
state: state.db
backends:
  legacy: {url: http://$BACKEND}
  orders-svc: {url: http://$SLOW, timeout: 5s}
routes:
  - name: all
    match: {path_prefix: /}
    split: {legacy: 100, orders-svc: 0}
    $route_shadow
shadow: {workers: $workers, queue: $queue}
reports: {store: reports.db}
EOF
	cp "$TMP/$key/banyan.yaml" "$OUT/$key.yaml"
	start "$key" env -u BANYAN_ADMIN_TOKEN "$TMP/banyan" serve --config "$TMP/$key/banyan.yaml"
	TARGET_PID=$LAST_PID
	URL=http://127.0.0.1:$port/
	wait_ok "$URL" || die "banyan ($key) did not answer on $URL; see $OUT/$key.log"
}

# shadow_metrics: "compared=N dropped=N REASON=N..." summed over routes from
# banyan's /metrics.
shadow_metrics() {
	curl -fsS --max-time 5 "http://$ADMIN/metrics" | awk '
		/^banyan_shadow_compared_total\{/ { c += $NF }
		/^banyan_shadow_dropped_total\{/ {
			match($0, /reason="[^"]*"/); r = substr($0, RSTART + 8, RLENGTH - 9)
			d[r] += $NF; t += $NF
		}
		END { printf "compared=%d dropped=%d", c, t; for (r in d) if (d[r] > 0) printf " %s=%d", r, d[r]; print "" }'
}

# kv_delta A B: B minus A, key by key, for "k=v ..." lines.
kv_delta() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " "); for (i = 1; i <= n; i++) { split(x[i], p, "="); A[p[1]] = p[2] }
		n = split(b, y, " "); s = ""
		for (i = 1; i <= n; i++) { split(y[i], p, "="); s = s (s == "" ? "" : " ") p[1] "=" (p[2] - A[p[1]]) }
		print s
	}'
}

# start_sampler PID FILE: PID's VmRSS (kB) into FILE, one line every 100 ms.
start_sampler() {
	local pid=$1 file=$2
	(
		while :; do
			while read -r k v _; do
				if [[ $k == VmRSS: ]]; then echo "$v"; fi
			done 2>/dev/null <"/proc/$pid/status" || exit 0
			sleep 0.1
		done
	) >"$file" &
	SAMPLER_PID=$!
}

# measure_shadow KEY: loadgen at $RATE against banyan while sampling its RSS;
# sets LINE[KEY], MIRR[KEY] (mirror counters during the measurement), RSS
# and RSS0[KEY] (peak and first sample, kB), and OTHER.
measure_shadow() {
	local key=$1 t0 m0
	m0=$(shadow_metrics)
	start_sampler "$TARGET_PID" "$OUT/$key.rss"
	t0=$(ticks)
	loadgen "$RATE" "$DURATION" >"$OUT/$key.loadgen.txt"
	OTHER=$(other_pct "$t0" "$(ticks)")
	stop "$SAMPLER_PID"
	SAMPLER_PID=
	LINE[$key]=$(cat "$OUT/$key.loadgen.txt")
	MIRR[$key]=$(kv_delta "$m0" "$(shadow_metrics)")
	RSS[$key]=$(sort -n "$OUT/$key.rss" | tail -1)
	RSS0[$key]=$(head -1 "$OUT/$key.rss")
}

mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

if [[ $SCENARIO == shadow ]]; then
	declare -A LINE MIRR RSS RSS0 NOTE
	KEYS=()
	read -ra CASES <<<"off $SHADOW_POOLS"
	for r in $(seq 1 "$ROUNDS"); do
	for RATE in $SHADOW_RATES; do
		# Each round starts the cases one further along, so that none is
		# always measured first or last.
		for i in "${!CASES[@]}"; do
			pool=${CASES[$(((i + r - 1) % ${#CASES[@]}))]}
			key=r$RATE-${pool/:/x}
			((ROUNDS > 1)) && key+=.$r
			KEYS+=("$key")
			log "$key: banyan, shadow ${pool}, loadgen -rate $RATE -duration ${DURATION}s -conns $CONNS"
			start_banyan_shadow "$key" "$pool"
			# Quiet first, then the warm-up at the same rate right before the
			# measurement: the shadow queue and workers are in their steady
			# state when it starts.
			for TRIES in $(seq 1 "$RETRIES"); do
				wait_quiet
				loadgen "$RATE" "$WARMUP" >/dev/null
				measure_shadow "$key"
				((OTHER <= OTHER_MAX_PCT)) && break
				log "$key: other processes and steal took ${OTHER}% of the machine during the measurement (try $TRIES of $RETRIES)"
			done
			NOTE[$key]="$OTHER% ($TRIES)"
			stop "$TARGET_PID"
			TARGET_PID=
			line=${LINE[$key]}
			log "$key: p50 $(kv p50 "$line") ms, p99 $(kv p99 "$line") ms; ${MIRR[$key]}; peak RSS $(mib "${RSS[$key]}") MiB"
		done
	done
	done

	rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
	[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || rev+=" (dirty tree)"
	echo
	echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); $(go version | cut -d' ' -f3-); $(machine); banyan: $rev"
	echo "SCENARIO=shadow: DURATION=${DURATION}s per measurement after a ${WARMUP}s warm-up at the same rate, $CONNS conns (loadgen -client $LOADGEN_CLIENT);"
	echo "mirror target answers after $SHADOW_DELAY; latencies in ms (from the scheduled send time), RSS in MiB"
	echo
	echo "| rate | shadow (workers:queue) | ok | errors | p50 | p99 | p99 on/off | svc p99 | compared | dropped | RSS start | RSS peak | other |"
	echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
	# ratio KEY: KEY's p99 over the p99 with shadow off at the same rate, in
	# the same round.
	ratio() {
		local key=$1 rate round=
		rate=${key%%-*}
		[[ $key == *.* ]] && round=.${key##*.}
		over "$(kv p99 "${LINE[$key]}")" "$(kv p99 "${LINE[$rate-off$round]}")"
	}
	for key in "${KEYS[@]}"; do
		line=${LINE[$key]}
		rate=${key%%-*}
		rate=${rate#r}
		pool=${key#*-}
		pool=${pool%.*}
		ratio=$(ratio "$key")
		dropped=$(kv dropped "${MIRR[$key]}")
		reasons=$(tr ' ' '\n' <<<"${MIRR[$key]}" | grep -Ev '^(compared|dropped)=' | paste -sd, - || true)
		[[ -n $reasons ]] && dropped+=" ($reasons)"
		if [[ $pool == off ]]; then
			ratio="—"
		fi
		label=${pool/x/:}
		[[ $key == *.* ]] && label+=" #${key##*.}"
		echo "| $rate | $label | $(kv ok "$line") | $(kv errors "$line") | $(kv p50 "$line") | $(kv p99 "$line") | $ratio | $(kv svc_p99 "$line") | $(kv compared "${MIRR[$key]}") | $dropped | $(mib "${RSS0[$key]}") | $(mib "${RSS[$key]}") | ${NOTE[$key]} |"
	done
	if ((ROUNDS > 1)); then
		echo
		echo "Over $ROUNDS rounds (#N in the table above is the round; the cases' order was rotated each round):"
		echo
		echo "| rate | shadow (workers:queue) | median p99 | p99 on/off, each round | median p99 on/off |"
		echo "|---:|---|---:|---|---:|"
		for RATE in $SHADOW_RATES; do
			for pool in "${CASES[@]}"; do
				p99s="" ratios=""
				for r in $(seq 1 "$ROUNDS"); do
					key=r$RATE-${pool/:/x}.$r
					p99s+=" $(kv p99 "${LINE[$key]}")"
					[[ $pool == off ]] || ratios+=" $(ratio "$key")"
				done
				if [[ $pool == off ]]; then
					echo "| $RATE | off | $(median <<<"$p99s") | — | — |"
				else
					echo "| $RATE | $pool | $(median <<<"$p99s") | ${ratios# } | $(median <<<"$ratios") |"
				fi
			done
		done
	fi
	echo
	echo "compared/dropped: banyan_shadow_compared_total / banyan_shadow_dropped_total (by reason) counted during the"
	echo "measurement only; requests ok = mirrors compared + dropped + the change in what is queued or in flight."
	echo "other = share of the machine taken by processes outside this run and by hypervisor steal (tries)."
	exit 0
fi

declare -A RPS P50 P99 WRKERR LINE DETAIL CPU LOAD LOADCPU
read -ra TLIST <<<"$TARGETS"
KEYS=()
for r in $(seq 1 "$ROUNDS"); do
	# Rotate the order each round, so no target always runs first or last.
	n=${#TLIST[@]}
	for i in $(seq 0 $((n - 1))); do
		t=${TLIST[$(((i + r - 1) % n))]}
		key=$t
		((ROUNDS > 1)) && key=$t.$r
		KEYS+=("$key")
		log "$key: starting"
		start_target "$t"
		log "$key: warm-up ${WARMUP}s, then wrk -t2 -c$CONNS -d${DURATION}s --latency $URL"
		run_load wrk -t2 -c"$CONNS" -d"${WARMUP}s" "$URL" >/dev/null
		measure max "$key"
		note_max="$OTHER% ($TRIES)"

		sleep 1
		log "$key: loadgen -rate $RATE -duration ${DURATION}s -conns $CONNS"
		measure fixed "$key"
		note_fixed="$OTHER% ($TRIES)"
		note_load=—
		if ((CPU_RATE > 0)); then
			sleep 1
			log "$key: loadgen -rate $CPU_RATE -duration ${DURATION}s -conns $CONNS (equal load, for the CPU a request)"
			measure load "$key"
			note_load="$OTHER% ($TRIES)"
		fi
		line=${LINE[$key]}
		DETAIL[$key]="| $key | $(kv ok "$line") | $(kv errors "$line") | $(kv p90 "$line") | $(kv max "$line") | $(kv svc_p50 "$line") | $(kv svc_p99 "$line") | $(kv lag_p99 "$line") | ${WRKERR[$key]:-none} | $note_max | $note_fixed | $note_load |"

		if [[ -n $TARGET_PID ]]; then
			stop "$TARGET_PID"
		fi
		log "$key: ${RPS[$key]} req/s, p50 ${P50[$key]} ms, p99 ${P99[$key]} ms; @${RATE}: p50 $(kv p50 "$line") ms, p99 $(kv p99 "$line") ms"
	done
done

# ---- report ---------------------------------------------------------------
rk=$((RATE / 1000))k
[[ $((RATE % 1000)) == 0 ]] || rk=$RATE
rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
[[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || rev+=" (dirty tree)"
[[ -n ${BASE_REV:-} ]] && rev+="; banyan-base: $BASE_REV"
echo
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); $(go version | cut -d' ' -f3-); $(machine)"
echo "wrk: $(wrk -v 2>&1 | head -1 | cut -d' ' -f2)$(command -v nginx >/dev/null && echo "; $(nginx -v 2>&1 | cut -d' ' -f3)")$(command -v caddy >/dev/null && echo "; caddy $(caddy version | cut -d' ' -f1)"); banyan: $rev"
echo "DURATION=${DURATION}s per measurement, wrk -t2 -c$CONNS; fixed rate $RATE req/s with $CONNS conns (loadgen -client $LOADGEN_CLIENT); ROUNDS=$ROUNDS; latencies in ms"
echo
# added K: K's fixed-rate p99 minus direct's in the same round.
added() {
	local k=$1 d=direct
	[[ $k == *.* ]] && d=direct.${k#*.}
	if [[ ${k%%.*} == direct ]]; then
		echo "—"
	elif [[ -n ${LINE[$d]:-} ]]; then
		awk -v a="$(kv p99 "${LINE[$k]}")" -v b="$(kv p99 "${LINE[$d]}")" 'BEGIN {printf "%+.2f", a - b}'
	else
		echo "n/a"
	fi
}
echo "| target | max rps | p50 | p99 | p50@$rk | p99@$rk | added p99@$rk vs direct |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for k in "${KEYS[@]}"; do
	echo "| $k | ${RPS[$k]} | ${P50[$k]} | ${P99[$k]} | $(kv p50 "${LINE[$k]}") | $(kv p99 "${LINE[$k]}") | $(added "$k") |"
done
if ((ROUNDS > 1)); then
	echo
	echo "Medians over $ROUNDS rounds (max rps vs nginx: this target's max rps over nginx's in the same round):"
	echo
	echo "| target | max rps | p99@$rk | added p99@$rk | max rps vs nginx, each round |"
	echo "|---|---:|---:|---:|---|"
	for t in "${TLIST[@]}"; do
		rps="" p99="" add="" vs=""
		for r in $(seq 1 "$ROUNDS"); do
			k=$t.$r
			rps+=" ${RPS[$k]}"
			p99+=" $(kv p99 "${LINE[$k]}")"
			a=$(added "$k")
			[[ $a == "—" || $a == n/a ]] || add+=" $a"
			[[ -n ${RPS[nginx.$r]:-} ]] && vs+=" $(over "${RPS[$k]}" "${RPS[nginx.$r]}")"
		done
		madd="—"
		[[ -n $add ]] && madd=$(printf '%+.2f' "$(median <<<"$add")")
		echo "| $t | $(median <<<"$rps") | $(median <<<"$p99") | $madd | ${vs# } |"
	done
fi
echo
echo "Detail (ms; fixed-rate p* from the scheduled send time, svc from the actual send, lag = client lateness;"
echo "other = share of the machine taken by processes outside this run and by hypervisor steal during the kept measurement (tries);"
echo "above $OTHER_MAX_PCT % the figures are noisy):"
echo
echo "| target | ok@$rk | errors@$rk | p90@$rk | max@$rk | svc p50@$rk | svc p99@$rk | lag p99@$rk | wrk errors | other: max | other: $rk | other: equal load |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|"
for k in "${KEYS[@]}"; do
	echo "${DETAIL[$k]}"
done
echo
echo "Where the machine's time went per request in the max-rps run (µs of CPU a request; the target counts"
echo "its children, rest = the machine's busy time no column above took: kernel threads, interrupts, steal, other processes"
echo "and this script (tick counting makes it off by a few µs, so it can be below 0), idle = CPUs doing nothing; direct has"
echo "no target, so its target columns are 0):"
echo
echo "| target | target | backend | wrk | rest | idle | target's context switches a request | backend's context switches a request |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for k in "${KEYS[@]}"; do
	echo "| $k | ${CPU[$k]// / | } |"
done
if ((ROUNDS > 1)); then
	# wrk does the same work behind every target, so its CPU a request
	# gauges the machine's speed at that moment; on a VM whose speed swings
	# within a run, this ratio moved far less than max rps did
	# (bench/README.md, "Results at 2b70b1a–594960d").
	echo
	echo "The target's CPU a request over wrk's in the same max-rps measurement (the lower, the cheaper the proxy):"
	echo
	echo "| target | target / wrk, each round | median |"
	echo "|---|---|---:|"
	for t in "${TLIST[@]}"; do
		[[ $t == direct ]] && continue
		vs=""
		for r in $(seq 1 "$ROUNDS"); do
			read -r a _ w _ <<<"${CPU[$t.$r]:-}"
			[[ -n ${w:-} ]] && vs+=" $(over "$a" "$w")"
		done
		echo "| $t | ${vs# } | $(median <<<"$vs") |"
	done
fi
if ((CPU_RATE > 0)); then
	echo
	echo "CPU a request at an equal load of $CPU_RATE req/s (bench/loadgen, $CONNS conns; µs of CPU a request from the scheduler's"
	echo "own count, /proc/PID/task/*/schedstat; ok and p99 show whether the target kept up: figures of a target that did not"
	echo "are not comparable):"
	echo
	echo "| target | ok | errors | p99 | target µs | backend µs | target's context switches a request | backend's context switches a request |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|"
	for k in "${KEYS[@]}"; do
		echo "| $k | $(kv ok "${LOAD[$k]}") | $(kv errors "${LOAD[$k]}") | $(kv p99 "${LOAD[$k]}") | ${LOADCPU[$k]// / | } |"
	done
	if ((ROUNDS > 1)); then
		echo
		echo "Medians over $ROUNDS rounds at $CPU_RATE req/s (target vs nginx: the target's CPU a request over nginx's in the same round):"
		echo
		echo "| target | target µs | backend µs | target + backend µs | target vs nginx, each round |"
		echo "|---|---:|---:|---:|---|"
		for t in "${TLIST[@]}"; do
			tu="" bu="" sum="" vs=""
			for r in $(seq 1 "$ROUNDS"); do
				read -r a b _ <<<"${LOADCPU[$t.$r]}"
				[[ $a == n/a ]] && continue # loadgen reported nothing served
				tu+=" $a" bu+=" $b"
				sum+=" $(awk -v a="$a" -v b="$b" 'BEGIN {printf "%.1f", a + b}')"
				[[ $t != direct && -n ${LOADCPU[nginx.$r]:-} ]] && vs+=" $(over "$a" "${LOADCPU[nginx.$r]%% *}")"
			done
			echo "| $t | $(median <<<"$tu") | $(median <<<"$bu") | $(median <<<"$sum") | ${vs# } |"
		done
	fi
fi
