#!/bin/sh
# Installs the Debian packages chatd needs to build and test. Idempotent: it only
# calls apt-get when something is missing. Uses sudo when not run as root.
set -eu

PACKAGES="build-essential pkg-config libevent-dev libcurl4-openssl-dev libjansson-dev \
libhttp-parser-dev libcmocka-dev clang clang-format libclang-rt-14-dev ca-certificates curl \
python3 python3-pytest python3-httpx python3-aiohttp python3-pytest-asyncio \
python3-prometheus-client valgrind nginx-light openssl libssl-dev \
chromium chromium-driver python3-selenium nodejs \
libhiredis-dev redis-server prometheus python3-yaml python3-matplotlib"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
# node and npm run the SDK client tests (tests/clients). A node that is already there
# (e.g. a newer one from NodeSource, which brings its own npm) is kept as it is.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    missing="$missing nodejs npm"
fi
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "deps: these packages are missing:$missing. Installing them needs root, and sudo is not available. Run as root: apt-get install -y$missing" >&2
        exit 1
    fi
fi
echo "deps: installing:$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
