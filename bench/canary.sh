#!/usr/bin/env bash
# bench/canary.sh — the same slow query log through `banyan canary sql`
# (mode 2) and pt-upgrade (Debian's percona-toolkit), against the same two
# throwaway MariaDB servers on 127.0.0.1:
#   source  shop.customers (2,000) + shop.orders (200,000), KEY(customer_id), KEY(created)
#   target  the same data, except: KEY(customer_id) is KEY(customer_id, amount)
#           (same rows, other order for queries without ORDER BY); no
#           KEY(created) (a range count becomes a full scan); customer 42
#           renamed (one query differs in result for one literal)
# The workload runs on the source with the slow log at long_query_time=0;
# that log is the input of both tools. Each tool's findings and wall time are
# printed as a table for bench/README.md.
#
# Needs: go, mariadbd, mariadb-install-db, mariadb (Debian mariadb-server),
#        pt-upgrade (apt-get install -y percona-toolkit)
# Env:   OUT (keep logs and reports here; default: a temp dir removed on exit)
#        RUNS (banyan --runs, default 30), QUIET_WAIT (s to wait for other
#        bench/*.sh to finish before measuring, default 1800)
set -Eeuo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-30}
QUIET_WAIT=${QUIET_WAIT:-1800}
TMP=$(mktemp -d /tmp/banyan-canary-bench.XXXXXX)
OUT=${OUT:-$TMP/out}
mkdir -p "$OUT"
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	[[ $OUT == "$TMP/out" ]] && rm -rf "$TMP" || rm -rf "$TMP/source" "$TMP/target"
}
trap cleanup EXIT
log() { printf '== %s\n' "$*" >&2; }
die() { printf 'canary.sh: %s\n' "$*" >&2; exit 1; }
for tool in go mariadbd mariadb-install-db mariadb pt-upgrade; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
USER_ARGS=()
[[ $(id -u) == 0 ]] && USER_ARGS=(--user=root)

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
declare -A PORT
q() { mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"${PORT[$1]}" -uroot -N -B "${@:2}"; }
start_db() { # NAME [EXTRA ARGS]
	local name=$1 dir=$TMP/$1
	shift
	mkdir -p "$dir"
	mariadb-install-db --no-defaults --datadir="$dir/data" --auth-root-authentication-method=normal \
		--skip-test-db "${USER_ARGS[@]}" >"$OUT/$name.install.log" 2>&1 || die "install $name failed; see $OUT/$name.install.log"
	PORT[$name]=$(free_port)
	mariadbd --no-defaults --datadir="$dir/data" --socket="$dir/s.sock" --pid-file="$dir/pid" \
		--port="${PORT[$name]}" --bind-address=127.0.0.1 --skip-name-resolve \
		--innodb-buffer-pool-size=512M --character-set-server=utf8mb4 "${USER_ARGS[@]}" "$@" >"$OUT/$name.err.log" 2>&1 &
	PIDS+=("$!")
	for _ in $(seq 1 300); do q "$name" -e "SELECT 1" >/dev/null 2>&1 && return 0; sleep 0.1; done
	die "$name did not start; see $OUT/$name.err.log"
}

log "building banyan"
go build -o "$TMP/banyan" ./cmd/banyan
start_db source --slow-query-log=0 --slow-query-log-file="$OUT/slow.log" --long-query-time=0
start_db target

SCHEMA="CREATE DATABASE shop; USE shop;
CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, email VARCHAR(80) NOT NULL);
CREATE TABLE orders (id INT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(10,2) NOT NULL, created DATETIME NOT NULL, pad CHAR(100) NOT NULL);
SET SESSION max_recursive_iterations = 1000000;
INSERT INTO customers WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2000)
  SELECT n, CONCAT('customer-', n), CONCAT('c', n, '@example.com') FROM s;
INSERT INTO orders WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 200000)
  SELECT n, 1 + (n * 7919) % 2000, ((n * 104729) % 100000) / 100, '2025-01-01' + INTERVAL (n * 37) % 525600 MINUTE, REPEAT('x', 100) FROM s;"
log "loading 200,000 orders on both servers"
q source -e "$SCHEMA ALTER TABLE orders ADD KEY customer_id (customer_id), ADD KEY created (created); ANALYZE TABLE customers, orders;" >/dev/null &
LOAD=$!
q target -e "$SCHEMA ALTER TABLE orders ADD KEY customer_id (customer_id, amount); UPDATE customers SET name = 'customer-42 (renamed)' WHERE id = 42; ANALYZE TABLE customers, orders;" >/dev/null
wait "$LOAD"

log "recording the workload's slow log on the source"
{
	for i in $(seq 1 60); do
		c=$((i * 31 % 2000 + 1)); ((i == 20)) && c=42
		echo "SELECT id, name, email FROM customers WHERE id = $c;"
		echo "SELECT id, amount FROM orders WHERE customer_id = $c;"
		echo "SELECT COUNT(*), SUM(amount) FROM orders WHERE created >= '2025-03-0$((i % 9 + 1)) 00:00:00' AND created < '2025-03-0$((i % 9 + 1)) 06:00:00';"
		echo "SELECT c.name, COUNT(*) AS n FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.customer_id IN ($c, $((c % 2000 + 1))) GROUP BY c.name ORDER BY c.name;"
	done
} >"$TMP/workload.sql"
q source -e "SET GLOBAL slow_query_log = 1"
q source shop <"$TMP/workload.sql" >/dev/null
q source -e "SET GLOBAL slow_query_log = 0"
grep -c '^# Query_time' "$OUT/slow.log" | xargs printf '== slow log: %s entries\n' >&2

log "waiting (up to ${QUIET_WAIT}s) for other bench scripts to finish"
for _ in $(seq 1 "$QUIET_WAIT"); do pgrep -f 'bench/(proxy|cdc).sh' >/dev/null || break; sleep 1; done
pgrep -f 'bench/(proxy|cdc).sh' >/dev/null && log "warning: another bench script still runs; times are noisy"

DSN1="root@tcp(127.0.0.1:${PORT[source]})/shop"
DSN2="root@tcp(127.0.0.1:${PORT[target]})/shop"
log "banyan canary sql (--runs $RUNS)"
t0=$(date +%s.%N)
rc=0
"$TMP/banyan" canary sql --dsn "$DSN1" --target-dsn "$DSN2" --queries "$OUT/slow.log" --runs "$RUNS" --format json >"$OUT/banyan.json" 2>"$OUT/banyan.err" || rc=$?
t1=$(date +%s.%N)
"$TMP/banyan" canary sql --dsn "$DSN1" --target-dsn "$DSN2" --queries "$OUT/slow.log" --runs "$RUNS" >"$OUT/banyan.txt" 2>/dev/null || true
log "pt-upgrade"
t2=$(date +%s.%N)
pt-upgrade "h=127.0.0.1,P=${PORT[source]},u=root,D=shop" "h=127.0.0.1,P=${PORT[target]},u=root,D=shop" "$OUT/slow.log" >"$OUT/pt-upgrade.txt" 2>&1 || true
t3=$(date +%s.%N)

echo
echo "banyan canary sql: exit $rc, $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
python3 - "$OUT/banyan.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for c in r["checks"]:
    lat = c.get("latency") or {}
    print(f'  {"PASS" if c["pass"] else "FAIL"}  {c["fingerprint"][:90]}')
    print(f'        compared {c["executions"]}, result diffs {c["result_diffs"]}, p50 ratio {lat.get("ratio", 0):.2f}, p={lat.get("p_value", 1):.2g}')
    for reason in c.get("reasons") or []:
        print(f'        - {reason}')
PY
echo
echo "pt-upgrade: $(awk -v a="$t2" -v b="$t3" 'BEGIN{printf "%.1f", b-a}') s"
grep -E '^# (Query class|Reporting class|Samples|Row count|Row data|Query time|Errors|Warnings|Checksum|Column|Total)|^(# )?[0-9]+ +(queries|classes)|differences' "$OUT/pt-upgrade.txt" | head -60 || true
echo "(full outputs in $OUT)"
