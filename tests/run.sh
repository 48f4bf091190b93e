#!/bin/sh
#   make run: start a keyclone server and a local agent on an embedded default
#   configuration under ./var, in the foreground.
set -eu
bin=${KC_BUILD:-build}/bin
if [ ! -x "$bin/keyclone-server" ] || [ ! -x "$bin/keyclone-agent" ]; then
    echo "make run: server not built yet: keyclone-server and keyclone-agent do not exist"
    echo "in this version. What works today: keyclone init, keygen, sign, cosign, verify"
    echo "(see README.md)."
    exit 1
fi
