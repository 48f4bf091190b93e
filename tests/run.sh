#!/bin/sh
#   make run: a keyclone server and a local agent on the default
#   configuration, under ./var (created on first run), in the foreground.
#   Ctrl-C stops both. The layout matches the CLI's defaults with
#   KEYCLONE_DIR=var: the directory in var/, the agent in var/agent/.
set -eu
bin=$(cd "${KC_BUILD:-build}/bin" && pwd)
var=$(pwd)/var
endpoint=${KEYCLONE_ENDPOINT:-tcp://127.0.0.1:5550}
export KEYCLONE_DIR="$var"
kc () { "$bin/keyclone" "$@"; }

if [ ! -f "$var/root" ]; then
    echo "make run: first run: creating a keyclone directory in $var"
    kc init --dir "$var" --endpoint "$endpoint" | sed 's/^/    /'
fi
mkdir -p "$var/agent" "$var/keys"
if [ ! -f "$var/agent/node_secret" ]; then
    kc keygen node --dir "$var/agent" >/dev/null 2>&1
fi

# One instance per directory: the daemons refuse a second one; say it here
if [ -f "$var/server.lock" ] && ! flock -n "$var/server.lock" true 2>/dev/null; then
    pid=$(cat "$var/server.lock" 2>/dev/null)
    echo "make run: keyclone is already running on $var (server pid ${pid:-?})."
    echo "  Use it from another terminal (export KEYCLONE_DIR=$var), or stop it first"
    echo "  (Ctrl-C where it runs, or: kill ${pid:-PID})."
    exit 1
fi

server_pid=""
agent_pid=""
stop () {
    trap - INT TERM EXIT
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null || true
    echo "make run: stopped (state kept in $var)"
}
trap stop INT TERM EXIT

"$bin/keyclone-server" --dir "$var" >>"$var/server.log" 2>&1 &
server_pid=$!
tries=0
until kc status --server --timeout 300 >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 20 ] || ! kill -0 "$server_pid" 2>/dev/null; then
        echo "make run: the server did not start; its log ($var/server.log) ends with:"
        tail -5 "$var/server.log"
        exit 1
    fi
done

# The agent's own key must be registered to read the directory (read = members)
node_key=$(sed -n 's/.*public-key = "\(.*\)"/\1/p' "$var/agent/node")
if ! kc show "$node_key" >/dev/null 2>&1; then
    kc register local-agent --key "$node_key" --tag role=agent >/dev/null
fi
"$bin/keyclone-agent" --dir "$var/agent" --root "$var/root" >>"$var/agent.log" 2>&1 &
agent_pid=$!
sleep 0.5

cat <<EOF
keyclone is running; Ctrl-C stops it.
  server  $endpoint (and the next two ports)   log: var/server.log
  agent   var/agent                               log: var/agent.log

In another terminal, from $(pwd):
  export PATH=\$PWD/build/bin:\$PATH KEYCLONE_DIR=\$PWD/var
  KEY=\$(keyclone keygen web-1 --dir var/keys --force)   # a (new) node key pair
  keyclone register web-1 --key "\$KEY" --tag role=web
  keyclone lookup web-1                            # the local agent's answer
  keyclone revoke web-1 --reason "testing"
  keyclone lookup web-1
  keyclone status                                  # the agent
  keyclone status --server                         # the server and its agents
EOF
wait "$agent_pid" "$server_pid"
