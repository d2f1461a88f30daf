//! Files and modes: after a full scenario run under a permissive umask (022), no file
//! the platform wrote under its data dir is readable by anyone but its owner, and no
//! folder lets another user list or write it. The only folders with a group or world
//! bit are traverse-only (execute, no read): the data dir and `instances/` (0711) and
//! each instance's folder (0710, group = its tenant), so a tenant reaches its own
//! folders without seeing anyone else's (docs/product/local-confinement.md). A tenant's
//! own `state`, `home` and `tmp` are 0700 and owned by it: what the tenant's gateway
//! writes inside them is its own business, sealed by that boundary.

use std::{
    os::unix::fs::{MetadataExt, PermissionsExt},
    path::{Path, PathBuf},
};

use clawfleet_tests::{
    app_user::AppUser,
    platform::{Platform, PlatformOptions},
    scenario::Operator,
};
use nix::sys::stat::{Mode, umask};
use serde_json::json;

/// Folders inside an instance's folder that belong to its tenant.
const TENANT_FOLDERS: [&str; 3] = ["state", "home", "tmp"];
/// The harness's own log file (a test artefact; `clawfleet up` logs to stderr).
const HARNESS_LOG: &str = "platform.log";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_under_the_data_dir_is_open_to_other_users_whatever_the_umask() {
    let previous = umask(Mode::from_bits_truncate(0o022));
    let data = tempfile::tempdir().unwrap();
    let platform = Platform::start(PlatformOptions::new(data.path(), 23900)).unwrap();
    let operator = Operator::new(&platform);
    let created = operator
        .post("/api/instances", json!({"userId": "modes"}))
        .await;
    assert_eq!(created.status, 201);
    operator.wait_running("modes").await;
    // Accounts and sessions in auth.db, a gateway call through the bridge (its device
    // identity and pairing), a token rotation written into the tenant's state.
    AppUser::sign_up(&platform, "modes@example.com").await;
    let called = operator
        .post("/api/instances/modes/rpc", json!({"method": "health"}))
        .await;
    assert_eq!(called.status, 200, "{}", called.json());
    drop(platform);
    umask(previous);

    let mut open = Vec::new();
    let mut seen = 0;
    walk(data.path(), data.path(), &mut open, &mut seen);
    assert!(seen > 10, "the walk saw only {seen} entries");
    assert!(
        open.is_empty(),
        "entries open to other users:\n{}",
        open.join("\n")
    );
}

fn walk(root: &Path, path: &Path, open: &mut Vec<String>, seen: &mut usize) {
    let metadata = std::fs::symlink_metadata(path).unwrap();
    *seen += 1;
    let mode = metadata.permissions().mode() & 0o7777;
    let relative = path.strip_prefix(root).unwrap_or(path);
    let describe = || format!("{mode:04o} {}", relative.display());
    if metadata.file_type().is_symlink() {
        return;
    }
    if metadata.is_dir() {
        if is_tenant_folder(root, path) {
            if mode != 0o700 {
                open.push(describe());
            }
            return;
        }
        let allowed = traverse_only_mode(root, path).unwrap_or(0o700);
        if mode & !allowed != 0 {
            open.push(describe());
        }
        for entry in std::fs::read_dir(path).unwrap() {
            walk(root, &entry.unwrap().path(), open, seen);
        }
    } else if relative != Path::new(HARNESS_LOG) && mode & 0o077 != 0 {
        open.push(format!("{} (owner {})", describe(), metadata.uid()));
    }
}

/// `<data>/instances/<id>/{state,home,tmp}`.
fn is_tenant_folder(root: &Path, path: &Path) -> bool {
    let Ok(relative) = path.strip_prefix(root) else {
        return false;
    };
    let parts: Vec<_> = relative.components().collect();
    parts.len() == 3
        && parts[0].as_os_str() == "instances"
        && TENANT_FOLDERS
            .iter()
            .any(|name| parts[2].as_os_str() == *name)
}

/// The documented traverse-only folders and the most they may allow.
fn traverse_only_mode(root: &Path, path: &Path) -> Option<u32> {
    let relative: PathBuf = path.strip_prefix(root).ok()?.to_path_buf();
    let depth = relative.components().count();
    let under_instances = relative.starts_with("instances");
    match (depth, under_instances) {
        (0, _) => Some(0o711),
        (1, true) => Some(0o711),
        (2, true) => Some(0o710),
        _ => None,
    }
}
