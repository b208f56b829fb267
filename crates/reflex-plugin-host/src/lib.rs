//! The host side of the plugin ABI: finds a plugin by name, checks that it is a Reflex plugin
//! built for this ABI, and wraps its C entry points in a safe [`LayerInstance`].
//!
//! ```no_run
//! use reflex_plugin_host::Registry;
//! use reflex_plugin_sdk::Shape;
//!
//! let mut registry = Registry::new();
//! let plugin = registry.resolve("conv_standard", "target/release".as_ref())?;
//! let mut layer = plugin.create(r#"{"out_channels": 8, "kernel_size": 5}"#)?;
//! let info = layer.configure(Shape::Seq { channels: 6, length: 128 })?;
//! assert_eq!(info.output, Shape::Seq { channels: 8, length: 128 });
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Libraries are never unloaded: a Rust cdylib may have registered thread-locals, atexit hooks
//! or handed out `'static` references, so `dlclose` is unsound in general. Each library is
//! opened once per process and stays mapped.

mod instance;
mod load;

pub use instance::{LayerInstance, PluginError};
pub use load::{library_file_name, LoadError};

use reflex_plugin_sdk::abi::{ForwardRangeFn, PluginDescriptor, StreamFn};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a plugin's code came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Linked into this executable (built-in layers, tests).
    Static,
    /// A shared library, with the SHA-256 of its bytes as loaded.
    Library { path: PathBuf, sha256: String },
}

/// A plugin ready to create layer instances.
pub struct Plugin {
    /// Valid for the process (libraries are never unloaded). A plugin built for an older minor
    /// has a shorter descriptor, so it is read field by field ([`entry!`]), never as a whole.
    descriptor: *const PluginDescriptor,
    /// The minor-1 entry points, when the plugin has them.
    streaming: Option<(StreamFn, ForwardRangeFn)>,
    pub name: String,
    pub version: String,
    pub origin: Origin,
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("origin", &self.origin)
            .finish()
    }
}

// SAFETY: the descriptor is immutable 'static data (PluginDescriptor is Sync).
unsafe impl Send for Plugin {}
unsafe impl Sync for Plugin {}

/// Reads entry point `$field` of a plugin's descriptor (one of the minor-0 fields, which every
/// descriptor of this major has).
macro_rules! entry {
    ($plugin:expr, $field:ident) => {{
        // SAFETY: `descriptor` points at a live descriptor whose magic and major were checked.
        #[allow(unused_unsafe)]
        let f = unsafe { std::ptr::addr_of!((*$plugin.descriptor).$field).read() };
        f
    }};
}
pub(crate) use entry;

impl Plugin {
    /// Registers a descriptor linked into this executable.
    pub fn from_static(descriptor: &'static PluginDescriptor) -> Plugin {
        // SAFETY: a static of this crate's type is complete, and `descriptor_for` makes its
        // strings 'static.
        unsafe { Plugin::from_raw(descriptor, Origin::Static) }
    }

    /// # Safety
    /// `descriptor` points at a descriptor valid for the process, whose magic and major were
    /// checked, and whose strings are valid for the process.
    pub(crate) unsafe fn from_raw(descriptor: *const PluginDescriptor, origin: Origin) -> Plugin {
        let (name, version) = load::descriptor_strings(descriptor);
        let minor = std::ptr::addr_of!((*descriptor).header.abi_minor).read();
        let streaming = (minor >= 1).then(|| {
            (std::ptr::addr_of!((*descriptor).stream).read(), std::ptr::addr_of!((*descriptor).forward_range).read())
        });
        Plugin { descriptor, streaming, name, version, origin }
    }

    /// A new, unconfigured instance from the layer's keys as a JSON object.
    pub fn create(self: &Arc<Self>, params_json: &str) -> Result<LayerInstance, PluginError> {
        LayerInstance::create(self.clone(), params_json)
    }
}

/// Plugins by name: static registrations first, then shared libraries found on demand.
#[derive(Default)]
pub struct Registry {
    plugins: HashMap<String, Arc<Plugin>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a statically linked plugin under its own name; a later registration of the
    /// same name replaces it.
    pub fn register_static(&mut self, descriptor: &'static PluginDescriptor) {
        let p = Plugin::from_static(descriptor);
        self.plugins.insert(p.name.clone(), Arc::new(p));
    }

    /// Whether `name` is registered (statically or already loaded).
    pub fn contains(&self, name: &str) -> bool {
        self.plugins.contains_key(name)
    }

    /// The plugin called `name`: registered, or loaded from `dir/lib{name}.so`.
    pub fn resolve(&mut self, name: &str, dir: &Path) -> Result<Arc<Plugin>, LoadError> {
        if let Some(p) = self.plugins.get(name) {
            return Ok(p.clone());
        }
        let plugin = Arc::new(load::load_library(name, dir)?);
        self.plugins.insert(name.to_string(), plugin.clone());
        Ok(plugin)
    }
}
