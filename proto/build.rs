//! Compiles the `.proto` files with the pure-Rust `protox` compiler, so a fresh machine
//! needs no `protoc`, and writes the descriptor set that gRPC reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/ringdb/v1/common.proto",
        "proto/ringdb/v1/client.proto",
        "proto/ringdb/v1/internode.proto",
        "proto/ringdb/v1/admin.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("ringdb_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .bytes(".ringdb.v1")
        .compile_fds(fds)?;
    Ok(())
}
