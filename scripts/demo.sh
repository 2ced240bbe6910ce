#!/usr/bin/env bash
# `make demo`: unmodified programs share one System V segment through ipcshim, in a fresh
# namespace, while the kernel holds nothing; then a shell pipeline runs over ipcshim's pipes.
set -euo pipefail
cd "$(dirname "$0")/.."
release=${CARGO_TARGET_DIR:-$PWD/target}/release
ipcshim=$release/ipcshim
[[ -x $ipcshim && -f $release/libipcshim.so ]] || {
    echo "demo: $ipcshim or libipcshim.so is missing: run 'make build'" >&2
    exit 1
}

# A private kernel IPC namespace (needs root) makes the kernel's `ipcs -m` start empty.
if [[ -z ${IPCSHIM_DEMO_IN_NS:-} ]] && unshare --ipc true 2>/dev/null; then
    IPCSHIM_DEMO_IN_NS=1 exec unshare --ipc -- bash "$0" "$@"
fi

work=$(mktemp -d -p /dev/shm)
export IPCSHIM_DIR=$work/region IPCSHIM_NS=demo-$$
mkdir "$IPCSHIM_DIR"
unset IPCSHIM_DISABLE LD_PRELOAD
trap 'rm -rf "$work"' EXIT

step() { printf '\n== %s\n' "$*"; }
# Prints the command (with the CLI's path shortened to `ipcshim`), then runs it.
show() {
    local arg line=\$
    for arg; do
        [[ $arg == "$ipcshim" ]] && arg=ipcshim
        [[ $arg == *" "* ]] && arg=\"$arg\"
        line+=" $arg"
    done
    echo "$line"
    "$@"
}

# Plain python3, no extra modules: ctypes calls libc's shmat, which `ipcshim run` interposes.
cat >"$work/shm_rw.py" <<'EOF_PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmdt.argtypes = [ctypes.c_void_p]
addr = libc.shmat(int(sys.argv[1]), None, 0)
if addr is None or addr == ctypes.c_void_p(-1).value:
    raise OSError(ctypes.get_errno(), "shmat")
if len(sys.argv) > 2:
    msg = sys.argv[2].encode() + b"\0"
    ctypes.memmove(addr, msg, len(msg))
    print(f"pid {os.getpid()} wrote: {sys.argv[2]}")
else:
    print(f"pid {os.getpid()} read:  {ctypes.string_at(addr).decode()}")
libc.shmdt(addr)
EOF_PY
cd "$work"

echo "ipcshim demo: namespace '$IPCSHIM_NS', region file in $IPCSHIM_DIR"

step "1. util-linux ipcmk creates a 64 KiB segment"
out=$(show "$ipcshim" run -- ipcmk -M 65536)
echo "$out"
shmid=${out##*: }

step "2. a python3 process (ctypes, libc's shmat) attaches to segment $shmid and writes"
show "$ipcshim" run -- python3 shm_rw.py "$shmid" "hello through ipcshim"

step "3. another python3 process attaches and reads it back"
show "$ipcshim" run -- python3 shm_rw.py "$shmid"

step "4. ipcshim's view of the namespace"
show "$ipcshim" ipcs -m
key=$("$ipcshim" ipcs -m | awk -v id="$shmid" '$2 == id { print $1 }')
[[ -n $key ]] || { echo "demo: segment $shmid is missing from ipcshim ipcs" >&2; exit 1; }

step "5. the kernel's view: the segment is not there"
show ipcs -m
if ipcs -m | awk -v k="$key" '$1 == k { found = 1 } END { exit !found }'; then
    echo "demo: FAILED: the kernel holds segment $key, so the shim did not serve it" >&2
    exit 1
fi
if [[ -n ${IPCSHIM_DEMO_IN_NS:-} ]]; then
    echo "(a fresh kernel IPC namespace: anything listed here would have come from the kernel)"
fi
echo "key $key: only in ipcshim"

step "6. the shim's region"
show "$ipcshim" status

step "7. util-linux-style ipcrm removes it"
show "$ipcshim" ipcrm -m "$shmid"
show "$ipcshim" ipcs -m

step "8. a bash pipeline: builtin echo and seq | sort go through ipcshim's pipes"
show "$ipcshim" run -- bash -c 'echo "hello through a user-space pipe" | cat; seq 1 100000 | sort -rn | head -1'
line=$("$ipcshim" status | grep '^pipes:')
echo "$line"
bytes=${line#*bytes_in=}
bytes=${bytes%% *}
if (( bytes < 588895 )); then
    echo "demo: FAILED: only $bytes bytes went through ipcshim's pipes" >&2
    exit 1
fi
echo "$bytes bytes went through ipcshim's pipes (seq alone printed 588895)"

step "9. a unix socket server and client (socat) talk through ipcshim's socket queues"
if ! command -v socat >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends socat >/dev/null
fi
sock=$(mktemp -u -p /dev/shm ipcshim-demo-XXXXXX.sock)
"$ipcshim" run -- socat -u UNIX-LISTEN:"$sock" - >"$sock.out" &
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
show "$ipcshim" run -- socat -u - UNIX-CONNECT:"$sock" <<<"hello through a user-space socket"
wait
cat "$sock.out"
rm -f "$sock" "$sock.out"
line=$("$ipcshim" status | grep '^sockets:')
echo "$line"
moved=${line#*bytes_in=}
moved=${moved%% *}
if (( moved < 34 )); then
    echo "demo: FAILED: the message did not go through ipcshim's sockets" >&2
    exit 1
fi
echo "the message went through ipcshim's socket queues, not the kernel's"
