//! CPU pinning and socket options: the driver's threads share one CPU, each contender's
//! whole process (every thread it ever starts) gets another.

use anyhow::Context;
use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The daemon's own system calls (`[runtime]`): `pin` pins the calling thread, and threads it
/// starts later inherit the set. It allocates nothing and takes no lock, so it may also run in
/// a forked child before exec.
#[path = "../../src/daemon/os.rs"]
#[allow(dead_code)] // the bench pins; it needs none of the other calls
mod os;
use os::pin;

/// Pins the driver. Called first in `main`, before any thread exists, so the receiver thread
/// inherits it.
pub fn this_thread(cpu: usize) -> anyhow::Result<()> {
    pin(cpu).with_context(|| format!("cannot pin the driver to CPU {cpu}"))
}

/// Makes `cmd`'s process start on `cpu` alone: set between fork and exec, so no thread of the
/// contender (a daemon's reader, inference and sink threads; Python's, numpy's and
/// onnxruntime's) ever runs elsewhere.
pub fn child(cmd: &mut Command, cpu: usize) {
    // SAFETY: the hook runs in the forked child before exec and only calls `pin`, which fills a
    // stack-local set and makes one system call: no allocation, no lock.
    unsafe {
        cmd.pre_exec(move || pin(cpu));
    }
}

/// Asks for a 4 MiB receive buffer (the kernel caps it at `net.core.rmem_max`): the receiver
/// shares its CPU with the writer, and a burst of datagrams must wait in the socket, not be
/// lost there and blamed on the contender.
pub fn big_receive_buffer(sock: &UdpSocket) -> io::Result<()> {
    socket_option(sock, libc::SO_RCVBUF, 4 << 20)
}

/// Sets the `SOL_SOCKET` option `option` of `sock` to `value`.
pub fn socket_option(sock: &UdpSocket, option: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: a valid socket descriptor, and a pointer to a c_int with its exact length.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            option,
            std::ptr::from_ref(&value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
