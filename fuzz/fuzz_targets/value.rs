//! Arbitrary bytes through the value decoder alone (a blob's payload for
//! every non-tensor tag), with a re-encode check on what decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    achronyme_env::fuzzing::decode_value(data);
});
