#!/usr/bin/env bash
# Side-by-side benchmarks (`make bench`): each case runs pinned, first on the kernel, then under
# the shim with a fresh namespace, in the same run (unpinned numbers drift with placement; see
# shared/design/BASELINE.md). A benchmark prints one line "<value> <unit>"; for "ns" lower is
# better, for any other unit (MB/s, msgs/s, ...) higher is better.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shim=$root/target/release/libipcshim.so
build=$root/bench/build

[[ -f $shim ]] || { echo "bench: $shim is missing: run 'make build'" >&2; exit 1; }

mkdir -p "$build"
for src in bench/*.c; do
    bin=$build/$(basename "$src" .c)
    [[ $bin -nt $src ]] || gcc -O2 -Wall -Wextra -Werror -o "$bin" "$src"
done

work=$(mktemp -d -p /dev/shm)
chmod 1777 "$work"
trap 'rm -rf "$work"' EXIT

printf '%-58s %6s %14s %14s %9s\n' case cpus kernel ipcshim ratio
n=0
slower=0
# bench LABEL CPUS PROGRAM [ARGS...]: one table row. CPUS is a taskset list ("0": both ends of
# the benchmark on one CPU; "0,1": let them split).
bench() {
    local label=$1 cpus=$2 prog=$build/$3
    shift 3
    n=$((n + 1))
    local kernel shimmed
    kernel=$(env -u LD_PRELOAD -u IPCSHIM_DISABLE taskset -c "$cpus" "$prog" "$@")
    shimmed=$(env -u IPCSHIM_DISABLE LD_PRELOAD="$shim" IPCSHIM_DIR="$work" \
        IPCSHIM_NS="bench-$$-$n" taskset -c "$cpus" "$prog" "$@")
    local kv=${kernel% *} unit=${kernel#* } sv=${shimmed% *}
    [[ ${shimmed#* } == "$unit" ]] || { echo "bench: $label: units differ" >&2; exit 1; }
    # Speed-up of the shim over the kernel: > 1 means the shim is faster.
    local ratio
    ratio=$(awk -v k="$kv" -v s="$sv" -v u="$unit" \
        'BEGIN { printf "%.2fx", (u == "ns") ? k / s : s / k }')
    printf '%-58s %6s %14s %14s %9s\n' "$label" "$cpus" "$kv $unit" "$sv $unit" "$ratio"
    if awk -v r="${ratio%x}" 'BEGIN { exit !(r < 1) }'; then
        slower=$((slower + 1))
    fi
}

bench "shmget+shmat+touch 16 pages+shmdt+IPC_RMID (64 KiB)" 0 shm_cycle 2000 9

echo
echo "ratio = kernel time / ipcshim time (or ipcshim rate / kernel rate); > 1 means ipcshim is faster"
echo "target: no slower than the kernel (ratio >= 1.00x in every row); rows below: $slower of $n"
