#!/usr/bin/env bash
# Side-by-side benchmarks (`make bench`): each case runs pinned, first on the kernel, then under
# the shim with a fresh namespace, in the same run (unpinned numbers drift with placement; see
# shared/design/BASELINE.md). A benchmark prints one line "<value> <unit>"; for "ns" and "ms"
# lower is better, for any other unit (MB/s, msgs/s, ...) higher is better.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shim=$root/target/release/libipcshim.so
build=$root/bench/build

[[ -f $shim ]] || { echo "bench: $shim is missing: run 'make build'" >&2; exit 1; }

# 10,000 connections, 1000 redis clients: an fd each, and more.
ulimit -n "$(ulimit -Hn)"
mkdir -p "$build"
for src in bench/*.c; do
    bin=$build/$(basename "$src" .c)
    stale=0
    for dep in "$src" bench/*.h; do # any header: each program includes bench.h, some unix.h
        [[ $bin -nt $dep ]] || stale=1
    done
    ((stale == 0)) || gcc -O2 -Wall -Wextra -Werror -o "$bin" "$src"
done

work=$(mktemp -d -p /dev/shm)
chmod 1777 "$work"
redis_pid=
trap '[[ -z $redis_pid ]] || kill "$redis_pid" 2>/dev/null; rm -rf "$work"' EXIT

printf '%-58s %6s %16s %16s %8s %7s\n' case cpus kernel ipcshim ratio target
n=0
rows=0
slower=0
missed=0
# bench LABEL CPUS TARGET PROGRAM [ARGS...]: one table row. CPUS is a taskset list ("0": both ends
# of the benchmark on one CPU; "0,1": split them, the pipe programs pinning each process to its
# own CPU with sched_setaffinity, as taken from their arguments). TARGET is the least speed-up
# over the kernel the row must show (1 = no slower than the kernel).
bench() {
    local label=$1 cpus=$2 target=$3 prog=$build/$4
    shift 4
    n=$((n + 1))
    local kernel shimmed
    kernel=$(env -u LD_PRELOAD -u IPCSHIM_DISABLE taskset -c "$cpus" "$prog" "$@") ||
        { echo "bench: $label ($cpus): failed on the kernel" >&2; exit 1; }
    shimmed=$(env -u IPCSHIM_DISABLE LD_PRELOAD="$shim" IPCSHIM_DIR="$work" \
        IPCSHIM_NS="bench-$$-$n" taskset -c "$cpus" "$prog" "$@") ||
        { echo "bench: $label ($cpus): failed under ipcshim" >&2; exit 1; }
    [[ ${shimmed#* } == "${kernel#* }" ]] || { echo "bench: $label: units differ" >&2; exit 1; }
    row "$label" "$cpus" "$target" "${kernel% *}" "${shimmed% *}" "${kernel#* }"
}

# row LABEL CPUS TARGET KERNEL_VALUE SHIM_VALUE UNIT: prints one table row with its ratio.
row() {
    local label=$1 cpus=$2 target=$3 kv=$4 sv=$5 unit=$6
    # Speed-up of the shim over the kernel: > 1 means the shim is faster.
    local ratio
    ratio=$(awk -v k="$kv" -v s="$sv" -v u="$unit" \
        'BEGIN { printf "%.2fx", (u == "ns" || u == "ms") ? k / s : s / k }')
    rows=$((rows + 1))
    local mark=""
    if awk -v r="${ratio%x}" -v t="$target" 'BEGIN { exit !(r < t) }'; then
        missed=$((missed + 1))
        mark=" *"
    fi
    printf '%-58s %6s %16s %16s %8s %7s%s\n' "$label" "$cpus" "$kv $unit" "$sv $unit" "$ratio" \
        ">=${target}x" "$mark"
    if awk -v r="${ratio%x}" 'BEGIN { exit !(r < 1) }'; then
        slower=$((slower + 1))
    fi
}

bench "shmget+shmat+touch 16 pages+shmdt+IPC_RMID (64 KiB)" 0 1 shm_cycle 2000 9

# Pipes. Iteration counts keep each run near 1 s on the kernel (shared/design/BASELINE.md).
# pipe_pingpong ITERS RUNS PARENT_CPU CHILD_CPU;
# pipe_throughput WRITE_SIZE ITERS RUNS PARENT_CPU CHILD_CPU UNIT.
# Targets: 64 KiB throughput >= 2x, 1-byte writes >= 5x, ping-pong across CPUs >= 10x, and
# nothing slower than the kernel (on one CPU in particular).
bench "pipe ping-pong, 1 byte round trip" 0 1 pipe_pingpong 20000 9 0 0
bench "pipe ping-pong, 1 byte round trip" 0,1 10 pipe_pingpong 2000 9 0 1
bench "pipe throughput, 64 KiB writes" 0 2 pipe_throughput 65536 6000 9 0 0 MB/s
bench "pipe throughput, 64 KiB writes" 0,1 2 pipe_throughput 65536 2500 9 0 1 MB/s
bench "pipe throughput, 4 KiB writes" 0 1 pipe_throughput 4096 80000 9 0 0 writes/s
bench "pipe throughput, 4 KiB writes" 0,1 1 pipe_throughput 4096 150000 9 0 1 writes/s
bench "pipe throughput, 1-byte writes" 0 5 pipe_throughput 1 150000 9 0 0 writes/s
bench "pipe throughput, 1-byte writes" 0,1 5 pipe_throughput 1 200000 9 0 1 writes/s

# System V semaphores. sem_op ITERS RUNS plain|undo (ns per semop, one process);
# sem_pingpong ITERS RUNS PARENT_CPU CHILD_CPU (two semaphores of one set, ns per round trip).
# Iteration counts keep each row near 1 s on the kernel. Targets: an uncontended semop, with or
# without SEM_UNDO, >= 10x (it need not enter the kernel); ping-pong across CPUs >= 10x; on one
# CPU no slower than the kernel.
bench "semop, uncontended (ns per semop)" 0 10 sem_op 200000 9 plain
bench "semop with SEM_UNDO, uncontended (ns per semop)" 0 10 sem_op 200000 9 undo
bench "semaphore ping-pong, two processes, two semaphores" 0 1 sem_pingpong 20000 9 0 0
bench "semaphore ping-pong, two processes, two semaphores" 0,1 10 sem_pingpong 2000 9 0 1

# System V message queues. msg_pingpong ITERS RUNS PARENT_CPU CHILD_CPU SIZE (ns per round trip
# of two SIZE-byte messages); msg_throughput SIZE ITERS RUNS PARENT_CPU CHILD_CPU (messages per
# second, sender blocked while the queue is full). Targets: ping-pong of 64-byte messages no
# slower on one CPU and >= 10x across CPUs; throughput of 64-byte messages >= 3x; 4 KiB
# messages no slower.
bench "msg ping-pong, 64-byte messages" 0 1 msg_pingpong 20000 9 0 0 64
bench "msg ping-pong, 64-byte messages" 0,1 10 msg_pingpong 2000 9 0 1 64
bench "msg throughput, 64-byte messages" 0 3 msg_throughput 64 100000 9 0 0
bench "msg throughput, 64-byte messages" 0,1 3 msg_throughput 64 100000 9 0 1
bench "msg throughput, 4 KiB messages" 0 1 msg_throughput 4096 50000 9 0 0
bench "msg throughput, 4 KiB messages" 0,1 1 msg_throughput 4096 50000 9 0 1

# Many pairs at once, more processes than CPUs (issue 18): each pair on its own object, all
# sharing the CPUs taskset allows. sysv_pairs sem PAIRS ITERS RUNS (ping-pong through two
# semaphores of the pair's set, round trips per second of all pairs); sysv_pairs msg PAIRS ITERS
# RUNS SIZE (one sender and one receiver per queue, SIZE-byte messages: above the ring's 96
# bytes, so the queue's lock is taken; messages per second of all pairs). Target 1.5x.
bench "semaphore ping-pong, 16 pairs (a set each)" 0 1.5 sysv_pairs sem 16 5000 5
bench "semaphore ping-pong, 16 pairs (a set each)" 0,1 1.5 sysv_pairs sem 16 5000 5
bench "semaphore ping-pong, 64 pairs (a set each)" 0 1.5 sysv_pairs sem 64 1250 5
bench "semaphore ping-pong, 64 pairs (a set each)" 0,1 1.5 sysv_pairs sem 64 1250 5
bench "msg throughput, 16 pairs (a queue each), 200-byte messages" 0 1.5 sysv_pairs msg 16 20000 5 200
bench "msg throughput, 16 pairs (a queue each), 200-byte messages" 0,1 1.5 sysv_pairs msg 16 20000 5 200
bench "msg throughput, 64 pairs (a queue each), 200-byte messages" 0 1.5 sysv_pairs msg 64 5000 5 200
bench "msg throughput, 64 pairs (a queue each), 200-byte messages" 0,1 1.5 sysv_pairs msg 64 5000 5 200

# stress-ng's System V stressors, 8 instances of each for 10 s, unpinned: bogo-ops per second
# (real time) of each, on the kernel and under the shim (target: no slower).
stress_ng() {
    local -a run=(env -u LD_PRELOAD -u IPCSHIM_DISABLE)
    if [[ $1 == shim ]]; then
        n=$((n + 1))
        run=(env -u IPCSHIM_DISABLE LD_PRELOAD="$shim" IPCSHIM_DIR="$work" IPCSHIM_NS="bench-$$-$n")
    fi
    local out
    out=$(cd "$work" && "${run[@]}" stress-ng --sem-sysv 8 --msg 8 -t 10 --metrics-brief 2>&1) ||
        { echo "bench: stress-ng ($1) failed: $out" >&2; exit 1; }
    # "stress-ng: metrc: [PID] sem-sysv OPS REAL USR SYS OPS/S(real) OPS/S(usr+sys)"
    bogo=$(awk '$3 ~ /^\[/ && ($4 == "sem-sysv" || $4 == "msg") { r[$4] = $9 }
        END { if (!("sem-sysv" in r) || !("msg" in r)) exit 1; print r["sem-sysv"], r["msg"] }' <<<"$out") ||
        { echo "bench: stress-ng ($1) printed no metrics: $out" >&2; exit 1; }
}
stress_ng kernel
kernel=$bogo
stress_ng shim
row "stress-ng --sem-sysv 8 (10 s, bogo-ops/s)" 0,1 1 "${kernel% *}" "${bogo% *}" ops/s
row "stress-ng --msg 8 (10 s, bogo-ops/s)" 0,1 1 "${kernel#* }" "${bogo#* }" ops/s

# What a process costs apart from its calls, where the 500-process stress test (issue 18)
# loses to the kernel. proc_cost PROCS RUNS exit|sysv: CPU ms that PROCS forked processes use
# from a start line to their reaping (exit: they exit at once; sysv: each first makes a SEM_UNDO
# take and give and a 200-byte send and receive, on one of 50 sets and 50 queues). Target: no
# slower.
bench "500 processes exiting (CPU from start to reaped)" 0,1 1 proc_cost 500 5 exit
bench "500 processes: first SEM_UNDO semops, send, receive, exit" 0,1 1 proc_cost 500 5 sysv

# AF_UNIX sockets (stream, seqpacket and datagram served).
# unix_pingpong ITERS RUNS PARENT_CPU CHILD_CPU stream|dgram|named (ns per round trip of one
# byte; stream: connected through a listener's path, dgram: a socketpair, named: two bound
# datagram sockets answering each other with sendto); unix_throughput WRITE_SIZE
# ITERS RUNS PARENT_CPU CHILD_CPU UNIT; unix_connect ITERS RUNS bind|connect (one process,
# pinned to one CPU or free on two: socket, bind, listen, connect, accept, a byte across, close,
# unlink; or connect, accept, a byte, close on a listener bound once).
# Iteration counts keep each row near 1 s on the kernel. Targets (issue 6): ping-pong no slower
# on one CPU and 10x across two, 64 KiB writes 2x; the connect cycles no slower.
bench "AF_UNIX stream ping-pong, 1 byte round trip" 0 1 unix_pingpong 20000 9 0 0 stream
bench "AF_UNIX stream ping-pong, 1 byte round trip" 0,1 10 unix_pingpong 2000 9 0 1 stream
bench "AF_UNIX datagram ping-pong (socketpair), 1 byte" 0 1 unix_pingpong 20000 9 0 0 dgram
bench "AF_UNIX datagram ping-pong (socketpair), 1 byte" 0,1 10 unix_pingpong 2000 9 0 1 dgram
bench "AF_UNIX datagram ping-pong (bound names, sendto), 1 byte" 0 1 unix_pingpong 20000 9 0 0 named
bench "AF_UNIX datagram ping-pong (bound names, sendto), 1 byte" 0,1 10 unix_pingpong 2000 9 0 1 named
bench "AF_UNIX stream throughput, 64 KiB writes" 0 2 unix_throughput 65536 6000 9 0 0 MB/s
bench "AF_UNIX stream throughput, 64 KiB writes" 0,1 2 unix_throughput 65536 2500 9 0 1 MB/s
bench "AF_UNIX socket+bind+listen+connect+accept+close cycle" 0 1 unix_connect 5000 9 bind
bench "AF_UNIX socket+bind+listen+connect+accept+close cycle" 0,1 1 unix_connect 5000 9 bind
bench "AF_UNIX connect+accept+close, listener bound once" 0 1 unix_connect 10000 9 connect
bench "AF_UNIX connect+accept+close, listener bound once" 0,1 1 unix_connect 10000 9 connect

# Loopback UDP (issue 22). udp_pingpong ITERS RUNS PARENT_CPU CHILD_CPU ipv4|ipv6 (ns per round
# trip of 1-byte datagrams between two sockets bound to loopback, each sendto-ing the other's
# name). Targets: no slower on one CPU, 10x across two.
bench "UDP ping-pong over 127.0.0.1 (sendto), 1 byte" 0 1 udp_pingpong 20000 9 0 0 ipv4
bench "UDP ping-pong over 127.0.0.1 (sendto), 1 byte" 0,1 10 udp_pingpong 2000 9 0 1 ipv4
bench "UDP ping-pong over ::1 (sendto), 1 byte" 0 1 udp_pingpong 20000 9 0 0 ipv6
bench "UDP ping-pong over ::1 (sendto), 1 byte" 0,1 10 udp_pingpong 2000 9 0 1 ipv6

# Event-driven servers at scale (issue 17). epoll_echo CONNS CLIENTS ROUNDS SIZE RUNS SERVER_CPU
# CLIENT_CPU: one server process with every connection in one epoll set, 4 client processes with
# their own sets (round trips per second, all clients together). Targets: no row slower than
# the kernel; 1000 connections across two CPUs >= 1.5x.
bench "epoll echo server, 100 connections, 64-byte messages" 0 1 epoll_echo 100 4 200 64 5 0 0
bench "epoll echo server, 100 connections, 64-byte messages" 0,1 1 epoll_echo 100 4 200 64 5 0 1
bench "epoll echo server, 1000 connections, 64-byte messages" 0 1 epoll_echo 1000 4 40 64 5 0 0
bench "epoll echo server, 1000 connections, 64-byte messages" 0,1 1.5 epoll_echo 1000 4 40 64 5 0 1
bench "epoll echo server, 10,000 connections, 64-byte messages" 0 1 epoll_echo 10000 4 5 64 3 0 0
bench "epoll echo server, 10,000 connections, 64-byte messages" 0,1 1 epoll_echo 10000 4 5 64 3 0 1

# free_port: a loopback TCP port nobody listens on now (the kernel's pick for a socket closed).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# redis_rps kernel|shim SERVER_CPU CLIENT_CPU CLIENTS [tcp]: sets rps to "SET GET", the requests/s
# of redis-benchmark (-c CLIENTS -t set,get -n 50000) against a redis-server on a unix socket
# only (no TCP, no persistence), or with tcp on 127.0.0.1 only, each pinned to its CPU; under the
# shim both share a fresh namespace. The backlog (default 511) holds 1000 clients connecting at
# once: a starved server otherwise fails some connects with EAGAIN, on the kernel as well.
redis_rps() {
    local mode=$1 server_cpu=$2 client_cpu=$3 clients=$4 transport=${5:-unix}
    n=$((n + 1))
    local sock=$work/redis-$n.sock run=(env -u LD_PRELOAD -u IPCSHIM_DISABLE)
    [[ $mode == kernel ]] ||
        run=(env -u IPCSHIM_DISABLE LD_PRELOAD="$shim" IPCSHIM_DIR="$work" IPCSHIM_NS="bench-$$-$n")
    local listen=(--port 0 --unixsocket "$sock") to=(-s "$sock") port
    if [[ $transport == tcp ]]; then
        port=$(free_port)
        listen=(--port "$port" --bind 127.0.0.1)
        to=(-h 127.0.0.1 -p "$port")
    fi
    "${run[@]}" taskset -c "$server_cpu" redis-server "${listen[@]}" --save '' \
        --appendonly no --dir "$work" --logfile "$work/redis-$n.log" --maxclients 10000 \
        --tcp-backlog 4096 &
    redis_pid=$!
    local tries=0
    until [[ $("${run[@]}" redis-cli "${to[@]}" ping 2>/dev/null) == PONG ]]; do
        tries=$((tries + 1))
        ((tries < 200)) && kill -0 "$redis_pid" 2>/dev/null ||
            { echo "bench: redis-server ($mode) did not start; log:" >&2; cat "$work/redis-$n.log" >&2; exit 1; }
        sleep 0.05
    done
    local out
    out=$("${run[@]}" taskset -c "$client_cpu" redis-benchmark "${to[@]}" -c "$clients" -t set,get -n 50000 -q) ||
        { echo "bench: redis-benchmark ($mode) failed" >&2; exit 1; }
    "${run[@]}" redis-cli "${to[@]}" shutdown nosave >/dev/null 2>&1 || true
    wait "$redis_pid" || { echo "bench: redis-server ($mode) exited with $?" >&2; exit 1; }
    redis_pid=
    # -q prints "SET: 56179.78 requests per second, p50=…" after \r-separated progress.
    rps=$(tr '\r' '\n' <<<"$out" | awk '$3 == "requests" { r[$1] = $2 }
        END { if (!("SET:" in r) || !("GET:" in r)) exit 1; printf "%.0f %.0f\n", r["SET:"], r["GET:"] }') ||
        { echo "bench: redis-benchmark ($mode) reported no SET and GET rates: $out" >&2; exit 1; }
}
# redis LABEL_CPUS SERVER_CPU CLIENT_CPU CLIENTS TARGET [tcp]: the SET and GET rows for one
# placement.
redis() {
    local kernel shimmed how="-s"
    [[ ${6:-} != tcp ]] || how="-h 127.0.0.1"
    redis_rps kernel "$2" "$3" "$4" "${6:-}"
    kernel=$rps
    redis_rps shim "$2" "$3" "$4" "${6:-}"
    shimmed=$rps
    row "redis-benchmark $how, SET ($4 clients)" "$1" "$5" "${kernel% *}" "${shimmed% *}" requests/s
    row "redis-benchmark $how, GET ($4 clients)" "$1" "$5" "${kernel#* }" "${shimmed#* }" requests/s
}
redis 0 0 0 50 1
redis 0,1 0 1 50 1
redis 0 0 0 1000 1
redis 0,1 0 1 1000 1.5

# Loopback TCP (issue 22): the AF_UNIX programs over 127.0.0.1 with TCP_NODELAY (unix_pingpong
# tcp, unix_throughput ... tcp, unix_connect tcp: connect+accept+close on a listener bound once),
# redis-benchmark -h 127.0.0.1, and ab against nginx. Targets: ping-pong across two CPUs >= 10x,
# 64 KiB throughput >= 2x, redis and nginx >= 1.3x, no row slower than the kernel.
bench "TCP ping-pong (127.0.0.1), 1 byte round trip" 0 1 unix_pingpong 10000 5 0 0 tcp
bench "TCP ping-pong (127.0.0.1), 1 byte round trip" 0,1 10 unix_pingpong 1000 5 0 1 tcp
bench "TCP throughput (127.0.0.1), 64 KiB writes" 0 2 unix_throughput 65536 3000 5 0 0 MB/s tcp
bench "TCP throughput (127.0.0.1), 64 KiB writes" 0,1 2 unix_throughput 65536 2500 5 0 1 MB/s tcp
bench "TCP connect+accept+close (127.0.0.1)" 0 1 unix_connect 2000 5 tcp
bench "TCP connect+accept+close (127.0.0.1)" 0,1 1 unix_connect 2000 5 tcp
redis 0 0 0 50 1.3 tcp
redis 0,1 0 1 50 1.3 tcp

# nginx_rps kernel|shim SERVER_CPU CLIENT_CPU: sets rps to ab's requests/s for a 4 KiB file from
# nginx (master and one worker, on SERVER_CPU) on 127.0.0.1, over 50 kept-alive connections
# (ab -k on CLIENT_CPU). Under the shim, 32 or more connections made at once can leave a
# request unread (README limitations): a run whose ab gives up after 5 s without an answer
# is reported as 0 requests/s (a missed row), not as a failure of the whole benchmark.
nginx_rps() {
    local mode=$1 server_cpu=$2 client_cpu=$3
    n=$((n + 1))
    local dir=$work/nginx-$n run=(env -u LD_PRELOAD -u IPCSHIM_DISABLE) port total=50000
    [[ $mode == kernel ]] ||
        run=(env -u IPCSHIM_DISABLE LD_PRELOAD="$shim" IPCSHIM_DIR="$work" IPCSHIM_NS="bench-$$-$n")
    port=$(free_port)
    mkdir -p "$dir/html" "$dir/tmp"
    head -c 4096 /dev/urandom >"$dir/html/4k.bin"
    printf '%s\n' "daemon off; master_process on; worker_processes 1; user root; pid $dir/nginx.pid;" \
        "error_log $dir/error.log; events { worker_connections 1024; }" \
        "http { access_log off; client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp;" \
        "fastcgi_temp_path $dir/tmp; uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;" \
        "keepalive_requests 100000; server { listen 127.0.0.1:$port; root $dir/html; } }" >"$dir/nginx.conf"
    "${run[@]}" taskset -c "$server_cpu" nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" &
    redis_pid=$! # killed on exit like redis-server
    local tries=0
    until "${run[@]}" curl -sf -o /dev/null "http://127.0.0.1:$port/4k.bin"; do
        tries=$((tries + 1))
        ((tries < 200)) && kill -0 "$redis_pid" 2>/dev/null ||
            { echo "bench: nginx ($mode) did not start; log:" >&2; cat "$dir/error.log" >&2; exit 1; }
        sleep 0.05
    done
    local out stalled=0
    out=$("${run[@]}" taskset -c "$client_cpu" ab -k -s 5 -q -n "$total" -c 50 "http://127.0.0.1:$port/4k.bin" 2>&1) ||
        stalled=1
    kill -QUIT "$redis_pid"
    wait "$redis_pid" || { echo "bench: nginx ($mode) exited with $?" >&2; exit 1; }
    redis_pid=
    if ((stalled)) && [[ $mode == shim && $out == *"apr_pollset_poll: The timeout specified has expired"* ]]; then
        echo "bench: ab against nginx under the shim stalled (no answer for 5 s)" >&2
        rps=0
        return
    fi
    ((stalled == 0)) || { echo "bench: ab ($mode) failed: $out" >&2; exit 1; }
    rps=$(awk -v t="$total" '/^Complete requests:/ { c = $3 } /^Failed requests:/ { f = $3 }
        /^Requests per second:/ { r = $4 } END { if (c != t || f != 0 || r == "") exit 1; printf "%.0f", r }' <<<"$out") ||
        { echo "bench: ab ($mode) did not complete every request: $out" >&2; exit 1; }
}
# nginx_row LABEL_CPUS SERVER_CPU CLIENT_CPU TARGET: one row.
nginx_row() {
    local kernel
    nginx_rps kernel "$2" "$3"
    kernel=$rps
    nginx_rps shim "$2" "$3"
    row "ab -k, nginx on 127.0.0.1, 4 KiB file, 50 connections" "$1" "$4" "$kernel" "$rps" requests/s
}
nginx_row 0 0 0 1.3
nginx_row 0,1 0 1 1.3

# Tracing (IPCSHIM_TRACE): the same programs under ipcshim with it off and on. Off, a served call
# only tests one flag; on, each call costs a getpid, two clock reads and a write of its line.
echo
printf '%-58s %6s %16s %16s %8s\n' "tracing (ipcshim only)" cpus off on "on - off"
trace_cost() {
    local label=$1 cpus=$2 prog=$build/$3
    shift 3
    n=$((n + 1))
    local off on
    off=$(env LD_PRELOAD="$shim" IPCSHIM_DIR="$work" IPCSHIM_NS="bench-$$-$n" \
        taskset -c "$cpus" "$prog" "$@") || { echo "bench: $label: failed" >&2; exit 1; }
    on=$(env LD_PRELOAD="$shim" IPCSHIM_DIR="$work" IPCSHIM_NS="bench-$$-$n" \
        IPCSHIM_TRACE="$work/trace-$n.log" taskset -c "$cpus" "$prog" "$@") ||
        { echo "bench: $label (traced): failed" >&2; exit 1; }
    rm -f "$work/trace-$n.log"
    printf '%-58s %6s %16s %16s %8s\n' "$label" "$cpus" "$off" "$on" \
        "$(awk -v a="${off% *}" -v b="${on% *}" -v u="${on#* }" 'BEGIN { printf "%.0f %s", b - a, u }')"
}
trace_cost "semop, uncontended (ns per semop)" 0 sem_op 20000 5 plain
trace_cost "pipe ping-pong, 1 byte round trip (two calls each side)" 0 pipe_pingpong 5000 5 0 0

# What the catch-all costs the calls it does not serve (issue 23): each call site traps once,
# then is rewritten to make its calls from the shim's allowed range. syscall_cost ITERS RUNS
# CASE DIR (CPU time in ns per call, median of RUNS short runs); then whole programs with little IPC, timed
# alternately on the kernel and under the shim. Targets: calls within 1.2x of the kernel's time
# (ratio >= 0.83x), programs within 1.1x (>= 0.91x).
ipc=("$rows" "$slower" "$missed")
echo
echo "interposition of calls ipcshim does not serve (machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-58s %6s %16s %16s %8s %7s\n' case cpus kernel ipcshim ratio target
bench "getppid()" 0 0.83 syscall_cost 2000 99 getppid "$work"
# SUD's own cost, without the shim: a call with SUD armed pays the kernel's syscall work on
# entry and exit whether or not it traps, which no rewriting can remove.
sud_off=$(taskset -c 0 "$build/syscall_cost" 2000 99 getppid "$work")
sud_on=$(taskset -c 0 "$build/syscall_cost" 2000 99 getppid_sud "$work")
printf '%-58s %6s %16s %16s %8s\n' "  (floor: getppid() with SUD armed, no shim; not a row)" 0 "$sud_off" "$sud_on" \
    "$(awk -v k="${sud_off% *}" -v s="${sud_on% *}" 'BEGIN { printf "%.2fx", k / s }')"
bench "stat(\"/\")" 0 0.83 syscall_cost 2000 99 stat "$work"
bench "open + close of a file" 0 0.83 syscall_cost 2000 99 openclose "$work"
bench "fopen + fclose of a file (glibc's internal openat, close)" 0 0.83 syscall_cost 2000 99 fopenclose "$work"
bench "write of 1 byte to /dev/null (exported write)" 0 0.83 syscall_cost 2000 99 write "$work"
bench "read of 1 byte from /dev/zero (exported read)" 0 0.83 syscall_cost 2000 99 read "$work"
bench "fcntl(F_GETFD) (exported fcntl)" 0 0.83 syscall_cost 2000 99 fcntl "$work"
bench "FUTEX_WAKE, nobody waiting" 0 0.83 syscall_cost 2000 99 futexwake "$work"
bench "pread of 4 KiB" 0 0.83 syscall_cost 2000 99 pread "$work"
bench "pthread mutex + condvar hand-off between two threads" 0 0.83 syscall_cost 200 99 mutex "$work"
bench "pthread mutex + condvar hand-off between two threads" 0,1 0.83 syscall_cost 200 99 mutex "$work"

# median NS...: the median of 7 durations in ns, in ms.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", v[4] / 1e6 }'; }

# wall LABEL TARGET CMD...: one row, the median wall time (ms) of 7 runs of CMD on CPU 0, run
# alternately on the kernel and under the shim (one namespace for all 7; only CMD and what it
# starts have the shim, not taskset or env).
wall() {
    local label=$1 target=$2
    shift 2
    n=$((n + 1))
    local k=() s=() t0 i
    for i in 1 2 3 4 5 6 7; do
        t0=$(date +%s%N)
        taskset -c 0 env -u LD_PRELOAD -u IPCSHIM_DISABLE "$@" >/dev/null 2>&1 ||
            { echo "bench: $label: failed on the kernel" >&2; exit 1; }
        k+=($(($(date +%s%N) - t0)))
        t0=$(date +%s%N)
        taskset -c 0 env -u IPCSHIM_DISABLE LD_PRELOAD="$shim" IPCSHIM_DIR="$work" \
            IPCSHIM_NS="bench-$$-$n" "$@" >/dev/null 2>&1 ||
            { echo "bench: $label: failed under ipcshim" >&2; exit 1; }
        s+=($(($(date +%s%N) - t0)))
    done
    row "$label" 0 "$target" "$(median "${k[@]}")" "$(median "${s[@]}")" ms
}
# Debian's python3 itself (a version manager's `python3` is a shell script starting it).
python=/usr/bin/python3
[[ -x $python ]] || python=$(command -v python3)
wall "python3 importing json, email, http.client, asyncio, unittest" 0.91 \
    "$python" -c 'import json, email, http.client, asyncio, unittest'
wall "gcc -O2 -c of a 555-line C file (c-tests/unix_scm.c)" 0.91 \
    gcc -O2 -D_GNU_SOURCE -c -o "$work/unix_scm.o" c-tests/unix_scm.c
wall "tar c /usr/include > /dev/null" 0.91 tar c /usr/include
wall "git status in this repository" 0.91 git -C "$root" status
# Issue 20: under twice the kernel's time (it was 88x; 1.6x pinned at load 9 after the start-up
# and exec work was cut, 2.0x before).
wall "xargs -n1 -P4 true, 200 spawns" 0.5 bash -c 'seq 1 200 | xargs -n1 -P4 true'
echo "interposition rows missing their target (*): $((missed - ipc[2])) of $((rows - ipc[0]))"
rows=${ipc[0]} slower=${ipc[1]} missed=${ipc[2]}

echo
echo "ratio = kernel time / ipcshim time (or ipcshim rate / kernel rate); > 1 means ipcshim is faster"
echo "cpus: 0 = both processes on CPU 0; 0,1 = split (pipe, semaphore, message and socket rows: parent" \
    "on CPU 0, child on CPU 1; redis: redis-server on CPU 0, redis-benchmark on CPU 1; nginx on CPU 0, ab on CPU 1)"
echo "target: no slower than the kernel (ratio >= 1.00x in every row); rows below: $slower of $rows"
echo "targets per row (pipes: 64 KiB throughput >= 2x, 1-byte writes >= 5x, ping-pong across" \
    "CPUs >= 10x; semaphores: uncontended semop with or without SEM_UNDO >= 10x, ping-pong" \
    "across CPUs >= 10x; message queues: ping-pong across CPUs >= 10x, 64-byte throughput >= 3x;" \
    "16 and 64 semaphore or message queue pairs >= 1.5x;" \
    "sockets and redis: no slower; loopback TCP: ping-pong across CPUs >= 10x, 64 KiB throughput >= 2x," \
    "redis -h and nginx >= 1.3x; none slower than the kernel); rows missing their target (*): $missed of $rows"
