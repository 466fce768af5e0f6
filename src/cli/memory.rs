//! The process's memory footprint: how the allocator is set up before any
//! thread starts.

/// One malloc arena. glibc gives every thread that allocates an arena of its
/// own (up to 8 per core), and each keeps freed memory for reuse: with the
/// runtime's thread, the blocking pool (DNS lookups) and the span exporter
/// that is several MiB resident for a process that needs a few hundred KiB
/// of heap. The daemon is mostly one thread, so one arena costs nothing.
pub fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before
    // any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}
