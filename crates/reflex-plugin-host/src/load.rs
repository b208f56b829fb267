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

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin name `{0}` is not valid: use lowercase letters, digits and underscores")]
    BadName(String),
    #[error("plugin `{name}` not found: no file {}", path.display())]
    NotFound { name: String, path: PathBuf },
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: refused: {why}; a plugin runs inside the daemon, so only its owner may change it", path.display())]
    Insecure { path: PathBuf, why: String },
    #[error("{}: not a loadable shared library: {message}", path.display())]
    NotLoadable { path: PathBuf, message: String },
    #[error("{}: not a Reflex plugin (no symbol `{symbol}`)", path.display())]
    NotAPlugin { path: PathBuf, symbol: String },
    #[error("{}: not a Reflex plugin (its descriptor has the wrong magic number)", path.display())]
    BadMagic { path: PathBuf },
    #[error("{}: built for plugin ABI {major}.{minor}, this reflexd speaks {ABI_MAJOR}.{ABI_MINOR}: rebuild the plugin against this SDK", path.display())]
    AbiMismatch {
        path: PathBuf,
        major: u32,
        minor: u32,
    },
    #[error("{}: the library calls itself `{found}`, not `{expected}`", path.display())]
    NameMismatch {
        path: PathBuf,
        expected: String,
        found: String,
    },
}

/// `libNAME.so` (`libNAME.dylib`, `NAME.dll`): what cargo calls a cdylib named NAME.
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}{name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    )
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Refuses a file or directory that someone other than us (or root) could have written.
fn check_owner_only(path: &Path) -> Result<(), LoadError> {
    let md = std::fs::metadata(path).map_err(|source| LoadError::Io {
        path: path.into(),
        source,
    })?;
    let mode = md.permissions().mode();
    let insecure = |why: String| LoadError::Insecure {
        path: path.into(),
        why,
    };
    if mode & 0o002 != 0 {
        return Err(insecure(format!(
            "it is writable by every user (mode {:o})",
            mode & 0o7777
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if md.uid() != me && md.uid() != 0 {
        return Err(insecure(format!(
            "it belongs to another user (uid {})",
            md.uid()
        )));
    }
    Ok(())
}

/// # Safety
/// The descriptor's strings must be valid for 'static (they live in a never-unloaded library).
pub(crate) unsafe fn descriptor_strings(d: &PluginDescriptor) -> (String, String) {
    (
        String::from_utf8_lossy(d.name.as_bytes()).into_owned(),
        String::from_utf8_lossy(d.version.as_bytes()).into_owned(),
    )
}

struct Opened {
    descriptor: &'static PluginDescriptor,
}

/// Libraries opened by this process, by path and content: opened once, never closed.
fn opened() -> &'static Mutex<HashMap<(PathBuf, String), Opened>> {
    static OPENED: OnceLock<Mutex<HashMap<(PathBuf, String), Opened>>> = OnceLock::new();
    OPENED.get_or_init(Default::default)
}

pub(crate) fn load_library(name: &str, dir: &Path) -> Result<Plugin, LoadError> {
    if !valid_name(name) {
        return Err(LoadError::BadName(name.into()));
    }
    let path = dir.join(library_file_name(name));
    if !path.is_file() {
        return Err(LoadError::NotFound {
            name: name.into(),
            path,
        });
    }
    let path = path.canonicalize().map_err(|source| LoadError::Io {
        path: path.clone(),
        source,
    })?;
    if let Some(parent) = path.parent() {
        check_owner_only(parent)?;
    }
    check_owner_only(&path)?;
    let bytes = std::fs::read(&path).map_err(|source| LoadError::Io {
        path: path.clone(),
        source,
    })?;
    let sha256 = hex(&Sha256::digest(&bytes));

    let mut cache = opened().lock().unwrap_or_else(|e| e.into_inner());
    let key = (path.clone(), sha256.clone());
    let descriptor = match cache.get(&key) {
        Some(o) => o.descriptor,
        None => {
            let d = open(name, &path)?;
            cache.insert(key, Opened { descriptor: d });
            d
        }
    };
    // SAFETY: the library is never unloaded, so its strings live for the process.
    let (found, version) = unsafe { descriptor_strings(descriptor) };
    if found != name {
        return Err(LoadError::NameMismatch {
            path,
            expected: name.into(),
            found,
        });
    }
    Ok(Plugin {
        descriptor,
        name: found,
        version,
        origin: Origin::Library { path, sha256 },
    })
}

fn open(name: &str, path: &Path) -> Result<&'static PluginDescriptor, LoadError> {
    // SAFETY: loading runs the library's initialisers. That is the point of a plugin; the file
    // was vetted above (owner-only), which is what we can check.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| LoadError::NotLoadable {
        path: path.into(),
        message: e.to_string(),
    })?;
    let symbol = format!("{SYMBOL_PREFIX}{name}");
    // SAFETY: the symbol's type is fixed by the ABI; a non-Reflex library exporting the same
    // name would have to do so deliberately, and we still check the magic before trusting it.
    let get: DescriptorFn = unsafe {
        *lib.get::<DescriptorFn>(symbol.as_bytes())
            .map_err(|_| LoadError::NotAPlugin {
                path: path.into(),
                symbol: symbol.clone(),
            })?
    };
    // Never unloaded (see the crate docs): the descriptor below borrows from the mapping.
    std::mem::forget(lib);
    // SAFETY: `get` is the library's descriptor function; the header is the one part of the
    // descriptor whose layout every ABI version shares, so it is read before anything else.
    let ptr = unsafe { get() };
    let header = unsafe { ptr.cast::<DescriptorHeader>().as_ref() }.ok_or_else(|| {
        LoadError::NotAPlugin {
            path: path.into(),
            symbol: symbol.clone(),
        }
    })?;
    if header.magic != MAGIC {
        return Err(LoadError::BadMagic { path: path.into() });
    }
    if header.abi_major != ABI_MAJOR {
        return Err(LoadError::AbiMismatch {
            path: path.into(),
            major: header.abi_major,
            minor: header.abi_minor,
        });
    }
    // SAFETY: magic and major match, so the full descriptor has this layout.
    Ok(unsafe { &*ptr })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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

    #[test]
    fn a_file_that_is_not_a_library_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(library_file_name("x")), b"not a library").unwrap();
        let e = load_library("x", dir.path()).unwrap_err();
        assert!(matches!(e, LoadError::NotLoadable { .. }), "{e}");
    }

    #[test]
    fn a_missing_plugin_names_the_file_it_looked_for() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_library("nope", dir.path()).unwrap_err();
        assert!(e.to_string().contains("libnope.so"), "{e}");
    }
}
