//! One W2-shaped save and one full restore, for a profiler:
//! `valgrind --tool=callgrind target/release/examples/w2_profile 20000`
//! counts the instructions of each per-binding step repeatably (the
//! machine's timing noise does not reach instruction counts).

use achronyme_env::{
    Environment, RestoreOptions, SaveOptions, restore_environment, save_environment, testdata,
};

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .map_or(20_000, |s| s.parse().expect("a count"));
    let env = testdata::many_small(n);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w2.ach");
    let opts = SaveOptions {
        durable: false,
        ..SaveOptions::default()
    };
    save_environment(&env, &path, &opts).expect("save");
    let mut back = Environment::new();
    restore_environment(&mut back, &path, &RestoreOptions::default()).expect("restore");
    assert_eq!(back.iter().count(), env.iter().count());
}
