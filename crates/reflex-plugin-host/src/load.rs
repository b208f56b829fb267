//! Finding, vetting and opening plugin libraries.

use crate::{Origin, Plugin};
use reflex_plugin_sdk::abi::{
    DescriptorFn, DescriptorHeader, PluginDescriptor, ABI_MAJOR, ABI_MINOR, MAGIC, SYMBOL_PREFIX,
};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Why a plugin library was not loaded. Each variant carries what it is about (the plugin's
/// name, the library's path, the versions) as data; `Display` is the one line users see.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The name could escape the plugin directory or is not a cargo library name.
    #[error("plugin name `{0}` is not valid: use lowercase letters, digits and underscores")]
    BadName(String),
    /// No library file for the plugin in the plugin directory.
    #[error("plugin `{name}` not found: no file {}", path.display())]
    NotFound {
        /// The plugin asked for.
        name: String,
        /// The file looked for.
        path: PathBuf,
    },
    /// Reading the library or its directory failed.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Larger than any plugin library should be (a wrong file, or one still growing).
    #[error("{}: larger than the limit of {limit} bytes for a plugin library ({size} bytes)", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The limit in bytes ([`PLUGIN_LIMIT`]).
        limit: u64,
        /// Its size.
        size: u64,
    },
    /// Someone other than its owner could have changed the library.
    #[error("{}: refused: {reason}; a plugin runs inside the daemon, so only its owner may change it", path.display())]
    Insecure {
        /// The library or its directory.
        path: PathBuf,
        /// What makes it writable by others.
        reason: Insecure,
    },
    /// The dynamic loader refused the file.
    #[error("{}: not a loadable shared library: {source}", path.display())]
    NotLoadable {
        /// The library configured (not its private copy).
        path: PathBuf,
        /// What the loader said.
        source: libloading::Error,
    },
    /// The library does not export the plugin's descriptor symbol.
    #[error("{}: not a Reflex plugin (no symbol `{symbol}`)", path.display())]
    NotAPlugin {
        /// The library.
        path: PathBuf,
        /// The symbol looked up (`reflex_plugin_<name>`).
        symbol: String,
    },
    /// The exported descriptor does not start with [`reflex_plugin_sdk::abi::MAGIC`].
    #[error("{}: not a Reflex plugin (its descriptor has the wrong magic number)", path.display())]
    BadMagic {
        /// The library.
        path: PathBuf,
    },
    /// The plugin was built against an SDK of another ABI major version.
    #[error("{}: built for plugin ABI {major}.{minor}, this reflexd speaks {ABI_MAJOR}.{ABI_MINOR}: rebuild the plugin against this SDK", path.display())]
    AbiMismatch {
        /// The library.
        path: PathBuf,
        /// The plugin's ABI major version.
        major: u32,
        /// The plugin's ABI minor version.
        minor: u32,
    },
    /// The library's descriptor names another plugin than its file name.
    #[error("{}: the library calls itself `{found}`, not `{expected}`", path.display())]
    NameMismatch {
        /// The library.
        path: PathBuf,
        /// The name asked for (and the file's stem).
        expected: String,
        /// The name in the descriptor.
        found: String,
    },
}

/// Why a library or its directory is refused ([`LoadError::Insecure`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Insecure {
    /// Every user may write it.
    #[error("it is writable by every user (mode {mode:o})")]
    WorldWritable {
        /// Its permission bits (`st_mode & 0o7777`).
        mode: u32,
    },
    /// It belongs to neither this user nor root.
    #[error("it belongs to another user (uid {uid})")]
    ForeignOwner {
        /// Its owner.
        uid: u32,
    },
}

/// `libNAME.so` (`libNAME.dylib`, `NAME.dll`): what cargo calls a cdylib named NAME.
pub fn library_file_name(name: &str) -> String {
    format!("{}{name}{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Refuses a file or directory that someone other than us (or root) could have written.
fn check_owner_only(path: &Path) -> Result<(), LoadError> {
    let md = std::fs::metadata(path).map_err(|source| LoadError::Io { path: path.into(), source })?;
    let mode = md.permissions().mode();
    let insecure = |reason| LoadError::Insecure { path: path.into(), reason };
    if mode & 0o002 != 0 {
        return Err(insecure(Insecure::WorldWritable { mode: mode & 0o7777 }));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if md.uid() != me && md.uid() != 0 {
        return Err(insecure(Insecure::ForeignOwner { uid: md.uid() }));
    }
    Ok(())
}

/// The plugin's name and version, copied out of its descriptor.
///
/// # Safety
/// `d` points at a descriptor whose magic and major were checked, and its strings are valid for
/// the call (they live in a never-unloaded library, or in a static).
pub(crate) unsafe fn descriptor_strings(d: *const PluginDescriptor) -> (String, String) {
    // SAFETY: `name` and `version` are minor-0 fields, present in every descriptor of this
    // major; read field by field so that no reference to a shorter descriptor is formed.
    let (name, version) = unsafe { (std::ptr::addr_of!((*d).name).read(), std::ptr::addr_of!((*d).version).read()) };
    // SAFETY: the strings are valid for the call (this function's contract).
    let (name, version) = unsafe { (name.as_bytes(), version.as_bytes()) };
    (String::from_utf8_lossy(name).into_owned(), String::from_utf8_lossy(version).into_owned())
}

/// A descriptor inside a library that stays mapped for the process.
#[derive(Clone, Copy)]
pub(crate) struct Mapped(pub(crate) *const PluginDescriptor);

// SAFETY: it points at immutable data that is never unmapped.
unsafe impl Send for Mapped {}

struct Opened {
    descriptor: Mapped,
    /// (device, inode, size, mtime s, mtime ns) of the file when it was hashed.
    stamp: (u64, u64, u64, i64, i64),
    sha256: String,
}

/// The library last loaded from each path. Every library ever opened stays mapped (and is
/// found again by its hash); only this index moves on.
fn opened() -> &'static Mutex<HashMap<PathBuf, Opened>> {
    static OPENED: OnceLock<Mutex<HashMap<PathBuf, Opened>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

pub(crate) fn load_library(name: &str, dir: &Path) -> Result<Plugin, LoadError> {
    if !valid_name(name) {
        return Err(LoadError::BadName(name.into()));
    }
    let path = dir.join(library_file_name(name));
    if !path.is_file() {
        return Err(LoadError::NotFound { name: name.into(), path });
    }
    let path = path.canonicalize().map_err(|source| LoadError::Io { path: path.clone(), source })?;
    if let Some(parent) = path.parent() {
        check_owner_only(parent)?;
    }
    check_owner_only(&path)?;
    let io = |source| LoadError::Io { path: path.clone(), source };
    let md = std::fs::metadata(&path).map_err(io)?;
    // Reloads happen often and libraries are megabytes: an unchanged file (same inode, size,
    // mtime) is not read and hashed again.
    let stamp = (md.dev(), md.ino(), md.len(), md.mtime(), md.mtime_nsec());
    let mut cache = opened().lock().unwrap_or_else(|e| e.into_inner());
    let (descriptor, sha256) = match cache.get(&path).filter(|o| o.stamp == stamp) {
        Some(o) => (o.descriptor, o.sha256.clone()),
        None => {
            let bytes = read_library(&path, md.len())?;
            let sha256 = sha256_hex(&bytes);
            let d = match cache.values().find(|o| o.sha256 == sha256) {
                Some(o) => o.descriptor,
                None => open_private_copy(name, &path, &bytes, &sha256)?,
            };
            cache.insert(path.clone(), Opened { descriptor: d, stamp, sha256: sha256.clone() });
            (d, sha256)
        }
    };
    // SAFETY: the library is never unloaded, so its strings live for the process.
    let (found, _) = unsafe { descriptor_strings(descriptor.0) };
    if found != name {
        return Err(LoadError::NameMismatch { path, expected: name.into(), found });
    }
    // SAFETY: `open` checked magic and major; the library stays mapped.
    Ok(unsafe { Plugin::from_raw(descriptor.0, Origin::Library { path, sha256 }) })
}

/// The largest plugin library read: the five shipped ones are well under 10 MiB in a debug
/// build; a file this large is a mistake, and reading it whole would be one too.
pub const PLUGIN_LIMIT: u64 = 256 << 20;

/// The bytes of the regular file at `path` (of `size` bytes when looked at), read only up to
/// [`PLUGIN_LIMIT`], also if it grows meanwhile.
fn read_library(path: &Path, size: u64) -> Result<Vec<u8>, LoadError> {
    use std::io::Read;
    let too_large = |size| LoadError::TooLarge { path: path.into(), limit: PLUGIN_LIMIT, size };
    if size > PLUGIN_LIMIT {
        return Err(too_large(size));
    }
    let io = |source| LoadError::Io { path: path.into(), source };
    let mut bytes = Vec::with_capacity(size as usize);
    std::fs::File::open(path).map_err(io)?.take(PLUGIN_LIMIT + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > PLUGIN_LIMIT {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// The dynamic loader maps a path once: `dlopen` of a library rebuilt in place returns the old
/// code. So the bytes that were vetted and hashed are written to a private file named by their
/// hash, and that file is opened (and removed at once: the mapping stays). A rebuilt plugin
/// therefore runs at the next graph build, and the old one stays mapped for whatever still
/// uses it.
fn open_private_copy(name: &str, path: &Path, bytes: &[u8], sha256: &str) -> Result<Mapped, LoadError> {
    let io = |source| LoadError::Io { path: path.into(), source };
    // mkdtemp: a fresh directory only we can enter, so nobody can swap the copy under us.
    let dir = tempfile::Builder::new().prefix("reflex-plugin-").tempdir().map_err(io)?;
    let copy = dir.path().join(format!("lib{name}-{}{}", &sha256[..16], std::env::consts::DLL_SUFFIX));
    std::fs::write(&copy, bytes).map_err(io)?;
    let result = open(name, &copy, path);
    drop(dir);
    match result {
        // The temporary directory may be mounted noexec (hardened hosts): then map the library
        // itself. It works; only a rebuild in place is no longer picked up until a restart.
        Err(LoadError::NotLoadable { .. }) => open(name, path, path),
        other => other,
    }
}

/// Opens `file` (a private copy); errors name `shown`, the library the user configured.
fn open(name: &str, file: &Path, shown: &Path) -> Result<Mapped, LoadError> {
    let path = shown;
    // SAFETY: loading runs the library's initialisers. That is the point of a plugin; the file
    // was vetted above (owner-only), which is what we can check.
    let lib = unsafe { libloading::Library::new(file) }
        .map_err(|source| LoadError::NotLoadable { path: path.into(), source })?;
    let symbol = format!("{SYMBOL_PREFIX}{name}");
    // SAFETY: the symbol's type is fixed by the ABI; a non-Reflex library exporting the same
    // name would have to do so deliberately, and we still check the magic before trusting it.
    let get: DescriptorFn = unsafe {
        *lib.get::<DescriptorFn>(symbol.as_bytes())
            .map_err(|_| LoadError::NotAPlugin { path: path.into(), symbol: symbol.clone() })?
    };
    // Never unloaded (see the crate docs): the descriptor below borrows from the mapping.
    std::mem::forget(lib);
    // SAFETY: `get` is the library's descriptor function; the header is the one part of the
    // descriptor whose layout every ABI version shares, so it is read before anything else.
    let ptr = unsafe { get() };
    // SAFETY: null or a pointer into the library's statics (mapped for the process); every
    // descriptor of every version starts with this header.
    let header = unsafe { ptr.cast::<DescriptorHeader>().as_ref() }
        .ok_or_else(|| LoadError::NotAPlugin { path: path.into(), symbol: symbol.clone() })?;
    if header.magic != MAGIC {
        return Err(LoadError::BadMagic { path: path.into() });
    }
    if header.abi_major != ABI_MAJOR {
        return Err(LoadError::AbiMismatch { path: path.into(), major: header.abi_major, minor: header.abi_minor });
    }
    // Magic and major match: the fields of this major's minor 0 are there (and later ones if
    // `abi_minor` says so, which `Plugin::from_raw` reads).
    Ok(Mapped(ptr))
}

/// Lower-case hex SHA-256 of `bytes`: how a plugin library, and (in `reflexd`) a weights file,
/// are named in `inspect`, logs and recordings.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    Sha256::digest(bytes).iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_escape_the_plugin_directory() {
        assert!(valid_name("conv_standard"));
        assert!(!valid_name("../etc/x"));
        assert!(!valid_name("Conv"));
        assert!(!valid_name(""));
    }

    #[test]
    fn world_writable_directories_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join(library_file_name("x"));
        std::fs::write(&f, b"not a library").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = load_library("x", dir.path()).unwrap_err();
        assert!(matches!(e, LoadError::Insecure { .. }), "{e}");
        assert!(e.to_string().contains("writable by every user"), "{e}");
    }

    /// The reason is data a caller can match on; the line users see is the one they saw when it
    /// was a preformatted string.
    #[test]
    fn insecure_libraries_say_why_as_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o757)).unwrap();
        let e = check_owner_only(dir.path()).unwrap_err();
        let LoadError::Insecure { reason, path } = &e else { panic!("{e}") };
        assert_eq!((*reason, path.as_path()), (Insecure::WorldWritable { mode: 0o757 }, dir.path()));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: refused: it is writable by every user (mode 757); a plugin runs inside the daemon, so only \
                 its owner may change it",
                dir.path().display()
            )
        );
        assert_eq!(Insecure::ForeignOwner { uid: 7 }.to_string(), "it belongs to another user (uid 7)");
    }

    #[test]
    fn a_file_that_is_not_a_library_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(library_file_name("x")), b"not a library").unwrap();
        let e = load_library("x", dir.path()).unwrap_err();
        assert!(matches!(e, LoadError::NotLoadable { .. }), "{e}");
    }

    /// A library file of gigabytes was read whole into memory before anything was checked.
    #[test]
    fn a_library_past_the_size_limit_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(dir.path().join(library_file_name("huge"))).unwrap();
        f.set_len(PLUGIN_LIMIT + 1).unwrap(); // sparse: nothing is written
        let e = load_library("huge", dir.path()).unwrap_err();
        assert!(matches!(e, LoadError::TooLarge { size, .. } if size == PLUGIN_LIMIT + 1), "{e}");
        assert!(e.to_string().contains("larger than the limit of 268435456 bytes"), "{e}");
    }

    #[test]
    fn a_missing_plugin_names_the_file_it_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_library("nope", dir.path()).unwrap_err();
        assert!(e.to_string().contains("libnope.so"), "{e}");
    }
}

#[cfg(test)]
mod rebuild_tests {
    use super::*;

    /// A library rebuilt in place (different bytes at the same path) is mapped anew, not
    /// served from the loader's cache of that path.
    #[test]
    fn a_library_rebuilt_in_place_is_loaded_again() {
        let built = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/debug")
            .join(library_file_name("moving_average"));
        if !built.exists() {
            // Only `cargo build --workspace` (the README's test command) puts it there.
            panic!("{} is missing: run `cargo build --workspace` before the tests", built.display());
        }
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join(library_file_name("moving_average"));
        let mut bytes = std::fs::read(&built).unwrap();
        std::fs::write(&lib, &bytes).unwrap();
        let first = load_library("moving_average", dir.path()).unwrap();
        let again = load_library("moving_average", dir.path()).unwrap();
        assert!(std::ptr::eq(first.descriptor, again.descriptor), "same bytes: the same mapping");

        // "Rebuild": trailing bytes change the file's hash but not what the loader maps.
        bytes.extend_from_slice(b"rebuilt");
        std::fs::write(&lib, &bytes).unwrap();
        let rebuilt = load_library("moving_average", dir.path()).unwrap();
        assert!(!std::ptr::eq(first.descriptor, rebuilt.descriptor), "a new mapping for new bytes");
        let (Origin::Library { sha256: a, .. }, Origin::Library { sha256: b, .. }) = (&first.origin, &rebuilt.origin)
        else {
            panic!("dynamic plugins have a library origin");
        };
        assert_ne!(a, b);
    }
}
