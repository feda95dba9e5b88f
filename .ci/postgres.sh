# shellcheck shell=bash
# Sourced by .ci/run: start a throw-away PostgreSQL cluster on 127.0.0.1 for the multi-worker
# sweep tests and export HWSIM_TEST_POSTGRES_URL. The cluster lives in a temporary folder owned
# by the `postgres` user (initdb refuses to run as root), listens on a free port with trust
# authentication on loopback only, and is stopped and removed when the sourcing shell exits.
# When start-up fails, the function prints the log that was written (or says none was), stops
# whatever it started, removes the folder and returns 1. HWSIM_PG_BINDIR picks the server
# binaries (default: the newest /usr/lib/postgresql/*/bin); tests/test_ci_scripts.py uses it.

_hwsim_pg_fail() {  # what failed, the data folder, the binaries, the runas command...
    local what=$1 pgdata=$2 bindir=$3 log
    shift 3
    echo "postgres.sh: $what failed" >&2
    for log in "$pgdata/initdb.log" "$pgdata/server.log"; do
        if [ -s "$log" ]; then
            echo "--- $log" >&2
            tail -n 40 "$log" >&2
        fi
    done
    [ -s "$pgdata/initdb.log" ] || [ -s "$pgdata/server.log" ] \
        || echo "postgres.sh: no log was written" >&2
    if [ -d "$pgdata/data" ] && [ -x "$bindir/pg_ctl" ]; then
        "$@" "$bindir/pg_ctl" -D "$pgdata/data" -m immediate stop >/dev/null 2>&1 || true
    fi
    rm -rf "$pgdata"
    return 1
}

_hwsim_pg_start() {
    local bindir pgdata port runas
    bindir=${HWSIM_PG_BINDIR:-$( (ls -d /usr/lib/postgresql/*/bin 2>/dev/null || true) \
        | sort -V | tail -n 1)}
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
        echo "postgres.sh: no PostgreSQL server binaries; the PostgreSQL tests will fail in CI" >&2
        return 0
    fi
    pgdata=$(mktemp -d "${TMPDIR:-/tmp}/hwsim-pg.XXXXXX")
    runas=()
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
        chown postgres "$pgdata"
        runas=(runuser -u postgres --)
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "${runas[@]}" "$bindir/initdb" -D "$pgdata/data" -U postgres --auth=trust -E UTF8 \
        >"$pgdata/initdb.log" 2>&1 \
        || { _hwsim_pg_fail initdb "$pgdata" "$bindir" "${runas[@]}"; return 1; }
    "${runas[@]}" "$bindir/pg_ctl" -D "$pgdata/data" -l "$pgdata/server.log" -w -t 60 \
        -o "-h 127.0.0.1 -p $port -k $pgdata -c max_connections=200 -c fsync=off" start \
        >/dev/null 2>&1 \
        || { _hwsim_pg_fail "pg_ctl start" "$pgdata" "$bindir" "${runas[@]}"; return 1; }
    export HWSIM_TEST_POSTGRES_URL="postgresql+psycopg2://postgres@127.0.0.1:$port/postgres"
    export HWSIM_PG_DATA="$pgdata" HWSIM_PG_BIN="$bindir"
    # shellcheck disable=SC2064
    trap "${runas[*]} '$bindir/pg_ctl' -D '$pgdata/data' -m immediate stop >/dev/null 2>&1; rm -rf '$pgdata'" EXIT
    echo "postgres.sh: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port"
}

_hwsim_pg_start
