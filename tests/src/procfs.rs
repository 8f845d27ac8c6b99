//! What the benchmarks read from `/proc`: a process's memory, and the CPU
//! time of this process and of its finished children (a load generator's
//! share of the machine, without `getrusage` and its `unsafe`).

use std::time::Duration;

/// Linux reports CPU times in /proc in USER_HZ, which is 100 on every
/// architecture this runs on (x86-64, arm64).
const TICKS_PER_SECOND: u64 = 100;

/// Resident memory of one process, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub resident: u64,
    /// The high-water mark of `resident` since the process started.
    pub peak: u64,
}

pub fn memory(pid: u32) -> Result<Memory, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let kilobytes = |field: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
    };
    Ok(Memory {
        resident: kilobytes("VmRSS:")?,
        peak: kilobytes("VmHWM:")?,
    })
}

/// User and system time of the children this process has waited for
/// (`cutime` + `cstime`), so the difference across one child's
/// spawn-and-wait is that child's CPU time when it is the only one to end.
pub fn waited_children_cpu() -> Result<Duration, String> {
    own_stat_time(16, 17)
}

/// This process's own user and system time (`utime` + `stime`).
pub fn own_cpu() -> Result<Duration, String> {
    own_stat_time(14, 15)
}

fn own_stat_time(user_field: usize, system_field: usize) -> Result<Duration, String> {
    let stat =
        std::fs::read_to_string("/proc/self/stat").map_err(|e| format!("/proc/self/stat: {e}"))?;
    // The command name in parentheses may hold spaces; fields count from
    // after it, the first being field 3 (state).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |number: usize| {
        fields
            .get(number - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| format!("/proc/self/stat has no field {number}"))
    };
    let ticks = field(user_field)? + field(system_field)?;
    Ok(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}
