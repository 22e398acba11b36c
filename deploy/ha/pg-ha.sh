#!/bin/sh
# PostgreSQL with automatic failover (pg_auto_failover): one monitor, a primary and two standbys, one of
# which must have flushed every commit (number_sync_standbys = 1).
# Run as the postgres user on each server; docs/runbook.md ("High availability") says when to run what.
# The test suite and `vpp bench ha` run exactly this file (bench/ha_formation.py), on 127.0.0.1.
#
#   PGDATA=… PGPORT=… pg-ha.sh monitor        create and run the monitor (stays in the foreground)
#   PGDATA=… PGPORT=… pg-ha.sh tune-monitor   failure detection in seconds instead of the 20–30 s defaults
#   PGDATA=… PGPORT=… PG_HA_MONITOR=… PG_HA_NAME=… pg-ha.sh node
#                                              create a data node and run it: the first becomes the primary,
#                                              the next ones clone it and follow as synchronous standbys
#   PGDATA=… PGPORT=… pg-ha.sh app-role        on the primary: the vpp role owning the vpp database
#                                               (and reading pg_stat_replication: ingest's HA confirmation)
#   PGDATA=… PGPORT=… pg-ha.sh sync-standbys   on the monitor's server, once both standbys are `secondary`:
#                                              a commit waits for one of them (PG_HA_SYNC_STANDBYS, default 1)
#                                              even after a failover has left only one
#   PGDATA=… PGPORT=… pg-ha.sh checkpoint      on the primary, while a new standby clones it: its base
#                                              backup waits for a checkpoint, spread over minutes otherwise
#   PGDATA=… pg-ha.sh run                      run a node again after a crash or reboot: a former primary
#                                              rejoins as a standby (pg_rewind), nothing else to do
#   PGDATA=… pg-ha.sh state                    the formation as JSON (run on the monitor's server)
#   PGDATA=… pg-ha.sh switchover               planned: the standby becomes primary (fail back, maintenance)
#   PGDATA=… PG_HA_MONITOR=… PG_HA_NAME=… pg-ha.sh drop
#                                              forget a dead server (replace it: drop, then `node` on the new one)
#
# PG_HA_HOST is the address the other servers reach this one at (and the one it listens on);
# PG_HA_AUTH is how the nodes authenticate each other: scram-sha-256 in production (then put the
# autoctl_node and pgautofailover_replicator passwords in ~postgres/.pgpass), trust only in tests.
set -eu
: "${PG_BINDIR:=/usr/lib/postgresql/15/bin}"
export PATH="$PG_BINDIR:$PATH"
HOST="${PG_HA_HOST:-127.0.0.1}"
AUTH="${PG_HA_AUTH:-scram-sha-256}"
SSL="${PG_HA_SSL:---ssl-self-signed}"
case "${1:-}" in
monitor)
    exec pg_autoctl create monitor --pgdata "$PGDATA" --pgport "$PGPORT" --hostname "$HOST" --listen "$HOST" \
        --auth "$AUTH" $SSL --run ;;
tune-monitor)
    # Health checks every second; a primary unreachable for 3 s is failed over, one that lost the
    # monitor for 3 s demotes itself. Defaults: 5 s checks, 20 s unhealthy, 30 s demote.
    exec psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d pg_auto_failover \
        -c "ALTER SYSTEM SET pgautofailover.health_check_period = ${PG_HA_CHECK_MS:-1000}" \
        -c "ALTER SYSTEM SET pgautofailover.health_check_timeout = ${PG_HA_CHECK_MS:-1000}" \
        -c "ALTER SYSTEM SET pgautofailover.health_check_max_retries = 1" \
        -c "ALTER SYSTEM SET pgautofailover.health_check_retry_delay = 500" \
        -c "ALTER SYSTEM SET pgautofailover.node_considered_unhealthy_timeout = ${PG_HA_UNHEALTHY_MS:-3000}" \
        -c "ALTER SYSTEM SET pgautofailover.primary_demote_timeout = ${PG_HA_UNHEALTHY_MS:-3000}" \
        -c "SELECT pg_reload_conf()" ;;
node)
    exec pg_autoctl create postgres --pgdata "$PGDATA" --pgport "$PGPORT" --hostname "$HOST" --listen "$HOST" \
        --name "$PG_HA_NAME" --dbname vpp --monitor "$PG_HA_MONITOR" --auth "$AUTH" $SSL --run ;;
app-role)
    exec psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d vpp \
        -c "DO \$\$ BEGIN CREATE ROLE vpp LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" \
        -c "ALTER DATABASE vpp OWNER TO vpp" -c "ALTER SCHEMA public OWNER TO vpp" \
        -c "GRANT pg_monitor TO vpp" ;;
sync-standbys)
    # The monitor's own function: Debian's pg_autoctl 2.0 rejects any value given to
    # `pg_autoctl set formation number-sync-standbys` ("1 is not valid", pg_auto_failover issue 929).
    exec psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d pg_auto_failover \
        -c "SELECT pgautofailover.set_formation_number_sync_standbys('default', ${PG_HA_SYNC_STANDBYS:-1})" ;;
checkpoint)
    exec psql -X -q -v ON_ERROR_STOP=1 -p "$PGPORT" -d vpp -c "CHECKPOINT" ;;
run)
    exec pg_autoctl run --pgdata "$PGDATA" ;;
state)
    exec pg_autoctl show state --pgdata "$PGDATA" --json ;;
switchover)
    exec pg_autoctl perform switchover --pgdata "$PGDATA" ;;
drop)
    exec pg_autoctl drop node --monitor "$PG_HA_MONITOR" --formation default --name "$PG_HA_NAME" --force ;;
*)
    sed -n '2,27p' "$0" >&2
    exit 2 ;;
esac
