//! Time stamps on one clock for both ends of a window's path: the writer's, taken before a
//! frame's `write`, and the kernel's, taken as a datagram reaches the receiving socket
//! (`SO_TIMESTAMPNS`). The kernel's stamp leaves out when the receiver thread itself wakes:
//! that is the driver's cost, not the contender's, and a contender that keeps idle CPUs
//! polling (`wake_latency_us`) would otherwise also shorten the driver's side of its runs.
//! Both are `CLOCK_REALTIME` nanoseconds, the clock the kernel stamps with.

use std::io;
use std::net::UdpSocket;
use std::os::fd::AsRawFd;

/// Now, on the kernel's stamping clock.
pub fn now_ns() -> u64 {
    // SAFETY: an all-zero timespec is valid, and clock_gettime only writes into it.
    let mut t: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: CLOCK_REALTIME always exists; `t` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut t) };
    ns(&t)
}

fn ns(t: &libc::timespec) -> u64 {
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Asks the kernel to stamp every datagram `sock` receives.
pub fn enable(sock: &UdpSocket) -> io::Result<()> {
    crate::pin::socket_option(sock, libc::SO_TIMESTAMPNS, 1)
}

/// One datagram into `buf`: its length and the kernel's stamp (now, if it came without one).
pub fn recv(sock: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, u64)> {
    // Room for one control message holding a timespec, aligned as cmsghdr wants.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: an all-zero msghdr is valid (no name, no buffers); the fields are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: `msg` points at `iov` (→ `buf`) and `control`, all alive and writable for the
    // call and of the lengths given.
    let len = unsafe { libc::recvmsg(sock.as_raw_fd(), &mut msg, 0) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut at = None;
    // SAFETY: the CMSG_* walk stays inside `msg.msg_control`/`msg_controllen` as recvmsg set
    // them; a SCM_TIMESTAMPNS message's data is one timespec, read unaligned to be safe.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                at = Some(ns(&std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>())));
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((len as usize, at.unwrap_or_else(now_ns)))
}
