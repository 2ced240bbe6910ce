//! System V message queues: exported `msgget`, `msgsnd`, `msgrcv`, `msgctl`, and the same
//! calls reached as raw system calls (the `syscall` export and the catch-all).

use crate::base::real::{self, real_call};
use crate::base::region::{Route, route};
use crate::base::thread;
use libc::{c_int, c_long, c_void, key_t, size_t, ssize_t};
use shared_state::Region;
use shared_state::msg::{self, MsgEnv};
use shared_state::wait::WaitOutcome;

/// A msgsnd or msgrcv's view of the calling thread.
struct Env<'a> {
    g: &'a thread::Guard,
}

impl MsgEnv for Env<'_> {
    fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), i32> {
        crate::base::copy::from_user(dst, src, len)
    }

    fn copy_to(&self, dst: usize, src: *const u8, len: usize) -> Result<(), i32> {
        crate::base::copy::to_user(dst, src, len)
    }

    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
        crate::base::copy::sysv_wait(self.g, f)
    }

    fn testcancel(&self) {
        self.g.testcancel();
    }
}

/// Serves a message queue system call: the kernel-style result (-errno on failure).
pub fn serve(r: &Region, g: &thread::Guard, nr: i64, a: &[u64; 6]) -> i64 {
    let t0 = crate::base::trace::start();
    let env = Env { g };
    let res = match nr {
        libc::SYS_msgget => msg::msgget(r, a[0] as i32, a[1] as i32).map(|v| v as i64),
        libc::SYS_msgsnd => {
            msg::msgsnd(r, a[0] as i32, a[1] as usize, a[2] as usize, a[3] as i32, &env).map(|v| v as i64)
        }
        libc::SYS_msgrcv => {
            msg::msgrcv(r, a[0] as i32, a[1] as usize, a[2] as usize, a[3] as i64, a[4] as i32, &env)
                .map(|v| v as i64)
        }
        _ => msg::msgctl(r, a[0] as i32, a[1] as i32, a[2] as usize).map(|v| v as i64),
    };
    let res = match res {
        Ok(v) => v,
        Err(e) => -(e as i64),
    };
    if t0 != 0 {
        crate::base::trace::served(nr, a, res, t0, &crate::base::trace::NO_PATH);
    }
    res
}

/// Serves `nr` from the region, or hands it to libc's `kernel` with signals deliverable.
fn call(nr: i64, a: [u64; 6], kernel: impl FnOnce() -> i64) -> i64 {
    if thread::trap_only() {
        return kernel();
    }
    let g = thread::enter();
    match route() {
        Route::Serve(r) => crate::entry::hooks::c_ret(serve(r, &g, nr, &a)),
        Route::Kernel => g.allow_signals(kernel),
        Route::Fail => crate::entry::hooks::c_ret(-(libc::ENOSYS as i64)),
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn msgget(key: key_t, msgflg: c_int) -> c_int {
    call(libc::SYS_msgget, [key as u64, msgflg as u64, 0, 0, 0, 0], || {
        real_call!(real::MSGGET, fn(key_t, c_int) -> c_int, key, msgflg) as i64
    }) as c_int
}

#[unsafe(no_mangle)]
pub extern "C" fn msgsnd(msqid: c_int, msgp: *const c_void, msgsz: size_t, msgflg: c_int) -> c_int {
    call(libc::SYS_msgsnd, [msqid as u64, msgp as u64, msgsz as u64, msgflg as u64, 0, 0], || {
        real_call!(real::MSGSND, fn(c_int, *const c_void, size_t, c_int) -> c_int, msqid, msgp, msgsz, msgflg)
            as i64
    }) as c_int
}

#[unsafe(no_mangle)]
pub extern "C" fn msgrcv(
    msqid: c_int,
    msgp: *mut c_void,
    msgsz: size_t,
    msgtyp: c_long,
    msgflg: c_int,
) -> ssize_t {
    call(libc::SYS_msgrcv, [msqid as u64, msgp as u64, msgsz as u64, msgtyp as u64, msgflg as u64, 0], || {
        real_call!(
            real::MSGRCV,
            fn(c_int, *mut c_void, size_t, c_long, c_int) -> ssize_t,
            msqid,
            msgp,
            msgsz,
            msgtyp,
            msgflg
        ) as i64
    }) as ssize_t
}

#[unsafe(no_mangle)]
pub extern "C" fn msgctl(msqid: c_int, cmd: c_int, buf: *mut c_void) -> c_int {
    call(libc::SYS_msgctl, [msqid as u64, cmd as u64, buf as u64, 0, 0, 0], || {
        real_call!(real::MSGCTL, fn(c_int, c_int, *mut c_void) -> c_int, msqid, cmd, buf) as i64
    }) as c_int
}
