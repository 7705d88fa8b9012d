#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed and prints exactly one line on stdout: the
# path of its binary. Everything else goes to stderr.
#
#   WATCHBELL_TEST_CHROMIUM="$(bash .ci/chromium.sh)"
#
# Uses the browser already on PATH (chromium, chromium-browser) when there is one; otherwise
# installs Debian's `chromium` package with apt-get (as root, or through `sudo -n`).
set -euo pipefail
exec 3>&1 1>&2

find_chromium() {
    local c
    for c in chromium chromium-browser; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
    done
    for c in /usr/bin/chromium /usr/lib/chromium/chromium; do
        if [ -x "$c" ]; then
            echo "$c"
            return 0
        fi
    done
    return 1
}
root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n -- "$@"; fi
}

if ! path="$(find_chromium)"; then
    echo "chromium.sh: installing Debian's chromium package"
    root apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive root apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core </dev/null
    path="$(find_chromium)" || { echo "chromium.sh: chromium is still not on PATH after installing it"; exit 1; }
fi
"$path" --version >&2 || true
echo "$path" >&3
