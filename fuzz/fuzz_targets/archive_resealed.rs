//! Like `archive`, but first rewrites the trailer (table checksum and
//! closing checksum) to match whatever the mutated header, table and hash
//! pool say, as an attacker could (layout.md section 7). Random bytes almost
//! never pass the table checksum, so without this the table's validation
//! (section 8) is barely reached; loads run with and without blob checksums
//! as in `archive`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut bytes = data.to_vec();
    let _ = achronyme_env::fuzzing::reseal(&mut bytes);
    achronyme_env::fuzzing::exercise_archive(bytes);
});
