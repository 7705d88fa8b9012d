#!/usr/bin/env bash
# Creates (idempotently) a Python virtualenv with Logbook and pyzmq for watchbell-zmq's interop
# tests and prints exactly one line on stdout: the venv's python. Everything else goes to stderr.
#
#   export WATCHBELL_TEST_PYTHON="$(bash .ci/python.sh)"
#
# The venv lives in $WATCHBELL_PYTHON_VENV (default: <target dir>/venv-logbook, where the target
# dir is $CARGO_TARGET_DIR or ./target of the workspace). Versions are pinned below.
set -euo pipefail
exec 3>&1 1>&2

LOGBOOK_VERSION="${WATCHBELL_LOGBOOK_VERSION:-1.10.1}"
PYZMQ_VERSION="${WATCHBELL_PYZMQ_VERSION:-27.3.0}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
VENV="${WATCHBELL_PYTHON_VENV:-$TARGET/venv-logbook}"
PY="${PYTHON:-python3}"
mkdir -p "$(dirname "$VENV")"

ready() {
    "$VENV/bin/python" - "$LOGBOOK_VERSION" "$PYZMQ_VERSION" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
import logbook, logbook.queues, zmq
sys.exit(0 if (version("Logbook"), zmq.pyzmq_version()) == (sys.argv[1], sys.argv[2]) else 1)
PYEOF
}

if ready; then
    echo "$VENV/bin/python" >&3
    exit 0
fi

# One installer at a time (tests started in parallel may all call this script).
exec 9>"$VENV.lock"
flock 9
if ready; then
    echo "$VENV/bin/python" >&3
    exit 0
fi

if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    echo "python.sh: $PY has no venv/ensurepip; installing python3-venv"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && apt-get install -y -qq python3-venv
    else
        sudo -n apt-get update -qq && sudo -n apt-get install -y -qq python3-venv
    fi
fi
echo "python.sh: creating $VENV (Logbook $LOGBOOK_VERSION, pyzmq $PYZMQ_VERSION)"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    "Logbook==$LOGBOOK_VERSION" "pyzmq==$PYZMQ_VERSION"
ready || { echo "python.sh: the venv at $VENV does not import logbook and zmq"; exit 1; }
echo "$VENV/bin/python" >&3
