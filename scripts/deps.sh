#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian 12 machine (run as root).
# Idempotent and quiet: apt-get and pip only run when something is missing.
set -euo pipefail

# Debian package -> a file it installs that we use.
declare -A wanted=(
    [util-linux]=/usr/bin/ipcs # also ipcmk, lsipc, taskset, unshare, runuser, setpriv
    [strace]=/usr/bin/strace
    [fakeroot]=/usr/bin/fakeroot
    [gcc]=/usr/bin/gcc
    [libc6-dev]=/usr/include/sys/shm.h
    [postgresql]=/usr/lib/postgresql/15/bin/initdb
    [postgresql-client]=/usr/bin/psql
    [make]=/usr/bin/make # tests/tests/pipe_programs.rs: make -j4 and its jobserver pipe
)

missing=()
for pkg in "${!wanted[@]}"; do
    [[ -e ${wanted[$pkg]} ]] || missing+=("$pkg")
done

if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The tests run the cluster as this user; Debian's postgresql package creates it.
id postgres >/dev/null 2>&1 || {
    echo "deps.sh: user postgres is missing after installing postgresql" >&2
    exit 1
}

# sysv_ipc builds a C extension: it needs gcc (above) and Python's headers (pyenv ships them).
if ! python3 -c 'import sysv_ipc' >/dev/null 2>&1; then
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore sysv_ipc >/dev/null
    python3 -c 'import sysv_ipc'
fi
