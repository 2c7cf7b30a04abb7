//! Reading the process's memory figures (Linux `/proc/self/status`), for
//! the examples that measure peak memory.

/// A `kB` field of `/proc/self/status`, in MiB.
pub fn status_mib(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| {
            let rest = line.strip_prefix(field)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
        .unwrap_or_else(|| panic!("{field} in /proc/self/status")) as f64
        / 1024.0
}
