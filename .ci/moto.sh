#!/usr/bin/env bash
# Starts (idempotently) moto's AWS API emulator in server mode on 127.0.0.1 for the watchbell-aws
# tests and prints exactly one line on stdout: its URL. Everything else goes to stderr.
#
#   export WATCHBELL_TEST_MOTO_URL="$(bash .ci/moto.sh)"
#
# moto (PyPI `moto[server]`, pinned below) is installed in a virtualenv under
# $WATCHBELL_MOTO_VENV (default: $HOME/.cache/watchbell/venv-moto). The server verifies every
# request's SigV4 signature and IAM permission (moto's INITIAL_NO_AUTH_ACTION_COUNT): the first
# three requests, made by this script right after the start, create the IAM user `watchbell-test`
# with an allow-all policy and an access key; every later request must be signed with that key.
# The tests read the key back from moto's model API (`GET /moto-api/data.json`, iam AccessKey).
#
#   bash .ci/moto.sh stop    # stops that server again (`.ci/run` does this when it ends)
set -euo pipefail
exec 3>&1 1>&2

MOTO_VERSION="${WATCHBELL_MOTO_VERSION:-5.1.22}"
PORT="${WATCHBELL_MOTO_PORT:-54350}"
VENV="${WATCHBELL_MOTO_VENV:-$HOME/.cache/watchbell/venv-moto}"
STATE="${WATCHBELL_MOTO_STATE:-$HOME/.cache/watchbell/moto-$PORT}"
URL="http://127.0.0.1:$PORT"
mkdir -p "$STATE"

up() { curl -fsS -o /dev/null --max-time 2 "$URL/moto-api/" 2>/dev/null; }

if [ "${1:-}" = stop ]; then
    if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
        echo "moto.sh: stopping moto_server (pid $(cat "$STATE/pid"))"
        kill "$(cat "$STATE/pid")" || true
    fi
    rm -f "$STATE/pid"
    exit 0
fi

if up; then
    echo "$URL" >&3
    exit 0
fi

# One installer at a time (tests started in parallel may all call this script).
exec 9>"$STATE/lock"
flock 9
if up; then
    echo "$URL" >&3
    exit 0
fi

PY="${PYTHON:-python3}"
if ! "$VENV/bin/python" -c "import moto, sys; sys.exit(0 if moto.__version__ == '$MOTO_VERSION' else 1)" 2>/dev/null; then
    echo "moto.sh: installing moto[server]==$MOTO_VERSION into $VENV"
    if ! "$PY" -m venv "$VENV" 2>/dev/null; then
        # Debian's python3 lacks ensurepip until python3-venv is installed.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv </dev/null
        fi
        rm -rf "$VENV"
        "$PY" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" </dev/null
fi

echo "moto.sh: starting moto_server on $URL"
(
    for fd in /proc/$BASHPID/fd/*; do
        fd="${fd##*/}"
        if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-"; fi
    done
    export INITIAL_NO_AUTH_ACTION_COUNT=3
    export AWS_DEFAULT_REGION=us-east-1
    exec setsid "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" </dev/null >>"$STATE/server.log" 2>&1
) &
echo $! >"$STATE/pid"

for _ in $(seq 1 120); do
    if up; then
        # The three unauthenticated requests: the test user, its policy, its key.
        "$VENV/bin/python" - "$URL" <<'PY'
import json, sys
import boto3
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="AKIAWATCHBELLSETUP00", aws_secret_access_key="setup")
iam.create_user(UserName="watchbell-test")
iam.put_user_policy(UserName="watchbell-test", PolicyName="allow-all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
iam.create_access_key(UserName="watchbell-test")
PY
        echo "$URL" >&3
        exit 0
    fi
    sleep 0.5
done
echo "moto.sh: moto_server did not answer on $URL; its log:"
tail -n 40 "$STATE/server.log" || true
exit 1
