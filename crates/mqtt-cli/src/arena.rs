//! One malloc arena for the whole broker process, on glibc.
//!
//! glibc gives every thread that allocates an arena of its own, and grows such an arena by
//! the least it needs: one `mprotect` per page. The broker's routing thread allocates each
//! message it queues, so a backlog grows that arena page by page: in fan-in QoS 1 (600,000
//! messages, 150 MB at the peak) that was 20,000 `mprotect` calls, and with the page faults
//! 7% of the thread's time. The main arena grows by `brk` with 128 KiB to spare, and
//! per-thread caches keep most small allocations off its lock. Measured in alternating runs
//! (with `MALLOC_ARENA_MAX=1`, which does the same): fan-in QoS 1 delivered 425-450k msg/s
//! with 0.99-1.08 s of broker CPU, against 379-396k and 1.15-1.23 s; with two worker threads
//! 403k against 379-387k. Fan-out, fan-in QoS 0, pairs and latency stayed within the noise.
//!
//! Only `mqtt broker` does this: the load generator's many client tasks were measured with
//! no clear gain either way.

/// Makes every thread allocate from glibc's main arena; elsewhere, does nothing.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn share_one() {
    // SAFETY: `mallopt` only sets a tunable of glibc's allocator (under its own lock), takes
    // no pointer, and runs here before any other thread exists. On failure (0) the
    // default stays, which is correct, only slower.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Makes every thread allocate from glibc's main arena; elsewhere, does nothing.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn share_one() {}
