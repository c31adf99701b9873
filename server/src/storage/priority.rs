//! The durable writer's threads yield the CPU to the sockets' when the two compete for a core.
//!
//! Storing runs in bursts (a commit, a checkpoint's copy, their fsyncs) on the writer's thread
//! and the SQLite threads it starts. On a core shared with the runtime that relays to watchers,
//! a frame published during such a burst waited for the scheduler's next turn: at 600 phones ×
//! 5 watchers on one core, fan-out p99 was 2.1 ms against Node's 1.1 ms, and nice 10 on these
//! threads made it 0.97 ms with acks no later (docs/benchmarks.md, session 14). A lower
//! priority only orders who goes first: the writer still gets every cycle the sockets leave,
//! and at least a tenth of a saturated core (nice 10's weight against nice 0's).

/// The writer's nice value (Linux: per thread, inherited by the threads it starts).
pub const WRITER_NICE: i32 = 10;

/// Lowers the calling thread's priority to [`WRITER_NICE`]; threads it starts afterwards (the
/// SQLite connections' workers) inherit it. A refusal (a sandbox) is logged and changes nothing
/// else.
pub fn defer_to_sockets() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread, no memory passed.
        let done =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, WRITER_NICE) };
        if done != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "the durable writer runs at normal priority");
        }
    }
}

/// The nice value of thread `tid` of this process, from `/proc` (tests).
#[cfg(all(test, target_os = "linux"))]
pub fn nice_of(tid: &str) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: state is field 3, nice field 19.
    stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
}
