#!/usr/bin/env bash
# Install what nestls needs to build and test, on Debian 12, with apt-get.
#
# Usage: bash tests/helpers/install-deps.sh [--if-missing]   (make deps / make check-deps)
#
# Only packages that are not installed yet are asked for, and the package
# lists are refreshed (apt-get update) once, and only when something is
# missing. --if-missing is the quiet form used before every `make test`:
# it prints nothing when everything is already there.
#
# Services: while installing, a temporary policy-rc.d stops postinst scripts
# from starting daemons (redis-server would otherwise start one on port
# 6379). The tests never use such a daemon; each starts its own server on an
# ephemeral port.
set -euo pipefail

PACKAGES=(gcc make pkg-config libssl-dev libyaml-dev openssl
          bats bats-support bats-assert
          stunnel4 socat curl python3 redis-server redis-tools tcpdump
          procps iproute2 testssl.sh sslscan
          clang libclang-rt-14-dev valgrind
          postgresql postgresql-client openssh-server openssh-client util-linux
          liburing2 libcap2-bin
          libpython3.11-testsuite)
# What the README quick start and the example policies use (nc), and what
# make install / make deb and their tests need (man -l, dpkg-buildflags,
# objdump, readelf, strip).
PACKAGES+=(netcat-openbsd man-db dpkg-dev binutils)
# A prefork server run as Debian runs it (tests/programs_nginx.bats).
PACKAGES+=(nginx)
# The benchmark's peers (tests/bench: nginx N, haproxy N): nginx's stream
# module and HAProxy, each run from a private configuration, never as the
# system service.
PACKAGES+=(libnginx-mod-stream haproxy)

quiet=0
case ${1:-} in
    --if-missing) quiet=1 ;;
    "") ;;
    *) echo "usage: $0 [--if-missing]" >&2; exit 2 ;;
esac

installed() { # PACKAGE
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q ' installed$'
}

missing=()
for pkg in "${PACKAGES[@]}"; do
    installed "$pkg" || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
    ((quiet)) || echo "deps: all ${#PACKAGES[@]} packages are installed"
    exit 0
fi

echo "deps: installing ${missing[*]}"
if ((EUID != 0)); then
    if command -v sudo >/dev/null; then
        SUDO=(sudo)
    else
        echo "deps: not root and no sudo; as root run: apt-get install ${missing[*]}" >&2
        exit 1
    fi
else
    SUDO=()
fi

# Keep daemons from starting during the install (exit 101 = "action forbidden",
# see /usr/share/doc/init-system-helpers/README.policy-rc.d). Only a file we
# created ourselves is removed again.
POLICY_RC=/usr/sbin/policy-rc.d
made_policy_rc=0
cleanup() {
    if ((made_policy_rc)); then "${SUDO[@]}" rm -f "$POLICY_RC"; fi
}
trap cleanup EXIT
if [[ ! -e $POLICY_RC ]]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY_RC" >/dev/null
    "${SUDO[@]}" chmod 755 "$POLICY_RC"
    made_policy_rc=1
fi

"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}"

still=()
for pkg in "${missing[@]}"; do
    installed "$pkg" || still+=("$pkg")
done
if ((${#still[@]})); then
    echo "deps: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "deps: installed ${missing[*]}"
