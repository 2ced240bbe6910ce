#!/usr/bin/env bash
# Installs what the tests and benchmarks need on a fresh Debian 12 machine (run as root).
# Idempotent and quiet: apt-get and pip only run when something is missing.
set -euo pipefail

# Debian package -> a file it installs that we use.
declare -A wanted=(
    [util-linux]=/usr/bin/ipcs # also ipcmk, lsipc, taskset, unshare, runuser, setpriv
    [strace]=/usr/bin/strace
    [linux-perf]=/usr/bin/perf # ipcshim diff: perf trace when strace changes a program
    [fakeroot]=/usr/bin/fakeroot
    [gcc]=/usr/bin/gcc
    [libc6-dev]=/usr/include/x86_64-linux-gnu/sys/shm.h
    [postgresql]=/usr/lib/postgresql/15/bin/initdb # also pgbench
    [postgresql-client]=/usr/bin/psql
    [make]=/usr/bin/make # tests/tests/pipe_programs.rs: make -j4 and its jobserver pipe
    # tests/tests/socket_programs.rs and bench/run.sh: real programs over AF_UNIX sockets.
    [redis-server]=/usr/bin/redis-server
    [redis-tools]=/usr/bin/redis-benchmark # also redis-cli
    [socat]=/usr/bin/socat
    [memcached]=/usr/bin/memcached # tests/tests/socket_programs.rs: memcached -s SOCK
    # tests/tests/socket_programs.rs: nginx proxying to a unix socket, fetched by curl; Xvfb
    # with x11perf (in x11-apps) as its MIT-SHM client.
    [nginx]=/usr/sbin/nginx
    [curl]=/usr/bin/curl
    [apache2-utils]=/usr/bin/ab # socket_programs.rs and bench/run.sh: ab against nginx over TCP
    [xvfb]=/usr/bin/Xvfb
    [x11-apps]=/usr/bin/x11perf
    # tests/tests/pipe_programs.rs and socket_programs.rs: xargs (exec-status pipes), pv
    # (splice), tmux (a listener past a utempter exec), stress-ng (--sockpair).
    [findutils]=/usr/bin/xargs
    [pv]=/usr/bin/pv # moves its data with splice
    [tmux]=/usr/bin/tmux
    [libutempter0]=/usr/lib/x86_64-linux-gnu/utempter/utempter # tmux's setgid helper
    [stress-ng]=/usr/bin/stress-ng # also bench/run.sh: --sem-sysv and --msg, kernel against the shim
    # tests/tests/socket_programs.rs: CGI scripts that mod_cgid runs as www-data, asked by curl.
    [apache2]=/usr/sbin/apache2
    [rt-tests]=/usr/bin/hackbench # tests/tests/hackbench.rs: threads on 16 KiB stacks; also
                                  # svsematest (pressure.rs: mlockall in a real program)
    [python3]=/usr/bin/python3 # tests/tests/pressure.rs: pipes and sockets on a small tmpfs
    [binutils]=/usr/bin/objdump   # tests/tests/stack_frames.rs reads the shim's frame sizes
    # tests/tests/socket_programs.rs: Node.js (libuv), a D-Bus session bus, gpg and its agent.
    [nodejs]=/usr/bin/node
    [dbus-daemon]=/usr/bin/dbus-daemon
    [dbus-bin]=/usr/bin/dbus-send
    [gpg]=/usr/bin/gpg
    [gpg-agent]=/usr/bin/gpg-agent
    [gpgconf]=/usr/bin/gpgconf
)

missing=()
for pkg in "${!wanted[@]}"; do
    [[ -e ${wanted[$pkg]} ]] || missing+=("$pkg")
done

# tests/tests/sem_programs.rs uses Perl's IPC::Semaphore: in Debian's perl (libperl), not perl-base.
perl -MIPC::Semaphore -e 1 >/dev/null 2>&1 || missing+=(perl)

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

# Timed waits (sysv_ipc.Semaphore.acquire(timeout)) need semtimedop, which sysv_ipc's build probe
# finds only with _GNU_SOURCE defined; PyPI's wheels were built without it, so they wait forever
# instead. tests/tests/sem_programs.rs times out waits: build it from source with the define.
if ! python3 -c 'import sys, sysv_ipc; sys.exit(not sysv_ipc.SEMAPHORE_TIMEOUT_SUPPORTED)' >/dev/null 2>&1; then
    CC="cc -D_GNU_SOURCE" python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
        --no-binary sysv_ipc --force-reinstall --no-deps sysv_ipc >/dev/null
    python3 -c 'import sys, sysv_ipc; sys.exit(not sysv_ipc.SEMAPHORE_TIMEOUT_SUPPORTED)'
fi
