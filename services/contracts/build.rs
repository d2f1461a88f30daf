//! Compiles `proto/` with protox (pure Rust, no system protoc) and writes the encoded
//! descriptor set next to the generated code so every service can serve reflection.

use std::{env, fs, path::PathBuf};

use prost::Message;

const PROTO_ROOT: &str = "../../proto";
const PROTO_FILES: &[&str] = &[
    "clawfleet/common/v1/common.proto",
    "clawfleet/lifecycle/v1/lifecycle.proto",
    "clawfleet/channels/v1/channels.proto",
    "clawfleet/bridge/v1/bridge.proto",
    "clawfleet/auth/v1/auth.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    let file_descriptors = protox::compile(PROTO_FILES, [PROTO_ROOT])?;
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(
        out_dir.join("clawfleet_descriptor.bin"),
        file_descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .compile_well_known_types(false)
        .compile_fds(file_descriptors)?;
    Ok(())
}
