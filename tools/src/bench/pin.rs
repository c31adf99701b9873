//! CPU pinning for `alertme-tools bench`: the server under test (and the peer) on one core, the load
//! generator on the others, so that "CPU-µs per frame on one core" means what it says and the
//! generator does not steal the server's core.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Which CPUs the server and the generator run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pinning {
    /// The server under test and the peer.
    pub server: Vec<usize>,
    /// This process: phones and watchers.
    pub generator: Vec<usize>,
}

impl Pinning {
    /// Words for the report.
    pub fn describe(&self) -> String {
        format!("server on cpu {:?}, generator on cpus {:?}", self.server, self.generator)
    }
}

fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: cpu_set_t is plain data; zeroed is the empty set; CPU_SET stays within it
    // because every cpu index comes from CPU_ISSET over the same type.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        set
    }
}

/// CPUs this process may use.
pub fn allowed() -> Vec<usize> {
    // SAFETY: sched_getaffinity writes at most size_of::<cpu_set_t>() bytes into `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// The server gets the first allowed CPU, the generator the rest; `None` with fewer than two.
pub fn plan() -> Option<Pinning> {
    let cpus = allowed();
    let (first, rest) = cpus.split_first()?;
    (!rest.is_empty()).then(|| Pinning { server: vec![*first], generator: rest.to_vec() })
}

/// Restricts every thread of this process to `cpus` (threads made later inherit it).
pub fn pin_self(cpus: &[usize]) -> bool {
    let set = cpu_set(cpus);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return false };
    let mut ok = true;
    for t in tasks.flatten() {
        let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<libc::pid_t>().ok()) else { continue };
        // SAFETY: valid set and size; a thread that exited meanwhile just fails the call.
        ok &= unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) } == 0;
    }
    ok
}

/// Makes `cmd` start on `cpus` (set between fork and exec, so all its threads inherit it).
pub fn pin_command(cmd: &mut Command, cpus: &[usize]) {
    let set = cpu_set(cpus);
    // SAFETY: the closure only makes one async-signal-safe syscall on data copied before fork.
    unsafe {
        cmd.pre_exec(move || {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_child_runs_only_on_its_cpu() {
        let Some(p) = plan() else { return }; // a one-CPU machine has nothing to split
        let mut c = Command::new("sh");
        c.args(["-c", "grep Cpus_allowed_list /proc/self/status"]);
        pin_command(&mut c, &p.server);
        let out = String::from_utf8(c.output().unwrap().stdout).unwrap();
        assert_eq!(out.split_whitespace().last(), Some(p.server[0].to_string().as_str()), "{out}");
    }
}
