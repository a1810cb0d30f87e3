#!/usr/bin/env bash
# bench/cdc.sh — banyan's binlog CDC beside MariaDB's own replication, in one
# run, over the same binlog, on three throwaway MariaDB servers on 127.0.0.1:
#   source   sysbench's tables (sbtest1..N) and a heartbeat table bench.beat
#   target   banyan's target (`banyan cdc run`, every table mapped 1:1)
#   replica  a native MariaDB replica (CHANGE MASTER TO ... MASTER_USE_GTID)
#
# 1. catch-up apply rate: both consumers stopped, `sysbench oltp_write_only`
#    runs on the source for DURATION s (a backlog of N row changes); then, one
#    after the other, the replica (START SLAVE) and banyan (`banyan cdc run`)
#    are started and timed until they have applied the source's last GTID.
#    rows/s = N / catch-up time.
# 2. lag at a fixed RATE (2,000 rows/s): bench/cdcload writes sysbench-shaped
#    transactions plus a heartbeat row holding its scheduled send time, open
#    loop, for DURATION s, and reads the newest applied heartbeat from the
#    target every 100 ms (lag = now - its send time). First with banyan
#    streaming (replica stopped), then with the replica (banyan stopped).
# 3. all three servers are checked equal (CHECKSUM TABLE) at the end.
#
# Needs: go, mariadbd + mariadb-install-db + mariadb + mariadb-dump (Debian
#        mariadb-server), sysbench (installed from Debian when missing, as root)
# Env:   DURATION (s, default 60: backlog write time and each lag run)
#        RATE (rows/s for the lag runs, default 2000)
#        TABLES, TABLE_SIZE (sysbench tables, default 4 x 100000)
#        SB_THREADS (sysbench threads writing the backlog, default 4)
#        DURABLE=1 (innodb_flush_log_at_trx_commit=1, sync_binlog=1 on all
#        three servers; default: 2 and 0 on all three)
#        REPLICA_THREADS (slave_parallel_threads, default 0 = one applier
#        thread, like banyan's single apply connection)
#        BATCH_ROWS (banyan cdc.batch_rows; default: banyan's own, 1000)
#        PROFILE=1 (banyan's catch-up runs under bench/cdcprof, the same
#        pipeline with a CPU profile, saved in OUT)
#        REV (build banyan from this commit, e.g. HEAD; default: the work tree)
#        OUT (keep raw outputs and logs here; default: a temp dir removed on exit)
#        CATCHUP_MAX (s, default 1800: give up waiting for a catch-up)
#        QUIET_WAIT, QUIET_MAX (before each measurement wait up to QUIET_WAIT s,
#        default 120, for no other bench/*.sh to run and the machine to be at
#        most QUIET_MAX % busy, default 10)
# Every process it starts is stopped on exit; every step is time-bounded.
set -Eeuo pipefail
trap 'echo "cdc.sh: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

DURATION=${DURATION:-60}
RATE=${RATE:-2000}
TABLES=${TABLES:-4}
TABLE_SIZE=${TABLE_SIZE:-100000}
SB_THREADS=${SB_THREADS:-4}
DURABLE=${DURABLE:-0}
REPLICA_THREADS=${REPLICA_THREADS:-0}
BATCH_ROWS=${BATCH_ROWS:-}
PROFILE=${PROFILE:-0}
CATCHUP_MAX=${CATCHUP_MAX:-1800}
QUIET_WAIT=${QUIET_WAIT:-120}
QUIET_MAX=${QUIET_MAX:-10}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Short path: MariaDB's socket path must fit in 107 bytes.
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bcdc.XXXXXX")
OUT=${OUT:-$TMP/out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

PIDS=()
CHILD= # a foreground job (sysbench, cdcload), if any
cleanup() {
	local pid
	for pid in $CHILD "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in $CHILD "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'cdc.sh: %s\n' "$*" >&2; exit 1; }

# ---- tools ----------------------------------------------------------------
if ! command -v sysbench >/dev/null; then
	[[ $(id -u) == 0 ]] || die "sysbench not found: apt-get install -y sysbench"
	log "installing sysbench from Debian"
	if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sysbench; } >"$OUT/apt.log" 2>&1; then
		die "apt-get install -y sysbench failed; see $OUT/apt.log"
	fi
fi
MARIADBD=$(command -v mariadbd || true)
[[ -n $MARIADBD ]] || MARIADBD=/usr/sbin/mariadbd
[[ -x $MARIADBD ]] || die "mariadbd not found (apt-get install -y mariadb-server)"
for tool in go mariadb mariadb-install-db mariadb-dump sysbench; do
	command -v "$tool" >/dev/null || die "$tool not found (apt-get install -y mariadb-server mariadb-client sysbench)"
done
USER_ARGS=()
[[ $(id -u) == 0 ]] && USER_ARGS=(--user=root)

# free_port, cpu_busy and other_pct are shared with the other bench scripts.
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"

# ---- noise guard ----------------------------------------------------------
# wait_quiet: before a measurement, wait (up to QUIET_WAIT s) until no other
# bench script runs (bench/proxy.sh shares the same 2 cores) and the machine
# is under QUIET_MAX % busy; go on with a warning otherwise.
wait_quiet() {
	local _ busy=100 others
	for _ in $(seq 1 "$QUIET_WAIT"); do
		others=$(pgrep -f 'bench/[a-z]+\.sh' | grep -vxF -f <({ ours; ancestors; } | tr ' ' '\n') || true)
		if [[ -z $others ]]; then
			busy=$(cpu_busy)
			((busy <= QUIET_MAX)) && return 0
		else
			sleep 1
		fi
	done
	log "warning: another bench script runs or the machine is ${busy}% busy; figures will be noisy"
}

# ours: this script and all its descendants (the servers, banyan, clients).
ours() {
	ps -e -o pid=,ppid= | awk -v root=$$ '{p[$1] = $2} END {
		for (x in p) { y = x; n = 0; while (y != root && y > 1 && (y in p) && n++ < 64) y = p[y]; if (y == root) printf "%s ", x }
		printf "%s\n", root }'
}

# ancestors: the processes this script runs under (e.g. `timeout ... bench/cdc.sh`).
ancestors() {
	local p=$$
	while p=$(awk '{l = $0; sub(/^.*\) /, "", l); split(l, f, " "); print f[2]}' "/proc/$p/stat" 2>/dev/null) && ((p > 1)); do
		printf '%s ' "$p"
	done
	echo
}

# ticks: "TOTAL STEAL OTHER" in clock ticks: the whole machine's time, the
# hypervisor's steal, and the CPU used by every process outside this run
# (kernel threads left out; utime+stime+cutime+cstime, as in bench/proxy.sh).
ticks() {
	local excl
	excl=" $(ours) "
	awk '/^cpu / {s = 0; for (i = 2; i <= 9; i++) s += $i; printf "%d %d ", s, $9}' /proc/stat
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v excl="$excl" '{ # processes may end meanwhile
		pid = $1; l = $0; sub(/^.*\) /, "", l); split(l, f, " ")
		if (pid == 2 || f[2] == 2 || index(excl, " " pid " ")) next
		s += f[12] + f[13] + f[14] + f[15]
	} END {printf "%d\n", s}'
}

# cpu_ticks PID: utime+stime of one process, in clock ticks.
cpu_ticks() {
	awk '{l = $0; sub(/^.*\) /, "", l); split(l, f, " "); print f[12] + f[13]}' "/proc/$1/stat" 2>/dev/null || echo 0
}
HZ=$(getconf CLK_TCK)

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }

# ---- MariaDB servers ------------------------------------------------------
# The durability settings are the same on all three servers.
if [[ $DURABLE == 1 ]]; then
	DURABILITY=(--innodb-flush-log-at-trx-commit=1 --sync-binlog=1)
	DURABILITY_TEXT="innodb_flush_log_at_trx_commit=1, sync_binlog=1"
else
	DURABILITY=(--innodb-flush-log-at-trx-commit=2 --sync-binlog=0)
	DURABILITY_TEXT="innodb_flush_log_at_trx_commit=2, sync_binlog=0"
fi
SIZING=(--innodb-buffer-pool-size=1G --innodb-log-file-size=256M)

declare -A PORT SRVPID
# start_db NAME SERVER_ID [EXTRA ARGS...]: the flags of internal/testdb (ROW,
# FULL image, FULL metadata, GTID, own server_id, --no-defaults, never the
# system server), plus the bench's durability and sizing.
start_db() {
	local name=$1 id=$2 dir=$TMP/$1 _
	shift 2
	mkdir -p "$dir"
	mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
		--skip-test-db --skip-name-resolve --innodb-log-file-size=8M --innodb-buffer-pool-size=64M \
		"${USER_ARGS[@]}" >"$OUT/$name.install.log" 2>&1 || die "mariadb-install-db for $name failed; see $OUT/$name.install.log"
	PORT[$name]=$(free_port)
	"$MARIADBD" --no-defaults --datadir="$dir/data" --socket="$dir/s.sock" --pid-file="$dir/mysqld.pid" \
		--port="${PORT[$name]}" --bind-address=127.0.0.1 \
		--log-bin="$dir/binlog" --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL \
		--server-id="$id" --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
		--max-connections=500 --default-time-zone=+00:00 \
		"${SIZING[@]}" "${DURABILITY[@]}" "${USER_ARGS[@]}" "$@" >"$OUT/$name.err.log" 2>&1 &
	SRVPID[$name]=$!
	PIDS+=("$!")
	for _ in $(seq 1 600); do
		q "$name" "SELECT 1" >/dev/null 2>&1 && return 0
		kill -0 "${SRVPID[$name]}" 2>/dev/null || die "$name exited; see $OUT/$name.err.log"
		sleep 0.1
	done
	die "$name did not accept connections within 60 s; see $OUT/$name.err.log"
}

# q NAME SQL: run SQL as root on a server, tab-separated, no headers.
q() {
	mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"${PORT[$1]}" -uroot --connect-timeout=5 -N -B -e "$2"
}
# parseTime: `banyan cdc status` scans DATETIME columns into time.Time.
dsn() { echo "root@tcp(127.0.0.1:${PORT[$1]})/$2?parseTime=true"; }
rows_changed() { # NAME: rows written, updated and deleted by statements (MariaDB counts temp tables apart)
	q "$1" "SELECT SUM(VARIABLE_VALUE) FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN ('HANDLER_WRITE','HANDLER_UPDATE','HANDLER_DELETE')"
}
status_var() { # NAME VAR
	q "$1" "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = '$2'"
}
src_gtid() { q source "SELECT @@GLOBAL.gtid_binlog_pos"; }
replica_gtid() { q replica "SELECT @@GLOBAL.gtid_slave_pos"; }
banyan_gtid() { q target "SELECT JSON_VALUE(applied_pos, '\$.gtid') FROM banyan.banyan_cdc_checkpoint WHERE pipeline = 'default' AND phase = 'stream'" 2>/dev/null || true; }
banyan_applied() { q target "SELECT COALESCE(SUM(row_count), 0) FROM banyan.banyan_cdc_stats WHERE pipeline = 'default'"; }

# run_fg CMD...: a foreground job that a signal interrupts at once.
run_fg() {
	"$@" &
	CHILD=$!
	local rc=0
	wait "$CHILD" || rc=$?
	CHILD=
	return $rc
}

# ---- build ----------------------------------------------------------------
# REV=commit builds banyan (and bench/cdcprof, against the same cdc package)
# from that commit instead of the work tree, so uncommitted changes of others
# do not end up in the figures; bench/cdcload always comes from the work tree.
BUILD=$ROOT
if [[ -n ${REV:-} ]]; then
	BUILD=$TMP/src
	mkdir -p "$BUILD"
	git -C "$ROOT" archive "$REV" | tar -x -C "$BUILD" || die "git archive $REV failed"
	mkdir -p "$BUILD/bench/cdcprof"
	cp "$ROOT/bench/cdcprof/main.go" "$BUILD/bench/cdcprof/"
fi
log "building banyan${REV:+ at $REV}, bench/cdcload and bench/cdcprof"
(cd "$BUILD" && go build -o "$TMP/banyan" ./cmd/banyan && go build -o "$TMP/cdcprof" ./bench/cdcprof)
(cd "$ROOT" && go build -o "$TMP/cdcload" ./bench/cdcload)

# ---- servers --------------------------------------------------------------
# The setup (sysbench prepare, dump, banyan's copy) keeps both cores busy:
# do not start it in the middle of another benchmark either.
wait_quiet
log "starting source, target and replica (MariaDB $("$MARIADBD" --no-defaults --version | sed -n 's/.*Ver \([^ ]*\).*/\1/p'); $DURABILITY_TEXT on all three)"
start_db source 1001
start_db target 1002
start_db replica 1003 --relay-log="$TMP/replica/relay" --log-slave-updates=ON --skip-slave-start \
	--slave-parallel-threads="$REPLICA_THREADS"
log "ports: source ${PORT[source]}, target ${PORT[target]}, replica ${PORT[replica]}"

# ---- data -----------------------------------------------------------------
SB=(--db-driver=mysql --mysql-host=127.0.0.1 --mysql-port="${PORT[source]}" --mysql-user=root --mysql-db=sbtest
	--tables="$TABLES" --table-size="$TABLE_SIZE")
q source "CREATE DATABASE sbtest; CREATE DATABASE bench; CREATE TABLE bench.beat (seq BIGINT NOT NULL PRIMARY KEY, sent_us BIGINT NOT NULL) ENGINE=InnoDB"
log "sysbench prepare: $TABLES tables x $TABLE_SIZE rows"
run_fg sysbench oltp_write_only "${SB[@]}" prepare >"$OUT/sysbench.prepare.txt" 2>&1 || die "sysbench prepare failed; see $OUT/sysbench.prepare.txt"

# The replica starts from a consistent dump and the GTID position it was
# taken at; banyan's target gets the same schema, empty, and banyan copies
# the rows itself (its initial copy), then streams from the position it read
# before copying. Neither load is written to its server's binlog.
CLIENT=(mariadb --no-defaults --protocol=tcp -h127.0.0.1 -uroot "--init-command=SET sql_log_bin=0")
mariadb-dump --no-defaults --protocol=tcp -h127.0.0.1 -P"${PORT[source]}" -uroot --single-transaction --gtid --master-data=2 \
	--databases sbtest bench >"$TMP/dump.sql" 2>"$OUT/dump.err" || die "mariadb-dump failed; see $OUT/dump.err"
DUMP_GTID=$(sed -n "s/^-- SET GLOBAL gtid_slave_pos='\([^']*\)'.*/\1/p" "$TMP/dump.sql" | head -1)
[[ -n $DUMP_GTID ]] || die "no gtid_slave_pos in the dump (mariadb-dump --gtid --master-data=2)"
"${CLIENT[@]}" -P"${PORT[replica]}" <"$TMP/dump.sql" || die "loading the dump into the replica failed"
q replica "SET GLOBAL gtid_slave_pos = '$DUMP_GTID';
	CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=${PORT[source]}, MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos;
	START SLAVE"
rm -f "$TMP/dump.sql"
mariadb-dump --no-defaults --protocol=tcp -h127.0.0.1 -P"${PORT[source]}" -uroot --no-data --databases sbtest bench |
	"${CLIENT[@]}" -P"${PORT[target]}" || die "creating the schema on the target failed"
q target "CREATE DATABASE banyan"

{
	echo "cdc:"
	echo "  source: {dsn: \"$(dsn source '')\", flavor: mariadb, position: gtid, server_id: 4051}"
	echo "  target: {dsn: \"$(dsn target banyan)\"}"
	[[ -n $BATCH_ROWS ]] && echo "  batch_rows: $BATCH_ROWS"
	echo "  tables:"
	for i in $(seq 1 "$TABLES"); do
		echo "    - {source: sbtest.sbtest$i, target: sbtest.sbtest$i}"
	done
	echo "    - {source: bench.beat, target: bench.beat}"
} >"$TMP/banyan.yaml"
cp "$TMP/banyan.yaml" "$OUT/banyan.yaml"

BANYAN_PID=
BANYAN_RUNS=0
METRICS=
start_banyan() { # [profile]
	BANYAN_RUNS=$((BANYAN_RUNS + 1))
	local logf=$OUT/banyan.$BANYAN_RUNS.log
	if [[ ${1:-} == profile ]]; then
		"$TMP/cdcprof" -config "$TMP/banyan.yaml" -cpuprofile "$OUT/banyan.cpu.pprof" >"$logf" 2>&1 &
	else
		METRICS=127.0.0.1:$(free_port)
		"$TMP/banyan" cdc run --config "$TMP/banyan.yaml" --metrics-listen "$METRICS" >"$logf" 2>&1 &
	fi
	BANYAN_PID=$!
	PIDS+=("$!")
}
stop_banyan() {
	[[ -n $BANYAN_PID ]] || return 0
	kill -TERM "$BANYAN_PID" 2>/dev/null || true
	wait "$BANYAN_PID" 2>/dev/null || true
	BANYAN_PID=
}

# wait_for NAME GETTER WANT: poll GETTER every 100 ms until it prints WANT
# (at most CATCHUP_MAX s); sets T_DONE. A banyan that exits is an error.
wait_for() {
	local name=$1 get=$2 want=$3 deadline got
	deadline=$(($(date +%s) + CATCHUP_MAX))
	while :; do
		got=$($get || true)
		if [[ $got == "$want" ]]; then
			T_DONE=$(now)
			return 0
		fi
		if [[ $name == banyan ]] && ! kill -0 "$BANYAN_PID" 2>/dev/null; then
			die "banyan cdc run exited; see $OUT/banyan.$BANYAN_RUNS.log"
		fi
		(($(date +%s) < deadline)) || die "$name did not reach $want within ${CATCHUP_MAX}s (at ${got:-nothing})"
		sleep 0.1
	done
}

banyan_caught_up() { # confirm with `banyan cdc status --format json`
	"$TMP/banyan" cdc status --config "$TMP/banyan.yaml" --format json >"$OUT/banyan.status.json" 2>&1 &&
		grep -q '"caught_up": true' "$OUT/banyan.status.json"
}

log "banyan: initial copy of $((TABLES * TABLE_SIZE)) rows, then streaming; replica catching up from the dump"
t0=$(now)
start_banyan
wait_for replica replica_gtid "$(src_gtid)"
wait_for banyan banyan_gtid "$(src_gtid)"
banyan_caught_up || die "banyan cdc status does not say caught_up; see $OUT/banyan.status.json"
COPY_S=$(secs "$t0" "$T_DONE")
log "both caught up (banyan copy + catch-up ${COPY_S}s)"

# ---- 1. catch-up apply rate ------------------------------------------------
q replica "STOP SLAVE"
stop_banyan
wait_quiet
log "backlog: sysbench oltp_write_only --threads=$SB_THREADS --time=$DURATION on the source, both consumers stopped"
n0=$(rows_changed source)
run_fg sysbench oltp_write_only "${SB[@]}" --threads="$SB_THREADS" --time="$DURATION" --report-interval=0 run \
	>"$OUT/sysbench.run.txt" 2>&1 || die "sysbench run failed; see $OUT/sysbench.run.txt"
n1=$(rows_changed source)
N=$((n1 - n0))
FINAL=$(src_gtid)
SB_TX=$(awk '/transactions:/ {print $2}' "$OUT/sysbench.run.txt")
SB_TPS=$(sed -n 's/.*transactions:.*(\([0-9.]*\) per sec.*/\1/p' "$OUT/sysbench.run.txt")
BINLOG_MB=$(q source "SHOW BINARY LOGS" | awk '{s += $2} END {printf "%.0f", s / 1048576}')
log "backlog: $N row changes (sysbench: $SB_TX transactions, $SB_TPS tx/s); source at $FINAL"

# catch_up NAME START-CMD GETTER: time NAME from start to FINAL; sets
# SECS, OTHER and CPU (seconds of CPU per process) for it.
declare -A CU_S CU_OTHER CU_CPU
catch_up() {
	local name=$1 start=$2 get=$3 t0 k0 p pids c1 line=""
	wait_quiet
	declare -A c0m
	pids="source:${SRVPID[source]}"
	if [[ $name == replica ]]; then
		pids+=" replica:${SRVPID[replica]}"
	else
		pids+=" target:${SRVPID[target]}"
	fi
	for p in $pids; do c0m[$p]=$(cpu_ticks "${p#*:}"); done
	k0=$(ticks)
	t0=$(now)
	$start
	if [[ $name == banyan ]]; then # a new process: all its CPU counts
		pids+=" banyan:$BANYAN_PID"
		c0m[banyan:$BANYAN_PID]=0
	fi
	wait_for "$name" "$get" "$FINAL"
	for p in $pids; do
		c1=$(cpu_ticks "${p#*:}")
		line+="${p%%:*} $(awk -v a="${c0m[$p]}" -v b="$c1" -v hz="$HZ" 'BEGIN {printf "%.1f", (b - a) / hz}') s, "
	done
	CU_OTHER[$name]=$(other_pct "$k0" "$(ticks)")
	CU_S[$name]=$(secs "$t0" "$T_DONE")
	CU_CPU[$name]=${line%, }
}
start_replica() { q replica "START SLAVE"; }
start_banyan_timed() {
	B0=$(banyan_applied)
	TC0=$(status_var target COM_COMMIT)
	TI0=$(status_var target COM_INSERT)
	TD0=$(status_var target COM_DELETE)
	if [[ $PROFILE == 1 ]]; then start_banyan profile; else start_banyan; fi
}

log "replica: START SLAVE, timing until gtid_slave_pos = $FINAL"
catch_up replica start_replica replica_gtid
q replica "STOP SLAVE"
log "replica: ${CU_S[replica]}s ($(awk -v n="$N" -v s="${CU_S[replica]}" 'BEGIN {printf "%.0f", n / s}') rows/s; CPU ${CU_CPU[replica]})"

log "banyan: cdc run, timing until its checkpoint = $FINAL"
catch_up banyan start_banyan_timed banyan_gtid
NB=$(($(banyan_applied) - B0))
COMMITS=$(($(status_var target COM_COMMIT) - TC0))
INSERTS=$(($(status_var target COM_INSERT) - TI0))
DELETES=$(($(status_var target COM_DELETE) - TD0))
banyan_caught_up || die "banyan cdc status does not say caught_up; see $OUT/banyan.status.json"
log "banyan: ${CU_S[banyan]}s ($(awk -v n="$N" -v s="${CU_S[banyan]}" 'BEGIN {printf "%.0f", n / s}') rows/s; CPU ${CU_CPU[banyan]}; $NB rows applied in $COMMITS target transactions)"
if [[ $PROFILE == 1 ]]; then
	stop_banyan # writes the profile
	cp "$TMP/cdcprof" "$OUT/cdcprof.bin"
	log "banyan: CPU profile in $OUT/banyan.cpu.pprof (go tool pprof -top $OUT/cdcprof.bin $OUT/banyan.cpu.pprof)"
	start_banyan
fi

# ---- 2. lag at a fixed rate -------------------------------------------------
LOAD=("$TMP/cdcload" -source "$(dsn source '')" -rate "$RATE" -duration "${DURATION}s" -tables "$TABLES" -table-size "$TABLE_SIZE")
declare -A LAG_LINE LAG_OTHER
lag_run() { # NAME DB-SERVER
	local k0
	wait_quiet
	k0=$(ticks)
	run_fg "${LOAD[@]}" -target "$1=$(dsn "$2" '')" >"$OUT/cdcload.$1.txt" 2>&1 || die "cdcload failed; see $OUT/cdcload.$1.txt"
	LAG_OTHER[$1]=$(other_pct "$k0" "$(ticks)")
	LAG_LINE[$1]=$(grep "^target=" "$OUT/cdcload.$1.txt")
	LOAD_LINE[$1]=$(grep "^load " "$OUT/cdcload.$1.txt")
	log "$1: ${LOAD_LINE[$1]}"
	log "$1: ${LAG_LINE[$1]}"
}
declare -A LOAD_LINE
log "lag: banyan streaming, replica stopped; cdcload -rate $RATE rows/s for ${DURATION}s"
lag_run banyan target
stop_banyan
log "lag: replica streaming, banyan stopped"
q replica "START SLAVE"
wait_for replica replica_gtid "$(src_gtid)"
lag_run replica replica

# ---- 3. all three equal -----------------------------------------------------
log "check: banyan catches up again; CHECKSUM TABLE on all three servers"
start_banyan
wait_for replica replica_gtid "$(src_gtid)"
wait_for banyan banyan_gtid "$(src_gtid)"
TBL_LIST=$(for i in $(seq 1 "$TABLES"); do printf 'sbtest.sbtest%d, ' "$i"; done)bench.beat
for s in source target replica; do
	q "$s" "CHECKSUM TABLE $TBL_LIST" >"$OUT/checksum.$s.txt"
done
if cmp -s "$OUT/checksum.source.txt" "$OUT/checksum.target.txt" && cmp -s "$OUT/checksum.source.txt" "$OUT/checksum.replica.txt"; then
	EQUAL="yes: CHECKSUM TABLE equal on source, banyan's target and the replica"
else
	EQUAL="NO: checksums differ (see $OUT/checksum.*.txt)"
fi
stop_banyan

# ---- report ---------------------------------------------------------------
kv() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p"; }
rate_of() { awk -v n="$N" -v s="$1" 'BEGIN {printf "%.0f", n / s}'; }
if [[ -n ${REV:-} ]]; then
	rev=$(git -C "$ROOT" rev-parse --short "$REV")
else
	rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no commit")
	dirty=$(git -C "$ROOT" status --porcelain -- cdc cmd routes internal go.mod go.sum 2>/dev/null | awk '{print $2}' | paste -sd' ' -)
	[[ -z $dirty ]] || rev+=" + uncommitted changes to $dirty"
fi
RB=$(rate_of "${CU_S[banyan]}")
RR=$(rate_of "${CU_S[replica]}")
echo
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); nproc: $(nproc); $(go version | cut -d' ' -f3-); $(machine); banyan: $rev"
echo "MariaDB $("$MARIADBD" --no-defaults --version | sed -n 's/.*Ver \([^ ]*\).*/\1/p'); $(sysbench --version); all three servers: $DURABILITY_TEXT, ${SIZING[*]}"
echo "replica: slave_parallel_threads=$REPLICA_THREADS, log_slave_updates=ON; banyan: batch_rows=${BATCH_ROWS:-1000 (default)}$([[ $PROFILE == 1 ]] && echo ", catch-up under bench/cdcprof (CPU profile)")"
echo "backlog: sysbench oltp_write_only, $TABLES x $TABLE_SIZE rows, --threads=$SB_THREADS --time=$DURATION: $SB_TX transactions ($SB_TPS tx/s), N = $N row changes (source Handler_write+Handler_update+Handler_delete), ${BINLOG_MB} MB of binlog in all"
echo "initial copy + catch-up of banyan at the start: ${COPY_S}s; end check: $EQUAL"
echo
echo "| catch-up of N = $N row changes | seconds | rows/s | CPU during it | other |"
echo "|---|---:|---:|---|---:|"
echo "| native replica (START SLAVE) | ${CU_S[replica]} | $RR | ${CU_CPU[replica]} | ${CU_OTHER[replica]}% |"
echo "| banyan (\`cdc run\`) | ${CU_S[banyan]} | $RB | ${CU_CPU[banyan]} | ${CU_OTHER[banyan]}% |"
echo
echo "banyan / replica apply rate: $(awk -v a="$RB" -v b="$RR" 'BEGIN {printf "%.2f", a / b}')x; banyan applied $NB row changes in $COMMITS target transactions ($(awk -v n="$NB" -v c="$COMMITS" 'BEGIN {printf "%.0f", c ? n / c : 0}') rows each), $INSERTS upsert and $DELETES delete statements ($(awk -v n="$NB" -v c="$((INSERTS + DELETES))" 'BEGIN {printf "%.1f", c ? n / c : 0}') rows each)"
echo
echo "| lag at $RATE rows/s for ${DURATION}s (ms) | p50 | p90 | p99 | max | drain | samples | load: rows | source commit p99 | other |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for t in banyan replica; do
	echo "| $t | $(kv p50 "${LAG_LINE[$t]}") | $(kv p90 "${LAG_LINE[$t]}") | $(kv p99 "${LAG_LINE[$t]}") | $(kv max "${LAG_LINE[$t]}") | $(kv drain "${LAG_LINE[$t]}") | $(kv samples "${LAG_LINE[$t]}") | $(kv rows "${LOAD_LINE[$t]}") | $(kv commit_p99 "${LOAD_LINE[$t]}") | ${LAG_OTHER[$t]}% |"
done
echo
echo "(lag = sample time - scheduled send time of the newest heartbeat on the target, sampled every 100 ms; drain = last scheduled send -> last heartbeat on the target;"
echo " other = share of the machine used by processes outside this run and by hypervisor steal during the measurement)"
