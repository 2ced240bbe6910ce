"""Python sysv_ipc semaphores across processes: usage sysv_ipc_sem.py main KEY.

The main role creates a semaphore with KEY and drives helper processes (this same file with
another role) through acquire, release, timed and non-blocking waits, a blocking acquire woken by
another process, a wait for zero, SEM_UNDO on a process killed while holding the semaphore, and
a waiter woken by the removal. Every printed line is exact (pids are compared here, not
printed), except "CHECK <semid> <pid>": there it waits for a line on stdin while the test
inspects the namespace (one process waiting to acquire, value 0, last operation by <pid>).
"""

import os
import signal
import subprocess
import sys
import time

import sysv_ipc

DEADLINE = 20  # seconds any wait here may take before the run counts as hung


def log(*words):
    print(*words, flush=True)


def helper(role, key):
    """Starts this file in another process with ROLE; its stdout is piped."""
    return subprocess.Popen(
        [sys.executable, __file__, role, str(key)], stdout=subprocess.PIPE, text=True
    )


def finish(proc):
    out, _ = proc.communicate(timeout=DEADLINE)
    return out.strip(), proc.returncode


def until(what, cond):
    end = time.monotonic() + DEADLINE
    while not cond():
        if time.monotonic() > end:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.002)


def main(key):
    log("timeouts supported:", sysv_ipc.SEMAPHORE_TIMEOUT_SUPPORTED)
    if not sysv_ipc.SEMAPHORE_TIMEOUT_SUPPORTED:
        # Timed waits would wait forever: stop here rather than hang.
        raise SystemExit("sysv_ipc was built without semtimedop: run scripts/deps.sh")
    sem = sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREX, 0o600, 0)
    log("created: value", sem.value, "mode", oct(sem.mode))
    try:
        sysv_ipc.Semaphore(key, sysv_ipc.IPC_CREX)
        log("second IPC_CREX: succeeded")
    except sysv_ipc.ExistentialError:
        log("second IPC_CREX: ExistentialError")

    # A timed wait on 0 gives up after its timeout, not before, not much later.
    start = time.monotonic()
    try:
        sem.acquire(0.3)
        log("timed acquire: acquired")
    except sysv_ipc.BusyError:
        waited = time.monotonic() - start
        log("timed acquire: BusyError after", "0.3 s" if 0.29 <= waited < 3 else f"{waited:.3f} s")
    sem.block = False
    try:
        sem.acquire()
        log("non-blocking acquire: acquired")
    except sysv_ipc.BusyError:
        log("non-blocking acquire: BusyError")
    sem.block = True

    sem.release()
    sem.release(3)
    log("after release 1 and 3: value", sem.value)
    sem.acquire(delta=2)
    log("after acquire 2: value", sem.value, "last_pid is self", sem.last_pid == os.getpid())
    sem.value = 1

    # A process killed while holding the semaphore with SEM_UNDO gives it back.
    child = helper("undo-child", key)
    out, rc = finish(child)
    log("undo child:", out, "| returncode", rc)
    log("after its death: value", sem.value, "last_pid is child", sem.last_pid == child.pid)
    # Without SEM_UNDO the child's acquire stays.
    child = helper("plain-child", key)
    out, rc = finish(child)
    log("plain child:", out, "| returncode", rc)
    log("after its exit: value", sem.value)

    # A blocking acquire in another process, woken by our release.
    waiter = helper("waiter", key)
    until("the waiter to queue", lambda: sem.waiting_for_nonzero == 1)
    log("waiting for nonzero:", sem.waiting_for_nonzero, "value", sem.value)
    print("CHECK", sem.id, sem.last_pid, flush=True)
    sys.stdin.readline()
    sem.release()
    out, rc = finish(waiter)
    log("waiter:", out, "| returncode", rc)
    log("after the waiter: value", sem.value, "last_pid is waiter", sem.last_pid == waiter.pid)

    # A wait for zero in another process, released when we take the last unit.
    sem.value = 1
    zero = helper("zero-waiter", key)
    until("the zero waiter to queue", lambda: sem.waiting_for_zero == 1)
    log("waiting for zero:", sem.waiting_for_zero)
    sem.acquire()
    out, rc = finish(zero)
    log("zero waiter:", out, "| returncode", rc)

    # A waiter still queued when the semaphore is removed gets an error, not a hang.
    doomed = helper("waiter", key)
    until("the last waiter to queue", lambda: sem.waiting_for_nonzero == 1)
    sem.remove()
    out, rc = finish(doomed)
    log("waiter at removal:", out, "| returncode", rc)
    try:
        sysv_ipc.Semaphore(key)
        log("after remove: still there")
    except sysv_ipc.ExistentialError:
        log("after remove: ExistentialError")


def undo_child(key):
    sem = sysv_ipc.Semaphore(key)
    sem.undo = True
    sem.acquire(DEADLINE)
    log("holding, value", sem.value)
    os.kill(os.getpid(), signal.SIGKILL)


def plain_child(key):
    sem = sysv_ipc.Semaphore(key)
    sem.acquire(DEADLINE)
    log("took it, value", sem.value)


def waiter(key):
    sem = sysv_ipc.Semaphore(key)
    try:
        sem.acquire(DEADLINE)
        log("acquired, value", sem.value)
    except sysv_ipc.ExistentialError:
        log("ExistentialError")
    except sysv_ipc.BusyError:
        log("BusyError (timed out)")


def zero_waiter(key):
    sem = sysv_ipc.Semaphore(key)
    try:
        sem.Z(DEADLINE)
        log("zero reached, value", sem.value)
    except sysv_ipc.BusyError:
        log("BusyError (timed out)")


if __name__ == "__main__":
    ROLES = {
        "main": main,
        "undo-child": undo_child,
        "plain-child": plain_child,
        "waiter": waiter,
        "zero-waiter": zero_waiter,
    }
    ROLES[sys.argv[1]](int(sys.argv[2]))
