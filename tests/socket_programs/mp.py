"""Python's multiprocessing with each start method named on the command line (fork,
forkserver, spawn): a Pool, Queues between worker processes, a Pipe, a Manager (its server
process over an AF_UNIX socket), a ProcessPoolExecutor, and a Lock, Semaphore and Event; then
asyncio's subprocess pipes and a shell pipeline. Prints one line per part, the same on every
run: a forkserver passes the workers' pipes over its socket with SCM_RIGHTS, spawn starts
fresh interpreters that inherit them."""
import asyncio
import multiprocessing as mp
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor


def sq(x):
    return x * x


def worker(q, r):
    while (item := q.get()) is not None:
        r.put((item[:1], len(item)))


def reverser(conn):
    while (m := conn.recv_bytes()) != b"end":
        conn.send_bytes(m[::-1])
    conn.send_bytes(b"bye")


def mgr_user(d, lst, i):
    d[i] = i * 2
    lst.append(i)


def run(method):
    ctx = mp.get_context(method)
    with ctx.Pool(4) as p:
        pool = (sum(p.map(sq, range(2000), chunksize=7)), sum(p.imap_unordered(sq, range(500))))
    q, r = ctx.Queue(), ctx.Queue()
    ws = [ctx.Process(target=worker, args=(q, r)) for _ in range(3)]
    for w in ws:
        w.start()
    n = 300
    for i in range(n):
        q.put(bytes([i % 251]) * (1 + i * 373 % 70000))
    got = sorted(r.get() for _ in range(n))
    for w in ws:
        q.put(None)
    for w in ws:
        w.join()
    queue = (len(got), sum(size for _, size in got), sum(b[0] for b, _ in got))
    a, b = ctx.Pipe()
    rev = ctx.Process(target=reverser, args=(b,))
    rev.start()
    back, good = 0, 0
    for i in range(200):
        msg = bytes(range(256)) * (1 + i * 331 % 800)
        a.send_bytes(msg)
        reply = a.recv_bytes()
        back += len(reply)
        good += reply == msg[::-1]
    a.send_bytes(b"end")
    pipe = (back, good, a.recv_bytes())
    rev.join()
    with ctx.Manager() as m:
        d, lst = m.dict(), m.list()
        ps = [ctx.Process(target=mgr_user, args=(d, lst, i)) for i in range(8)]
        for p in ps:
            p.start()
        for p in ps:
            p.join()
        manager = (sorted(d.items()), sorted(lst))
    with ProcessPoolExecutor(3, mp_context=ctx) as ex:
        executor = sum(ex.map(sq, range(1000), chunksize=13))
    lock, sem, ev = ctx.Lock(), ctx.Semaphore(2), ctx.Event()
    ev.set()
    with lock, sem:
        sync = ev.is_set()
    return f"{method}: pool {pool} queue {queue} pipe {pipe} manager {manager} executor {executor} sync {sync}"


async def aio():
    p = await asyncio.create_subprocess_exec(
        "sh", "-c", "head -c 300000 /dev/zero | tr '\\0' a; echo done >&2",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await p.communicate()
    return len(out), out.count(b"a"), err


if __name__ == "__main__":
    for method in sys.argv[1:]:
        print(run(method), flush=True)
    print("asyncio", asyncio.run(aio()))
    print("shell", subprocess.run("seq 1 100000 | sort -r | head -3", shell=True, capture_output=True).stdout)
