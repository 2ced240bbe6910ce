//! System V semaphores: exported `semget`, `semop`, `semtimedop`, `semctl`, and the same calls
//! reached as raw system calls (the `syscall` export and the catch-all).

use crate::base::real::{self, real_call};
use crate::base::region::{Route, route};
use crate::base::thread;
use libc::{c_int, c_ulong, key_t, size_t, timespec};
use shared_state::Region;
use shared_state::sem::{self, SemEnv};
use shared_state::wait::WaitOutcome;

/// A blocking semop's view of the calling thread.
struct Env<'a> {
    g: &'a thread::Guard,
}

impl SemEnv for Env<'_> {
    fn copy_from(&self, dst: *mut u8, src: usize, len: usize) -> Result<(), i32> {
        crate::base::copy::from_user(dst, src, len)
    }

    fn wait(&self, f: &mut dyn FnMut() -> WaitOutcome) -> WaitOutcome {
        crate::base::copy::sysv_wait(self.g, f)
    }

    fn testcancel(&self) {
        self.g.testcancel();
    }

    fn handled_word(&self) -> Option<&core::sync::atomic::AtomicU32> {
        Some(thread::handled_word())
    }
}

/// Serves a semaphore system call: the kernel-style result (-errno on failure).
pub fn serve(r: &Region, g: &thread::Guard, nr: i64, a: &[u64; 6]) -> i64 {
    let t0 = crate::base::trace::start();
    let res = match nr {
        libc::SYS_semget => sem::semget(r, a[0] as i32, a[1] as i32, a[2] as i32),
        libc::SYS_semop => sem::semtimedop(r, a[0] as i32, a[1] as usize, a[2] as usize, 0, &Env { g }),
        libc::SYS_semtimedop => {
            sem::semtimedop(r, a[0] as i32, a[1] as usize, a[2] as usize, a[3] as usize, &Env { g })
        }
        _ => sem::semctl(r, a[0] as i32, a[1] as i32, a[2] as i32, a[3] as usize),
    };
    #[cfg(feature = "planted-fault")]
    let res = match res {
        Err(libc::EINVAL) if nr == libc::SYS_semctl && a[2] as i32 == sem::IPC_RMID => Err(libc::EPERM),
        r => r,
    };
    let res = match res {
        Ok(v) => v as i64,
        Err(e) => -(e as i64),
    };
    if t0 != 0 {
        crate::base::trace::served(nr, a, res, t0, &crate::base::trace::NO_PATH);
    }
    res
}

/// Serves `nr` from the region, or hands it to libc's `kernel` with signals deliverable. Out
/// of line: the lock-free semop before it then saves no registers for it.
#[inline(never)]
fn call(nr: i64, a: [u64; 6], kernel: impl FnOnce() -> c_int) -> c_int {
    if thread::trap_only() {
        return kernel();
    }
    let g = thread::enter();
    match route() {
        Route::Serve(r) => crate::entry::hooks::c_ret(serve(r, &g, nr, &a)) as c_int,
        Route::Kernel => g.allow_signals(kernel),
        Route::Fail => crate::entry::hooks::c_ret(-(libc::ENOSYS as i64)) as c_int,
    }
}

#[unsafe(no_mangle)]
pub extern "C" fn semget(key: key_t, nsems: c_int, semflg: c_int) -> c_int {
    call(libc::SYS_semget, [key as u64, nsems as u64, semflg as u64, 0, 0, 0], || {
        real_call!(real::SEMGET, fn(key_t, c_int, c_int) -> c_int, key, nsems, semflg)
    })
}

/// A semop of one operation that succeeds at once, served lock-free before the full guard: it
/// makes no system call, so only the signals are held back. False: the usual path serves it
/// (and gives every error: the operation is read again there).
#[inline(always)]
fn semop_at_once(semid: c_int, sops: *mut libc::sembuf) -> bool {
    if thread::trap_only()
        || crate::base::trace::on()
        || !thread::fault_fixups_active()
        || !thread::fixup_usable()
    {
        return false;
    }
    let Route::Serve(r) = route() else { return false };
    if !crate::base::copy::access_ok(sops as usize, size_of::<sem::Sembuf>()) {
        return false;
    }
    let _held = thread::hold_signals();
    // SAFETY: a fault reaches the fixup (the wrapper is installed and this thread can take it).
    let Some(v) = (unsafe { shared_state::uaccess::read_small(sops as *const u8, size_of::<sem::Sembuf>()) })
    else {
        return false;
    };
    let sop = sem::Sembuf { sem_num: v as u16, sem_op: (v >> 16) as i16, sem_flg: (v >> 32) as i16 };
    sem::semop_at_once(r, semid, &sop)
}

#[unsafe(no_mangle)]
pub extern "C" fn semop(semid: c_int, sops: *mut libc::sembuf, nsops: size_t) -> c_int {
    if nsops == 1 && semop_at_once(semid, sops) {
        return 0;
    }
    call(libc::SYS_semop, [semid as u64, sops as u64, nsops as u64, 0, 0, 0], || {
        real_call!(real::SEMOP, fn(c_int, *mut libc::sembuf, size_t) -> c_int, semid, sops, nsops)
    })
}

#[unsafe(no_mangle)]
pub extern "C" fn semtimedop(
    semid: c_int,
    sops: *mut libc::sembuf,
    nsops: size_t,
    timeout: *const timespec,
) -> c_int {
    if nsops == 1 && timeout.is_null() && semop_at_once(semid, sops) {
        return 0;
    }
    call(libc::SYS_semtimedop, [semid as u64, sops as u64, nsops as u64, timeout as u64, 0, 0], || {
        real_call!(
            real::SEMTIMEDOP,
            fn(c_int, *mut libc::sembuf, size_t, *const timespec) -> c_int,
            semid,
            sops,
            nsops,
            timeout
        )
    })
}

/// `semctl(int, int, int, ...)`: the optional `union semun` is passed in the fourth argument
/// register on x86_64, so it is taken as a fixed argument (unused commands ignore it).
#[unsafe(no_mangle)]
pub extern "C" fn semctl(semid: c_int, semnum: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    // glibc's semctl fails commands it does not know (IPC_64 included) with EINVAL itself,
    // making no system call; so do we, so that traces match.
    if !(0..=3).contains(&cmd) && !(11..=20).contains(&cmd) && !matches!(route(), Route::Kernel) {
        return crate::entry::hooks::c_ret(-(libc::EINVAL as i64)) as c_int;
    }
    semctl_syscall(semid, semnum, cmd, arg)
}

/// The semctl system call itself (`syscall(SYS_semctl, …)`), which knows IPC_64.
pub fn semctl_syscall(semid: c_int, semnum: c_int, cmd: c_int, arg: c_ulong) -> c_int {
    call(libc::SYS_semctl, [semid as u64, semnum as u64, cmd as u64, arg, 0, 0], || {
        real_call!(real::SEMCTL, fn(c_int, c_int, c_int, c_ulong) -> c_int, semid, semnum, cmd, arg)
    })
}
