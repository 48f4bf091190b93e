#!/bin/sh
#   make run-cluster: a keyclone server cluster on one machine (docs/cluster.md):
#   three members (a, b, c) and two agents, under ./var-cluster (created on
#   first run), in the foreground. Ctrl-C stops them all. With
#   KEYCLONE_DIR=var-cluster the CLI talks to the cluster (any member).
set -eu
bin=$(cd "${KC_BUILD:-build}/bin" && pwd)
var=$(pwd)/var-cluster
export KEYCLONE_DIR="$var"
kc () { "$bin/keyclone" "$@"; }
members="a=tcp://127.0.0.1:5650,b=tcp://127.0.0.1:5660,c=tcp://127.0.0.1:5670"

if [ ! -f "$var/root" ]; then
    echo "make run-cluster: first run: creating a keyclone directory with three members in $var"
    kc init --dir "$var" --members "$members" | sed 's/^/    /'
fi
for n in 1 2; do
    mkdir -p "$var/agent$n"
    [ -f "$var/agent$n/node_secret" ] || kc keygen node --dir "$var/agent$n" >/dev/null 2>&1
done
mkdir -p "$var/keys"
for m in a b c; do
    if [ -f "$var/servers/$m/server.lock" ] && ! flock -n "$var/servers/$m/server.lock" true 2>/dev/null; then
        echo "make run-cluster: member $m already runs (pid $(cat "$var/servers/$m/server.lock")); stop it first"
        exit 1
    fi
done

pids=""
stop () {
    trap - INT TERM EXIT
    for pid in $pids; do kill "$pid" 2>/dev/null || true; done
    for pid in $pids; do wait "$pid" 2>/dev/null || true; done
    echo "make run-cluster: stopped (state kept in $var)"
}
trap stop INT TERM EXIT

for m in a b c; do
    "$bin/keyclone-server" --dir "$var/servers/$m" >>"$var/server-$m.log" 2>&1 &
    pids="$pids $!"
done
tries=0
until kc cluster status --timeout 300 >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 50 ]; then
        echo "make run-cluster: no leader was elected; the members' logs end with:"
        tail -3 "$var"/server-*.log
        exit 1
    fi
    sleep 0.2
done

# The agents' keys must be registered to read the directory (read = members)
for n in 1 2; do
    key=$(sed -n 's/.*public-key = "\(.*\)"/\1/p' "$var/agent$n/node")
    if ! kc show "$key" >/dev/null 2>&1; then
        kc register "local-agent-$n" --key "$key" --tag role=agent >/dev/null
    fi
    "$bin/keyclone-agent" --dir "$var/agent$n" --root "$var/root" >>"$var/agent$n.log" 2>&1 &
    pids="$pids $!"
done
sleep 0.5

cat <<EOF
keyclone cluster is running; Ctrl-C stops it.
  members a, b, c   tcp://127.0.0.1:5650, 5660, 5670 (and the next three ports each)
                    logs: var-cluster/server-a.log ...; Raft logs in var-cluster/servers/*/server/raft
  agents            var-cluster/agent1, var-cluster/agent2   logs: var-cluster/agent1.log ...

In another terminal, from $(pwd):
  export PATH=\$PWD/build/bin:\$PATH KEYCLONE_DIR=\$PWD/var-cluster
  keyclone cluster status                      # the leader, and each member's seq and lag
  keyclone register db-1 --key "\$(keyclone keygen db-1 --dir var-cluster/keys --force)"
  keyclone lookup db-1 --agent ipc://\$PWD/var-cluster/agent2/agent.ipc
EOF
wait
