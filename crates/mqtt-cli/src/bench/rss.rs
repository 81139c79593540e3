//! A process's resident memory, from `/proc/PID/status` (Linux): how `conn` weighs what each
//! connection costs the broker.

use anyhow::Context;

/// The `VmRSS` of process `pid`, in KiB.
pub fn vm_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).with_context(|| format!("--broker-pid: reading {path}"))?;
    parse_vm_rss(&status).with_context(|| format!("--broker-pid: no VmRSS line in {path}"))
}

/// The number of the `VmRSS:   1234 kB` line.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss() {
        let status = "Name:\tmosquitto\nVmPeak:\t  9999 kB\nVmRSS:\t    6012 kB\nThreads:\t1\n";
        assert_eq!(parse_vm_rss(status), Some(6012));
        assert_eq!(parse_vm_rss("Name: x\n"), None);
        assert_eq!(parse_vm_rss("VmRSS: lots\n"), None);
    }

    #[test]
    fn reads_our_own_process() {
        if cfg!(target_os = "linux") {
            assert!(vm_rss_kib(std::process::id()).unwrap() > 0);
        }
    }
}
