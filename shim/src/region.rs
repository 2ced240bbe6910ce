//! The process's view of its namespace: opened once at start-up and never unmapped.

use core::sync::atomic::{AtomicPtr, AtomicU8, Ordering};
use shared_state::Region;
use shared_state::region::RegionErrorKind;
use std::sync::atomic::AtomicBool;

const UNINIT: u8 = 0;
const ACTIVE: u8 = 1;
const DISABLED: u8 = 2;
const BROKEN: u8 = 3;
/// The region could not be created for want of room: every call is the kernel's.
const NO_ROOM: u8 = 4;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
static REGION: AtomicPtr<Region> = AtomicPtr::new(core::ptr::null_mut());
/// The one-line error, written once at start-up and printed on first use.
static ERROR: AtomicPtr<String> = AtomicPtr::new(core::ptr::null_mut());
static ERROR_SHOWN: AtomicBool = AtomicBool::new(false);

/// Called from the constructor. `IPCSHIM_DISABLE=1` leaves every call to the kernel.
pub fn init() -> Option<&'static Region> {
    if std::env::var_os("IPCSHIM_DISABLE").is_some_and(|v| v == "1") {
        STATE.store(DISABLED, Ordering::Release);
        return None;
    }
    match shared_state::region::region_path_from_env().and_then(|p| Region::open(&p, true)) {
        Ok(r) => {
            let r: &'static Region = Box::leak(Box::new(r));
            REGION.store(r as *const Region as *mut Region, Ordering::Release);
            STATE.store(ACTIVE, Ordering::Release);
            Some(r)
        }
        Err(e) => {
            let state = if matches!(e.kind, RegionErrorKind::NoSpace(_)) { NO_ROOM } else { BROKEN };
            ERROR.store(Box::into_raw(Box::new(format!("{e}\n"))), Ordering::Release);
            STATE.store(state, Ordering::Release);
            // Left to the kernel from the start: said at once, as nothing will fail later.
            if state == NO_ROOM {
                show_error();
            }
            None
        }
    }
}

/// The one-line error, on the first call that meets it.
fn show_error() {
    if !ERROR_SHOWN.swap(true, Ordering::Relaxed) {
        let p = ERROR.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: set once to a leaked Box that is never freed.
            let _ = shared_state::sys::write(2, unsafe { &*p }.as_bytes());
        }
    }
}

pub fn active() -> Option<&'static Region> {
    let p = REGION.load(Ordering::Acquire);
    // SAFETY: set once to a leaked Box that is never freed.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// What a hooked call should do.
pub enum Route {
    Serve(&'static Region),
    Kernel,
    /// The region is unusable: fail with ENOSYS (the error was printed).
    Fail,
}

pub fn route() -> Route {
    match STATE.load(Ordering::Acquire) {
        ACTIVE => Route::Serve(active().expect("active region")),
        DISABLED => Route::Kernel,
        BROKEN => {
            show_error();
            Route::Fail
        }
        NO_ROOM => Route::Kernel,
        // Called before our constructor ran (from another library's): serve from the kernel,
        // as nothing of ours can exist yet.
        _ => Route::Kernel,
    }
}
