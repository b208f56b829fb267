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
pub use load::{library_file_name, sha256_hex, Insecure, LoadError};

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
    Library {
        /// The library configured (canonical).
        path: PathBuf,
        /// Hex SHA-256 of the bytes mapped.
        sha256: String,
    },
}

/// A plugin ready to create layer instances.
pub struct Plugin {
    /// Valid for the process (libraries are never unloaded). A plugin built for an older minor
    /// has a shorter descriptor, so it is read field by field ([`entry!`]), never as a whole.
    descriptor: *const PluginDescriptor,
    /// The minor-1 entry points, when the plugin has them.
    streaming: Option<(StreamFn, ForwardRangeFn)>,
    /// The name configs use in `plugin = "…"`.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// Where its code came from.
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

// SAFETY: the descriptor is immutable data valid for the process (PluginDescriptor is Sync),
// so handing the pointer to another thread is sound.
unsafe impl Send for Plugin {}
// SAFETY: as for `Send`: nothing reachable from a `Plugin` is ever written.
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
        // SAFETY: a checked descriptor with strings valid for the process (the contract).
        let (name, version) = unsafe { load::descriptor_strings(descriptor) };
        // SAFETY: the header is in every descriptor; read alone, never the whole descriptor.
        let minor = unsafe { std::ptr::addr_of!((*descriptor).header.abi_minor).read() };
        let streaming = (minor >= 1).then(|| {
            // SAFETY: a minor-1 descriptor has these fields.
            unsafe {
                (
                    std::ptr::addr_of!((*descriptor).stream).read(),
                    std::ptr::addr_of!((*descriptor).forward_range).read(),
                )
            }
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
    /// An empty registry.
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

#[cfg(test)]
mod tests {
    use super::*;
    use reflex_plugin_sdk::abi::*;
    use reflex_plugin_sdk::{descriptor_for, Error, Layer, LayerInfo, Shape, TensorSpec};

    /// Doubles its input; can compute any range of positions.
    struct Double(Shape);

    #[derive(serde::Deserialize)]
    struct NoKeys {}

    impl Layer for Double {
        const NAME: &'static str = "double";
        const VERSION: &'static str = "1.0.0";
        type Params = NoKeys;
        fn configure(_: NoKeys, input: Shape) -> Result<Self, Error> {
            Ok(Double(input))
        }
        fn info(&self) -> LayerInfo {
            LayerInfo::elementwise(self.0)
        }
        fn tensors(&self) -> Vec<TensorSpec> {
            Vec::new()
        }
        fn load(&mut self, _: &[&[f32]]) -> Result<(), Error> {
            Ok(())
        }
        fn forward(&self, x: &[f32], y: &mut [f32], _: &mut [f32]) -> Result<(), Error> {
            y.iter_mut().zip(x).for_each(|(y, x)| *y = 2.0 * x);
            Ok(())
        }
        fn stream_offset(&self) -> Option<usize> {
            Some(0)
        }
        fn forward_range(
            &self,
            x: &[f32],
            y: &mut [f32],
            _: &mut [f32],
            r: std::ops::Range<usize>,
        ) -> Result<(), Error> {
            y[r.clone()].iter_mut().zip(&x[r]).for_each(|(y, x)| *y = 2.0 * x);
            Ok(())
        }
    }

    const FULL: PluginDescriptor = descriptor_for::<Double>();

    /// The descriptor as ABI 1.0 laid it out: the minor-1 entry points are not there.
    #[repr(C)]
    struct DescriptorV1_0 {
        header: DescriptorHeader,
        name: RxStr,
        version: RxStr,
        create: unsafe extern "C" fn(RxStr, *mut Instance, *mut RxError) -> Status,
        configure: unsafe extern "C" fn(Instance, *const RxShape, *mut RxLayerInfo, *mut RxError) -> Status,
        tensor_spec: unsafe extern "C" fn(Instance, u32, *mut RxTensorSpec) -> Status,
        load: unsafe extern "C" fn(Instance, *const RxTensor, u32, *mut RxError) -> Status,
        #[allow(clippy::type_complexity)]
        forward:
            unsafe extern "C" fn(Instance, *const f32, usize, *mut f32, usize, *mut f32, usize, *mut RxError) -> Status,
        destroy: unsafe extern "C" fn(Instance),
    }

    static OLD: DescriptorV1_0 = DescriptorV1_0 {
        header: DescriptorHeader { magic: MAGIC, abi_major: ABI_MAJOR, abi_minor: 0 },
        name: FULL.name,
        version: FULL.version,
        create: FULL.create,
        configure: FULL.configure,
        tensor_spec: FULL.tensor_spec,
        load: FULL.load,
        forward: FULL.forward,
        destroy: FULL.destroy,
    };
    static NEW: PluginDescriptor = descriptor_for::<Double>();

    fn configured(plugin: Plugin) -> LayerInstance {
        let mut inst = Arc::new(plugin).create("{}").unwrap();
        inst.configure(Shape::Seq { channels: 1, length: 4 }).unwrap();
        inst.load(&[]).unwrap();
        inst
    }

    #[test]
    fn a_plugin_built_for_minor_0_runs_whole_windows() {
        // SAFETY: OLD is a complete 1.0 descriptor with 'static strings.
        let plugin = unsafe { Plugin::from_raw((&raw const OLD).cast(), Origin::Static) };
        assert!(plugin.streaming.is_none());
        let mut inst = configured(plugin);
        assert_eq!(inst.stream_offset(), None);
        let mut y = [0.0; 4];
        inst.forward(&[1.0, 2.0, 3.0, 4.0], &mut y, &mut []).unwrap();
        assert_eq!(y, [2.0, 4.0, 6.0, 8.0]);
        assert!(inst.forward_range(&[1.0; 4], &mut y, &mut [], 0..1).is_err());
    }

    #[test]
    fn a_minor_1_plugin_computes_ranges() {
        let mut inst = configured(Plugin::from_static(&NEW));
        assert_eq!(inst.stream_offset(), Some(0));
        let mut y = [0.0; 4];
        inst.forward_range(&[1.0, 2.0, 3.0, 4.0], &mut y, &mut [], 1..3).unwrap();
        assert_eq!(y, [0.0, 4.0, 6.0, 0.0]);
        // A range beyond the output is the host's mistake, reported, never a panic.
        let e = inst.forward_range(&[1.0; 4], &mut y, &mut [], 2..9).unwrap_err();
        assert_eq!(e.status, STATUS_MISUSE);
    }
}
