//! Replacing a state dir with a restored one, and putting the previous one back. Both are
//! renames within the instance's directory, so each step is atomic and the previous
//! state is never copied or lost until the restored one has proven itself.

use std::{
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// The state dirs after a swap.
#[derive(Debug)]
pub(super) struct Swapped {
    /// Where the previous state now is.
    pub previous: PathBuf,
}

/// Where a backup is unpacked before it replaces `state_dir`: beside it (same file
/// system, so the swap is a rename).
pub(super) fn staging_dir(state_dir: &Path, backup_id: &str) -> PathBuf {
    sibling(state_dir, &format!("restore-{backup_id}"))
}

fn sibling(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.with_file_name(format!(
        "{}.{name}",
        state_dir
            .file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("state")
    ))
}

/// Makes `dir` an empty directory, removing what an interrupted restore left.
pub(super) fn prepare_empty(dir: &Path) -> io::Result<()> {
    discard(dir);
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
}

/// Removes `dir` and everything in it, logging (not failing) when it cannot.
pub(super) fn discard(dir: &Path) {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "could not remove a restore leftover")
        }
    }
}

/// Puts `staging` in place of `state_dir` (which moves aside), owned like the state dir
/// was (a confined tenant's own uid on the local runtime).
pub(super) fn put_in_place(state_dir: &Path, staging: &Path) -> io::Result<Swapped> {
    let previous = sibling(state_dir, "previous");
    discard(&previous);
    match std::fs::symlink_metadata(state_dir) {
        Ok(metadata) => {
            chown_tree(staging, metadata.uid(), metadata.gid())?;
            std::fs::set_permissions(staging, metadata.permissions())?;
            std::fs::rename(state_dir, &previous)?;
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            // A clone into an instance that never ran: nothing to keep.
            std::fs::create_dir_all(&previous)?;
        }
        Err(error) => return Err(error),
    }
    if let Err(error) = std::fs::rename(staging, state_dir) {
        let _ = std::fs::rename(&previous, state_dir);
        return Err(error);
    }
    Ok(Swapped { previous })
}

/// Puts the previous state back after a restore that did not become ready; the restored
/// state is discarded.
pub(super) fn put_back(state_dir: &Path, swapped: &Swapped) -> io::Result<()> {
    let failed = sibling(state_dir, "failed-restore");
    discard(&failed);
    std::fs::rename(state_dir, &failed)?;
    std::fs::rename(&swapped.previous, state_dir)?;
    discard(&failed);
    Ok(())
}

/// Gives every entry under `root` (links themselves, not their targets) to `uid`:`gid`,
/// when that is not already the owner.
fn chown_tree(root: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let metadata = std::fs::symlink_metadata(root)?;
    if metadata.uid() != uid || metadata.gid() != gid {
        std::os::unix::fs::lchown(root, Some(uid), Some(gid))?;
    }
    if metadata.is_dir() {
        for entry in std::fs::read_dir(root)? {
            chown_tree(&entry?.path(), uid, gid)?;
        }
    }
    Ok(())
}
