//! Arbitrary bytes as an archive: open, read the summary and every name and
//! entry, load every binding and constant with and without checksums, verify.
//! Anything but a panic (or an allocation past libFuzzer's limit) is a pass.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    achronyme_env::fuzzing::exercise_archive(data.to_vec());
});
