//! The single server's durable writer lowers its CPU priority so that live frames go first.
//!
//! Storing runs in bursts (a commit, the checkpoint's copy, their fsyncs) on the writer's
//! thread and the SQLite threads it starts. On a core shared with the runtime that relays to
//! watchers, a frame published during a burst waited for the scheduler: nice 10 on these
//! threads halved the fan-out's p99 at 600 × 5 with ack latency within the noise
//! (docs/benchmarks.md, session 14). The scheduler shares a busy core by weight, so the writer
//! still runs: nice 10 against one busy nice-0 thread is ~1/10 of the core, and everything the
//! sockets leave. While it waits, whoever waits on it waits too (a request for SQLite's write
//! lock, a phone's ack): slower under saturation, never lost.
//!
//! Not in a cluster: there the writer's thread itself relays what it stored to watchers and
//! other nodes (a cluster owner shows only what is durable), so lowering it would delay the
//! very frames this is for.
//!
//! Only the CPU: the disk's priority is set back to the default, so the fsyncs that make acks
//! true do not queue behind other I/O (Linux derives a lower I/O priority from nice).

/// How much lower than the process the writer runs (Linux: per thread, inherited by the
/// threads it starts).
pub(crate) const WRITER_NICE_STEP: i32 = 10;

/// Lowers the calling thread's CPU priority by [`WRITER_NICE_STEP`] (at most to 19) and keeps
/// its I/O priority at the default's; threads it starts afterwards (the SQLite connections'
/// workers) inherit both. A refusal (a sandbox) is logged and changes nothing else.
pub fn defer_to_sockets() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on the calling thread; errno is this thread's.
        let lowered = unsafe {
            *libc::__errno_location() = 0;
            libc::nice(WRITER_NICE_STEP) != -1 || *libc::__errno_location() == 0
        };
        if !lowered {
            tracing::warn!(error = %std::io::Error::last_os_error(), "the durable writer keeps its CPU priority");
            return;
        }
        // Best effort, level 4: what a nice-0 thread gets by default (who 0: this thread).
        const IOPRIO_WHO_PROCESS: libc::c_long = 1;
        const BEST_EFFORT_4: libc::c_long = (2 << 13) | 4;
        // SAFETY: as above; no memory is passed.
        if unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, BEST_EFFORT_4) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "the durable writer's disk priority follows its CPU priority");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
pub(crate) mod tests {
    use super::*;

    /// The nice value of thread `tid` of this process, from `/proc` (None once it ended).
    pub(crate) fn nice_of(tid: libc::pid_t) -> Option<i32> {
        let stat = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // Fields after the command's closing parenthesis: state is field 3, nice field 19.
        stat.rsplit_once(')')?.1.split_whitespace().nth(16)?.parse().ok()
    }

    pub(crate) fn this_thread() -> libc::pid_t {
        // SAFETY: returns the calling thread's id, nothing else.
        unsafe { libc::gettid() }
    }

    /// The thread's I/O priority as `ioprio_get` reports it.
    fn ioprio_of_this_thread() -> libc::c_long {
        // SAFETY: a plain query on the calling thread.
        unsafe { libc::syscall(libc::SYS_ioprio_get, 1 as libc::c_long, 0 as libc::c_long) }
    }

    /// The lowered thread and a thread it starts afterwards run WRITER_NICE_STEP lower than the
    /// thread that started it, with the default's disk priority; that thread is untouched.
    #[test]
    fn a_deferred_thread_and_its_children_run_lower() {
        let me = this_thread();
        let mine = nice_of(me).unwrap();
        let want = (mine + WRITER_NICE_STEP).min(19);
        let (writer, child, io) = std::thread::spawn(|| {
            defer_to_sockets();
            let child =
                std::thread::spawn(|| (nice_of(this_thread()), ioprio_of_this_thread())).join().unwrap();
            (nice_of(this_thread()), child, ioprio_of_this_thread())
        })
        .join()
        .unwrap();
        assert_eq!(writer, Some(want));
        assert_eq!(child.0, Some(want), "a thread the writer starts inherits its priority");
        assert_eq!(io, (2 << 13) | 4, "best effort, level 4");
        assert_eq!(child.1, io, "and its disk priority");
        assert_eq!(nice_of(me), Some(mine), "the caller's thread is untouched");
    }
}
