//! What one compression worker's zstd context holds, per level, after
//! compressing one full 4 MiB chunk (the writer's chunk size) of smooth
//! float data: the figure behind the worker cap of high-level saves
//! (`SaveOptions::compression_level`, README "Compression").
//!
//! zstd allocates its contexts with the C allocator, so a Rust allocator
//! cannot count them; `ZSTD_sizeof_CCtx` reports them instead.
//!
//! ```text
//! cargo run --release --example zstd_context_memory
//! ```

use achronyme_env::testdata;

fn main() {
    let chunk: Vec<u8> = testdata::smooth((4 << 20) / 8)
        .iter()
        .flat_map(|x| x.to_le_bytes())
        .collect();
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(chunk.len()));
    println!("level  context after a 4 MiB chunk");
    for level in 1..=22 {
        let mut z = zstd::bulk::Compressor::new(level).expect("zstd context");
        out.clear();
        z.compress_to_buffer(&chunk, &mut out).expect("compress");
        let size = z.context_mut().sizeof();
        println!("{level:>5}  {:>7.1} MiB", size as f64 / (1 << 20) as f64);
    }
}
