//! The system calls behind `[runtime]`, for the calling thread or process. `pin` allocates
//! nothing and takes no lock: the loop bench (`benches/loop_latency`, which includes this file)
//! also calls it in a forked child before exec.

pub use imp::*;

#[cfg(target_os = "linux")]
mod imp {
    use std::io;

    /// Pins the calling thread to `cpu`.
    pub fn pin(cpu: usize) -> io::Result<()> {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: an all-zero cpu_set_t is a valid, empty set (it is a plain bit array).
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` < CPU_SETSIZE (checked above), so the bit is inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size passed.
        let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// SCHED_FIFO at `priority` for the calling thread.
    pub fn fifo(priority: u8) -> io::Result<()> {
        let param = libc::sched_param { sched_priority: i32::from(priority) };
        // SAFETY: pthread_self() is the calling thread, alive for the call; `param` is a valid
        // sched_param it only reads.
        let r = unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(r))
        }
    }

    /// Asks that no CPU take longer than `us` to leave an idle state, until the file is closed.
    pub fn wake_latency(us: u32) -> io::Result<std::fs::File> {
        use std::io::Write;
        let path = "/dev/cpu_dma_latency";
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        // The device takes the value as a binary s32 in native byte order.
        let value = i32::try_from(us).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        f.write_all(&value.to_ne_bytes()).map_err(|e| io::Error::new(e.kind(), format!("{path}: {e}")))?;
        Ok(f)
    }

    /// `mlockall(MCL_CURRENT | MCL_FUTURE)`.
    pub fn lock_all() -> io::Result<()> {
        // SAFETY: mlockall takes flags only and changes no memory Rust can see.
        let r = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    fn unsupported() -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "not supported on this OS"))
    }
    pub fn pin(_cpu: usize) -> io::Result<()> {
        unsupported()
    }
    pub fn fifo(_priority: u8) -> io::Result<()> {
        unsupported()
    }
    pub fn lock_all() -> io::Result<()> {
        unsupported()
    }
    pub fn wake_latency(_us: u32) -> io::Result<std::fs::File> {
        Err(io::Error::new(io::ErrorKind::Unsupported, "not supported on this OS"))
    }
}
