//! Arbitrary bytes as an archive: open, read the summary and every name and
//! entry, load every binding and constant with and without checksums, verify.
//! Anything but a panic (or an allocation past libFuzzer's limit) is a pass.
#![no_main]

use achronyme_env::{Archive, LoadOptions, Section};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(archive) = Archive::from_bytes(data.to_vec()) else {
        return;
    };
    let info = archive.info();
    let _ = info.bindings.iter().map(|n| n.len()).sum::<usize>();
    let _ = format!("{info:?}");
    for section in [Section::Bindings, Section::Constants] {
        let names: Vec<String> = archive.names(section).map(str::to_string).collect();
        for name in &names {
            for verify_checksum in [true, false] {
                let opts = LoadOptions { verify_checksum };
                if let Ok(v) = archive.get_with(section, name, opts) {
                    let _ = format!("{v:?}");
                }
            }
        }
    }
    let _ = archive.verify_report().to_string();
});
