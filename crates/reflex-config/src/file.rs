//! Reading a file the user names: never blocking forever, never without a size bound.
//!
//! A FIFO would block `open` until a writer comes (forever), and a device such as `/dev/zero`
//! never ends: both are refused, whatever the file is for. A regular file larger than the
//! caller's limit is refused with the limit in the error.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `O_NONBLOCK` on Linux (every architecture Reflex runs on): `open` of a FIFO returns at once.
const O_NONBLOCK: i32 = 0o4000;

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("cannot read: {0}")]
    Io(#[from] std::io::Error),
    /// A FIFO, socket, device or directory.
    #[error("not a regular file ({kind}): refused, it could block or never end")]
    NotRegular {
        /// What it is instead.
        kind: &'static str,
    },
    /// Larger than the limit.
    #[error("larger than the limit of {limit} bytes ({size} bytes)")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
        /// The file's size.
        size: u64,
    },
}

/// The whole of the regular file at `path`, at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    use std::os::unix::fs::FileTypeExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path)?;
    let meta = file.metadata()?;
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_fifo() {
            "a FIFO"
        } else if t.is_dir() {
            "a directory"
        } else if t.is_char_device() || t.is_block_device() {
            "a device"
        } else if t.is_socket() {
            "a socket"
        } else {
            "not a file"
        };
        return Err(ReadError::NotRegular { kind });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { limit, size: meta.len() });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    // A file that grows while it is read is still cut at the limit (one byte more tells).
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { limit, size: bytes.len() as u64 });
    }
    Ok(bytes)
}

/// The limit of a config file: 1 MiB.
pub const CONFIG_LIMIT: u64 = 1 << 20;
/// The limit of a weights file: 2 GiB.
pub const WEIGHTS_LIMIT: u64 = 2 << 30;
/// The limit of a recording read for replay: 16 GiB.
pub const RECORDING_LIMIT: u64 = 16 << 30;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifos_devices_and_large_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_bounded(&fifo, 10), Err(ReadError::NotRegular { kind: "a FIFO" })));
        assert!(matches!(read_bounded(Path::new("/dev/zero"), 10), Err(ReadError::NotRegular { .. })));
        let big = dir.path().join("big");
        std::fs::write(&big, [0u8; 11]).unwrap();
        let e = read_bounded(&big, 10).unwrap_err();
        assert!(e.to_string().contains("limit of 10 bytes"), "{e}");
        assert_eq!(read_bounded(&big, 11).unwrap().len(), 11);
    }

    extern "C" {
        fn mkfifo(path: *const std::ffi::c_char, mode: u32) -> i32;
    }
}
