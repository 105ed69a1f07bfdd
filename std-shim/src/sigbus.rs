//! A memory copy that survives SIGBUS: the one way [`crate::MmapStorage`] copies out of its map.
//!
//! Owns the process's SIGBUS handler (installed once, chaining to the one it replaces) and the
//! guarded copy routine. A mapped file that shrinks while mapped makes every access past its
//! new end raise SIGBUS; the copy is then resumed at a recovery point that reports the fault,
//! like the kernel's exception tables for `copy_from_user`. It must not touch anything else:
//! a SIGBUS anywhere but inside the copy goes to the previous handler (or kills the process,
//! as it would have without this module).
//!
//! The routine is a few lines of assembly, not Rust: jumping out of Rust code from a signal
//! handler (`siglongjmp`) would skip its frames, which Rust does not allow. Inside the routine
//! a fault just moves the program counter to the recovery point, which returns "failed"; no
//! frame is skipped and no register the caller relies on is changed. Only x86-64 Linux has it
//! ([`GUARDED`]); elsewhere `MmapStorage` reads through the file instead of the map.

use std::io;

/// Whether [`copy`] exists on this target.
pub const GUARDED: bool = cfg!(all(target_arch = "x86_64", target_os = "linux", not(miri)));

/// The copy hit a SIGBUS: some source byte is no longer backed by the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault;

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod imp {
    use super::Fault;
    use std::io;
    use std::sync::OnceLock;

    // `spool_std_guarded_copy(dst, src, len) -> 0 | 1` (System V: rdi, rsi, rdx; eax). The
    // only instruction that touches the source is the `rep movsb` at `_insn`; a SIGBUS there
    // moves RIP to `_fixup`, which returns 1. DF is clear on entry (ABI), rcx/rsi/rdi are
    // caller-saved, and nothing is pushed, so returning from `_fixup` is an ordinary return.
    core::arch::global_asm!(
        ".pushsection .text.spool_std_guarded_copy,\"ax\",@progbits",
        ".globl spool_std_guarded_copy",
        ".hidden spool_std_guarded_copy",
        ".type spool_std_guarded_copy,@function",
        ".p2align 4",
        "spool_std_guarded_copy:",
        "    mov rcx, rdx",
        ".globl spool_std_guarded_copy_insn",
        ".hidden spool_std_guarded_copy_insn",
        "spool_std_guarded_copy_insn:",
        "    rep movsb",
        "    xor eax, eax",
        "    ret",
        ".globl spool_std_guarded_copy_fixup",
        ".hidden spool_std_guarded_copy_fixup",
        "spool_std_guarded_copy_fixup:",
        "    mov eax, 1",
        "    ret",
        ".size spool_std_guarded_copy, . - spool_std_guarded_copy",
        ".popsection",
    );

    extern "C" {
        fn spool_std_guarded_copy(dst: *mut u8, src: *const u8, len: usize) -> u32;
        fn spool_std_guarded_copy_insn();
        fn spool_std_guarded_copy_fixup();
    }

    /// The handler found when ours was installed (Rust's stack-overflow handler, usually).
    static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();
    static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

    extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
        let uc = ctx.cast::<libc::ucontext_t>();
        let rip = libc::REG_RIP as usize;
        // SAFETY: an SA_SIGINFO handler gets the interrupted thread's `ucontext_t` in `ctx`;
        // reading and writing its saved registers is what it is for, and is async-signal-safe.
        unsafe {
            let pc = (*uc).uc_mcontext.gregs[rip] as usize;
            if pc == spool_std_guarded_copy_insn as *const () as usize {
                (*uc).uc_mcontext.gregs[rip] = spool_std_guarded_copy_fixup as *const () as usize as i64;
                return;
            }
        }
        // Not ours. Hand it to the previous handler; with none, restore the default action and
        // return: the faulting instruction runs again and the process dies of SIGBUS, as it
        // would have without us.
        match PREVIOUS.get() {
            Some(old) if old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN => {
                // SAFETY: `old` was a handler of the kind its flags say; calling it with the
                // arguments we received is what the kernel would have done.
                unsafe {
                    if old.sa_flags & libc::SA_SIGINFO != 0 {
                        let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                            core::mem::transmute(old.sa_sigaction);
                        f(sig, info, ctx);
                    } else {
                        let f: extern "C" fn(libc::c_int) = core::mem::transmute(old.sa_sigaction);
                        f(sig);
                    }
                }
            }
            _ => {
                // SAFETY: `signal` is async-signal-safe; SIG_DFL is a valid disposition.
                unsafe { libc::signal(sig, libc::SIG_DFL) };
            }
        }
    }

    pub fn install() -> io::Result<()> {
        let r = INSTALLED.get_or_init(|| {
            // SAFETY: plain sigaction calls with initialised structs; PREVIOUS is set before
            // our handler can run, so the handler always sees it.
            unsafe {
                let mut old: libc::sigaction = core::mem::zeroed();
                if libc::sigaction(libc::SIGBUS, core::ptr::null(), &mut old) != 0 {
                    return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
                }
                let _ = PREVIOUS.set(old);
                let mut new: libc::sigaction = core::mem::zeroed();
                new.sa_sigaction = on_sigbus as *const () as usize;
                new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
                libc::sigemptyset(&mut new.sa_mask);
                if libc::sigaction(libc::SIGBUS, &new, core::ptr::null_mut()) != 0 {
                    return Err(io::Error::last_os_error().raw_os_error().unwrap_or(0));
                }
            }
            Ok(())
        });
        r.map_err(io::Error::from_raw_os_error)
    }

    /// # Safety
    /// `dst` is valid for `len` byte writes and `src` points into a live mapping of `len`
    /// bytes that nothing writes through this process; the handler is installed.
    pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
        // SAFETY: the caller's contract; a SIGBUS inside returns 1 instead of killing us.
        match unsafe { spool_std_guarded_copy(dst, src, len) } {
            0 => Ok(()),
            _ => Err(Fault),
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(miri))))]
mod imp {
    use super::Fault;
    use std::io;

    pub fn install() -> io::Result<()> {
        Ok(())
    }

    /// # Safety
    /// Never called: [`super::GUARDED`] is false here.
    pub unsafe fn copy(_dst: *mut u8, _src: *const u8, _len: usize) -> Result<(), Fault> {
        Err(Fault)
    }
}

/// Installs the SIGBUS handler (once per process; later calls return the first result).
pub fn install() -> io::Result<()> {
    imp::install()
}

/// Copies `len` bytes from `src` to `dst`, or reports a SIGBUS met on the way (the bytes of
/// `dst` are then partly written).
///
/// # Safety
/// [`GUARDED`] is true and [`install`] returned `Ok`; `dst` is valid for `len` byte writes and
/// does not overlap the source; `src..src + len` lies inside one live read-only mapping.
pub unsafe fn copy(dst: *mut u8, src: *const u8, len: usize) -> Result<(), Fault> {
    // SAFETY: the caller's contract.
    unsafe { imp::copy(dst, src, len) }
}
