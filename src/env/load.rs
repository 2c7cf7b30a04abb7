//! Reading without restoring: `env_info` (spec 3.1) and `env_load_var`
//! (spec 8.3), each from the table of contents and the one blob it needs.

use crate::archive::info::EnvInfo;
use crate::archive::location::Location;
use crate::archive::reader::{Archive, BlobCache, LoadOptions};
use crate::error::{Error, Result};
use crate::format::layout::Section;
use crate::value::Value;

/// Describes the archive at `path` from its header and table of contents
/// (spec 3.1 `env_info`); its cost does not grow with the data. `path` is
/// a local path or, with the `remote` feature, a URL (see [`Location`]):
/// a remote archive is described after one round trip when its table of
/// contents is under a MiB.
pub fn env_info(path: impl Into<Location>) -> Result<EnvInfo> {
    Ok(Archive::open_location(path)?.info())
}

/// Options of [`env_load_var_with`].
#[derive(Clone, Copy, Debug)]
pub struct LoadVarOptions {
    /// Where to look: `None` (default) resolves the name as the language
    /// does, the bindings section first, then the constants (`PI`);
    /// `Some(section)` looks in that section only.
    pub section: Option<Section>,
    /// Load an owned copy (default true) rather than a view of the file;
    /// see [`RestoreOptions::copy`](crate::RestoreOptions::copy).
    pub copy: bool,
    /// Checksum and memory budget of the load. A copied raw tensor counts
    /// its bytes against [`LoadOptions::max_decoded_bytes`].
    pub load: LoadOptions,
}

impl Default for LoadVarOptions {
    fn default() -> Self {
        LoadVarOptions {
            section: None,
            copy: true,
            load: LoadOptions::default(),
        }
    }
}

/// Loads one binding from the archive at `path` (a path or a URL, see
/// [`Location`]) without reading the others (spec 8.3 `env_load_var`),
/// with the default [`LoadVarOptions`]: a binding, else a constant of that
/// name; an owned copy.
pub fn env_load_var(path: impl Into<Location>, name: &str) -> Result<Value> {
    env_load_var_with(path, name, &LoadVarOptions::default())
}

/// [`env_load_var`] with options: the section to look in, and whether to
/// copy or map.
///
/// ```
/// use achronyme_env::*;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("w.ach");
/// let mut env = Environment::new();
/// // 4 KiB: a blob of its own (smaller values live in the table).
/// env.set("t", Value::Tensor(Tensor::from_vec(vec![1.0; 512])));
/// env.set_constant("PI", Value::Number(std::f64::consts::PI));
/// save_environment(&env, &path, &SaveOptions { compression: Compression::None, ..Default::default() }).unwrap();
///
/// assert_eq!(env_load_var(&path, "PI").unwrap(), Value::Number(std::f64::consts::PI));
/// let Value::Tensor(owned) = env_load_var(&path, "t").unwrap() else { panic!() };
/// assert!(!owned.is_mapped());
/// let mapped = LoadVarOptions { copy: false, ..Default::default() };
/// let Value::Tensor(view) = env_load_var_with(&path, "t", &mapped).unwrap() else { panic!() };
/// assert!(view.is_mapped());
/// ```
pub fn env_load_var_with(
    path: impl Into<Location>,
    name: &str,
    options: &LoadVarOptions,
) -> Result<Value> {
    let archive = Archive::open_location(path)?;
    let section = match options.section {
        Some(s) => s,
        None if !archive.contains(Section::Bindings, name)
            && archive.contains(Section::Constants, name) =>
        {
            Section::Constants
        }
        None => Section::Bindings,
    };
    let budget = options.load.max_decoded_bytes;
    let mut blobs = BlobCache::new(options.copy);
    let (mut v, cost) = archive.get_counted_in(section, name, options.load, &mut blobs)?;
    charge_copy(name, &v, cost, options.copy, 0, budget)?;
    if options.copy {
        v.detach_from_files();
    }
    Ok(v)
}

/// The bytes a loaded raw tensor will hold of its own once copied out of
/// the file (`copy`): the reader counts a view of a mapping as free, but the
/// copy a `copy: true` load makes is memory the value holds. Refuses it
/// past `limit`, counting the `spent` bytes other values of the same
/// restore hold, before the copy is made. Returns the value's cost with the
/// copy counted.
pub(crate) fn charge_copy(
    name: &str,
    v: &Value,
    cost: u64,
    copy: bool,
    spent: u64,
    limit: u64,
) -> Result<u64> {
    if !copy || cost != 0 {
        return Ok(cost);
    }
    // A tensor copied already (shared with another binding of the same
    // restore, format 1.3) costs nothing more.
    let bytes = match v {
        Value::Tensor(t) if t.is_mapped() => (t.len() as u64).saturating_mul(8),
        Value::ComplexTensor(t) if t.is_mapped() => (t.len() as u64).saturating_mul(16),
        _ => return Ok(cost),
    };
    if spent.saturating_add(bytes) > limit {
        return Err(Error::CopyTooLarge {
            name: name.to_string(),
            bytes: spent.saturating_add(bytes),
            limit,
        });
    }
    Ok(bytes)
}
