//! The subcommands of `ach` beyond `demo`, `info` and `verify`, and what
//! they share: the error type, terminal-safe text, sizes for people, the
//! progress bars, and the NumPy, CSV and JSON file formats.

pub mod diff;
pub mod inspect;
pub mod json;
pub mod npy;
pub mod progress;
pub mod transfer;

use std::fmt;
use std::process::ExitCode;

use achronyme_env::{Archive, Error, Location, Section};

/// Opens an archive and checks its whole table of contents, as every
/// command that lists or walks bindings needs: opening a format 1.3
/// archive checks only what a lookup reads (layout.md 6.8), and a listing
/// of a damaged table would otherwise be empty rather than an error.
pub fn open_checked(path: &Location) -> Result<Archive, Error> {
    let archive = Archive::open_location(path)?;
    archive.check_table()?;
    Ok(archive)
}

/// Why a command did not succeed: a usage error (exit 2) or a failure
/// (exit 1). Both print as one line on stderr.
#[derive(Debug)]
pub enum Failure {
    /// The arguments make no sense (a bad extension, a duplicate name...).
    Usage(String),
    /// The work failed (a damaged archive, an unreadable file...).
    Failed(String),
}

impl Failure {
    /// The exit code for this failure.
    pub fn code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            Failure::Failed(_) => ExitCode::FAILURE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (Failure::Usage(m) | Failure::Failed(m)) = self;
        // One line, whatever the message holds.
        f.write_str(&printable(&m.replace('\n', " ")))
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        match e {
            Error::AlreadyExists { path } => Failure::Failed(format!(
                "{} already exists; pass --allow-overwrite to replace it, or choose another path",
                path.display()
            )),
            e => Failure::Failed(e.to_string()),
        }
    }
}

/// Results of the subcommands.
pub type CliResult<T> = std::result::Result<T, Failure>;

/// A failure with a message.
pub fn failed(msg: impl Into<String>) -> Failure {
    Failure::Failed(msg.into())
}

/// A usage error with a message.
pub fn usage(msg: impl Into<String>) -> Failure {
    Failure::Usage(msg.into())
}

/// Text from an archive made safe for a terminal: names and metadata are
/// untrusted, and control characters in them could rewrite the screen.
pub fn printable(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

/// `value` as pretty-printed JSON that is safe for a terminal.
///
/// serde_json escapes the C0 controls but writes DEL and the C1 controls
/// (U+0080..U+009F; U+009B is a one-character CSI that many terminals
/// obey) as they are. Those become `\u` escapes here. They can only occur
/// inside JSON strings, where an escape means the same character, so the
/// output parses to the same value.
pub fn json_text(value: &impl serde::Serialize) -> String {
    let raw = serde_json::to_string_pretty(value).expect("plain data serializes");
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        if c.is_control() && c > '\u{7e}' {
            out.push_str(&format!("\\u{:04x}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Sizes for people: `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A shape as `[2, 3]`, or `-` for values without one.
pub fn shape_text(shape: &[u64]) -> String {
    if shape.is_empty() {
        "-".into()
    } else {
        let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
        format!("[{}]", dims.join(", "))
    }
}

/// The shape column: `[2, 3]` for tensors (`[]` for a 0-d one), `-` for
/// other values.
pub fn shape_of(type_name: &str, shape: &[u64]) -> String {
    if shape.is_empty() && type_name.ends_with("Tensor") {
        "[]".into()
    } else {
        shape_text(shape)
    }
}

/// Lower-case section name, as in the JSON output.
pub fn section_name(s: Section) -> &'static str {
    match s {
        Section::Bindings => "bindings",
        Section::Constants => "constants",
        Section::Functions => "functions",
    }
}

/// The section holding `name`: the bindings, else the constants. A name in
/// neither gives the library's error, with its "did you mean" suggestion.
pub fn find_section(archive: &Archive, name: &str) -> CliResult<Section> {
    for s in [Section::Bindings, Section::Constants, Section::Functions] {
        if archive.contains(s, name) {
            return Ok(s);
        }
    }
    match archive.get(name) {
        Err(e) => Err(e.into()),
        Ok(_) => Ok(Section::Bindings),
    }
}

/// Prints rows as aligned columns (two spaces apart); the columns whose
/// index is in `right` are right-aligned (sizes).
pub fn print_table(head: &[&str], rows: &[Vec<String>], right: &[usize]) {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                if right.contains(&i) {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(&head.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    for r in rows {
        line(r);
    }
}
