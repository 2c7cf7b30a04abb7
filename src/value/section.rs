//! Which part of an environment a name lives in.

/// Which section of the environment a binding belongs to (spec 2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Section {
    /// User variables.
    Bindings = 0,
    /// Constants (`PI`, `E`, ...).
    Constants = 1,
    /// Builtin function references.
    Functions = 2,
}

impl Section {
    /// The section for a byte, if it is one.
    pub fn from_u8(b: u8) -> Option<Section> {
        match b {
            0 => Some(Section::Bindings),
            1 => Some(Section::Constants),
            2 => Some(Section::Functions),
            _ => None,
        }
    }
}
