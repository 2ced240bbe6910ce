//! Exported System V entry points: translate, delegate to `shared_state`, set errno.

use crate::base::real::{self, real_call};
use crate::base::region::{Route, route};
use crate::base::thread;
use libc::{c_int, c_long, c_void, key_t, size_t};
use shared_state::{Region, shm};

/// Serves a shared memory system call: the kernel-style result (-errno on failure; shmat's
/// address, which is never in the errno range). The exported symbols and the dispatcher (a
/// raw `syscall` the catch-all trapped) both come here.
pub fn serve(r: &Region, nr: i64, a: &[u64; 6]) -> i64 {
    let t0 = crate::base::trace::start();
    let res = match nr {
        libc::SYS_shmget => shm::shmget(r, a[0] as key_t, a[1] as usize, a[2] as c_int).map(|v| v as i64),
        libc::SYS_shmat => shm::shmat(r, a[0] as c_int, a[1] as usize, a[2] as c_int).and_then(|at| {
            // Under MCL_FUTURE the kernel's attachment would be locked.
            match crate::base::mlock::attached(at) {
                Ok(()) => Ok(at as i64),
                Err(e) => {
                    let _ = shm::shmdt(r, at);
                    Err(e)
                }
            }
        }),
        libc::SYS_shmdt => shm::shmdt(r, a[0] as usize).map(|_| 0),
        _ => shm::shmctl(r, a[0] as c_int, a[1] as c_int, a[2] as usize).map(|v| v as i64),
    };
    let res = res.unwrap_or_else(|e| -(e as i64));
    if t0 != 0 {
        crate::base::trace::served(nr, a, res, t0, &crate::base::trace::NO_PATH);
    }
    res
}

/// Serves `nr` from the region, or hands it to libc's `kernel`: the C convention's result.
fn call<T>(nr: i64, a: [u64; 6], from: impl FnOnce(i64) -> T, kernel: impl FnOnce() -> T) -> T {
    // A clone on a stack of its own: libc's call traps, and the dispatcher serves it.
    if thread::trap_only() {
        return kernel();
    }
    // Shim code's own syscalls must not trap; an application handler waits until we are done.
    let _g = thread::enter();
    match route() {
        Route::Serve(r) => {
            from(crate::entry::hooks::c_ret(serve(crate::base::ipcns::current().unwrap_or(r), nr, &a)))
        }
        Route::Kernel => kernel(),
        Route::Fail => from(crate::entry::hooks::c_ret(-(libc::ENOSYS as i64))),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn shmget(key: key_t, size: size_t, shmflg: c_int) -> c_int {
    call(
        libc::SYS_shmget,
        [key as u64, size as u64, shmflg as u64, 0, 0, 0],
        |v| v as c_int,
        || real_call!(real::SHMGET, fn(key_t, size_t, c_int) -> c_int, key, size, shmflg),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn shmat(shmid: c_int, shmaddr: *const c_void, shmflg: c_int) -> *mut c_void {
    let a = [shmid as u64, shmaddr as u64, shmflg as u64, 0, 0, 0];
    call(
        libc::SYS_shmat,
        a,
        |v| v as usize as *mut c_void,
        || real_call!(real::SHMAT, fn(c_int, *const c_void, c_int) -> *mut c_void, shmid, shmaddr, shmflg),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn shmdt(shmaddr: *const c_void) -> c_int {
    call(
        libc::SYS_shmdt,
        [shmaddr as u64, 0, 0, 0, 0, 0],
        |v| v as c_int,
        || real_call!(real::SHMDT, fn(*const c_void) -> c_int, shmaddr),
    )
}

#[unsafe(no_mangle)]
pub extern "C" fn shmctl(shmid: c_int, cmd: c_int, buf: *mut c_void) -> c_int {
    call(
        libc::SYS_shmctl,
        [shmid as u64, cmd as u64, buf as u64, 0, 0, 0],
        |v| v as c_int,
        || real_call!(real::SHMCTL, fn(c_int, c_int, *mut c_void) -> c_int, shmid, cmd, buf),
    )
}

/// `remap_file_pages(2)` (the catch-all's and the exported symbol's): over a shim attachment
/// the kernel would map the region file, so the shim maps the segment as `shm_mmap` would.
/// `None` leaves the call to the kernel: its first checks fail, or no attachment holds it.
pub fn serve_remap(a: &[u64; 6]) -> Option<i64> {
    let page = shared_state::region::PAGE_SIZE;
    let (start, size, prot, pgoff) = (a[0] & !(page - 1), a[1] & !(page - 1), a[2], a[3]);
    if prot != 0 || start.checked_add(size).is_none_or(|end| end <= start) {
        return None;
    }
    pgoff.checked_add(size / page)?;
    // The attachment may be of any IPC namespace this process was in.
    let mut served = None;
    crate::base::ipcns::each_region(|r| {
        if served.is_none() {
            served = shm::remap_file_pages(r, start as usize, size as usize, pgoff);
        }
    });
    served.map(|res| match res {
        Ok(()) => 0,
        Err(e) => -(e as i64),
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn remap_file_pages(
    addr: *mut c_void,
    size: size_t,
    prot: c_int,
    pgoff: size_t,
    flags: c_int,
) -> c_int {
    let a = [addr as u64, size as u64, prot as u64, pgoff as u64, flags as u64, 0];
    let raw = || {
        let [a1, a2, a3, a4, a5, _] = a.map(|v| v as usize);
        match shared_state::sys::syscall6(libc::SYS_remap_file_pages, a1, a2, a3, a4, a5, 0) {
            Ok(v) => v as i64,
            Err(e) => -(e as i64),
        }
    };
    // From here, outside a guard, the system call traps and is served on the alternate stack.
    if thread::trap_only() {
        return crate::entry::hooks::c_ret(raw()) as c_int;
    }
    let g = thread::enter();
    let r = match route() {
        Route::Serve(_) => serve_remap(&a),
        _ => None,
    }
    .unwrap_or_else(|| g.allow_signals(raw));
    crate::entry::hooks::c_ret(r) as c_int
}

/// `syscall(2)`: conformance suites reach SysV calls through it. Declared with six fixed
/// arguments; on x86_64 a variadic caller passes them in the same registers.
#[unsafe(no_mangle)]
pub extern "C" fn syscall(
    nr: c_long,
    a1: c_long,
    a2: c_long,
    a3: c_long,
    a4: c_long,
    a5: c_long,
    a6: c_long,
) -> c_long {
    let real = || {
        real_call!(
            real::SYSCALL,
            fn(c_long, c_long, c_long, c_long, c_long, c_long, c_long) -> c_long,
            nr,
            a1,
            a2,
            a3,
            a4,
            a5,
            a6
        )
    };
    // Process creation traps (`sud::clone`): the child is armed, and gets what it asked for
    // (a new IPC namespace, a stack of its own). So does all of it in a trap-only process.
    if thread::trap_only()
        || matches!(nr, libc::SYS_clone | libc::SYS_clone3 | libc::SYS_fork | libc::SYS_vfork)
    {
        return real();
    }
    let sysv = matches!(nr, libc::SYS_shmget | libc::SYS_shmat | libc::SYS_shmdt | libc::SYS_shmctl);
    if sysv && !matches!(route(), Route::Kernel) {
        return match nr {
            libc::SYS_shmget => shmget(a1 as key_t, a2 as size_t, a3 as c_int) as c_long,
            libc::SYS_shmat => shmat(a1 as c_int, a2 as *const c_void, a3 as c_int) as c_long,
            libc::SYS_shmdt => shmdt(a1 as *const c_void) as c_long,
            _ => shmctl(a1 as c_int, a2 as c_int, a3 as *mut c_void) as c_long,
        };
    }
    let sem = matches!(nr, libc::SYS_semget | libc::SYS_semop | libc::SYS_semtimedop | libc::SYS_semctl);
    if sem && !matches!(route(), Route::Kernel) {
        use crate::entry::sem;
        return match nr {
            libc::SYS_semget => sem::semget(a1 as key_t, a2 as c_int, a3 as c_int),
            libc::SYS_semop => sem::semop(a1 as c_int, a2 as *mut libc::sembuf, a3 as size_t),
            libc::SYS_semtimedop => sem::semtimedop(
                a1 as c_int,
                a2 as *mut libc::sembuf,
                a3 as size_t,
                a4 as *const libc::timespec,
            ),
            _ => sem::semctl_syscall(a1 as c_int, a2 as c_int, a3 as c_int, a4 as libc::c_ulong),
        } as c_long;
    }
    let msg = matches!(nr, libc::SYS_msgget | libc::SYS_msgsnd | libc::SYS_msgrcv | libc::SYS_msgctl);
    if msg && !matches!(route(), Route::Kernel) {
        use crate::entry::msg;
        return match nr {
            libc::SYS_msgget => msg::msgget(a1 as key_t, a2 as c_int) as c_long,
            libc::SYS_msgsnd => {
                msg::msgsnd(a1 as c_int, a2 as *const c_void, a3 as size_t, a4 as c_int) as c_long
            }
            libc::SYS_msgrcv => {
                msg::msgrcv(a1 as c_int, a2 as *mut c_void, a3 as size_t, a4 as c_long, a5 as c_int) as c_long
            }
            _ => msg::msgctl(a1 as c_int, a2 as c_int, a3 as *mut c_void) as c_long,
        };
    }
    let args = [a1, a2, a3, a4, a5, a6].map(|v| v as u64);
    if let Some(r) = crate::entry::hooks::syscall_fd(nr, args) {
        return r;
    }
    thread::enter().allow_signals(real)
}
