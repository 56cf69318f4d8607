#!/usr/bin/env bash
# Runs the case-store and camera-registry benchmarks (`cargo bench --bench cases
# --bench registry`) with PostgreSQL beside
# SQLite: starts a throwaway PostgreSQL cluster (Debian's server, installed by
# scripts/setup.sh) on a free port of 127.0.0.1, points GRIDWATCH_BENCH_PG_URL at an
# empty database in it, runs the bench, and removes the cluster. As root the server
# runs as the `postgres` user. Settings are the server's defaults (fsync on).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
dir=$(mktemp -d /tmp/gridwatch-bench-pg.XXXXXX)
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
as_pg "$bin/initdb" -D "$dir/data" -U gridwatch --auth=trust -E UTF8 >/dev/null
as_pg "$bin/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1" -l "$dir/log" -w start >/dev/null
trap 'as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null; rm -rf "$dir"' EXIT
as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U gridwatch bench
GRIDWATCH_BENCH_PG_URL="postgres://gridwatch@127.0.0.1:$port/bench" cargo bench --bench cases --bench registry "$@"
