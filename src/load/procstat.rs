//! CPU time and memory of the server, the floor child and the load tool itself, from /proc
//! and getrusage.

use std::time::Duration;

/// utime + stime of a process (or a thread: pass "self/task/TID") in seconds.
pub(crate) fn cpu_seconds(proc_path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{proc_path}/stat")).ok()?;
    let ticks = parse_stat_ticks(&stat)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| ticks as f64 / hz as f64)
}

pub(crate) fn pid_cpu_seconds(pid: u32) -> Option<f64> {
    cpu_seconds(&pid.to_string())
}

/// utime + stime in clock ticks from a /proc stat line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from the last ')'.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    // After ')': field 3 (state) is index 0, so utime (14) is index 11 and stime (15) is 12.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size (VmHWM) in MB.
pub(crate) fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm_kb(&status).map(|kb| kb as f64 / 1024.0)
}

fn parse_vm_hwm_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU used by this whole process (every thread) so far; microsecond resolution.
pub(crate) fn self_cpu() -> Duration {
    // SAFETY: getrusage fills one rusage struct, all-zero is a valid initial value.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// The calling thread's kernel id, for /proc/self/task/TID/stat.
pub(crate) fn thread_id() -> i64 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as i64 }
}

/// CPU-seconds per call-minute: what carrying one call for one minute costs.
pub(crate) fn per_call_minute(cpu_seconds: f64, calls: u64, window: Duration) -> Option<f64> {
    let minutes = window.as_secs_f64() / 60.0;
    (calls > 0 && minutes > 0.0 && cpu_seconds >= 0.0)
        .then(|| cpu_seconds / (calls as f64 * minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_the_command_name() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 1000 50";
        assert_eq!(parse_stat_ticks(line), Some(325));
        assert_eq!(parse_stat_ticks("garbage"), None);
    }

    #[test]
    fn vm_hwm_in_kb() {
        let status = "Name:\thotline\nVmPeak:\t  999 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 100 kB\n";
        assert_eq!(parse_vm_hwm_kb(status), Some(20480));
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(pid_cpu_seconds(pid).is_some());
        assert!(peak_rss_mb(pid).unwrap() > 0.0);
        assert!(cpu_seconds(&format!("self/task/{}", thread_id())).is_some());
        let t0 = self_cpu();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(self_cpu() >= t0);
    }

    #[test]
    fn per_call_minute_math() {
        assert_eq!(per_call_minute(6.0, 10, Duration::from_secs(60)), Some(0.6));
        assert_eq!(per_call_minute(1.0, 0, Duration::from_secs(60)), None);
        assert_eq!(per_call_minute(1.0, 10, Duration::ZERO), None);
    }
}
