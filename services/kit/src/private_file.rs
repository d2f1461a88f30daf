//! Files that hold secrets or tenant data: written atomically (a reader sees the old
//! file or the new one, never half of either) and readable by the owner only, whatever
//! the process umask. Folders holding them are owner-only too.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{DirBuilderExt, PermissionsExt},
    path::Path,
};

/// Mode of a private file.
pub const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of a private folder.
pub const PRIVATE_DIR_MODE: u32 = 0o700;

/// Creates `path` and any missing parents as owner-only folders; an existing `path` is
/// made owner-only.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(PRIVATE_DIR_MODE)
        .create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(PRIVATE_DIR_MODE))
}

/// Replaces `path` with `contents` atomically, mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    staged(path, contents)?
        .persist(path)
        .map(drop)
        .map_err(|error| error.error)
}

/// Creates `path` with `contents`, mode 0600, only if it does not exist yet; two racing
/// creators cannot both succeed and neither can observe a half-written file
/// (`AlreadyExists` for the loser).
pub fn create_private(path: &Path, contents: &[u8]) -> io::Result<()> {
    staged(path, contents)?
        .persist_noclobber(path)
        .map(drop)
        .map_err(|error| error.error)
}

/// The trimmed secret stored at `path`, or a new one from `generate`, stored there first.
/// Returns the secret and whether it was just created.
pub fn read_or_create_secret(
    path: &Path,
    generate: impl FnOnce() -> String,
) -> io::Result<(String, bool)> {
    if let Some(stored) = read_secret(path)? {
        return Ok((stored, false));
    }
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        fs::create_dir_all(parent)?;
    }
    let secret = generate();
    match create_private(path, secret.as_bytes()) {
        Ok(()) => Ok((secret, true)),
        // Another process created it first: use theirs.
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            let stored = read_secret(path)?.ok_or(error)?;
            Ok((stored, false))
        }
        Err(error) => Err(error),
    }
}

fn read_secret(path: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => Ok(Some(text.trim().to_owned())),
        Ok(_) => Ok(None),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// The contents written and synced to an owner-only temporary file beside `path`.
fn staged(path: &Path, contents: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    // tempfile creates its files with mode 0600, independent of the umask.
    let mut file = tempfile::Builder::new()
        .prefix(".clawfleet-")
        .suffix(".tmp")
        .tempfile_in(folder)?;
    file.write_all(contents)?;
    file.as_file().sync_all()?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn written_files_are_owner_only_and_replaced_whole() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("config.json");
        write_private(&path, b"first").unwrap();
        write_private(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(mode(&path), PRIVATE_FILE_MODE);
        let leftovers = fs::read_dir(folder.path()).unwrap().count();
        assert_eq!(leftovers, 1, "no temporary file is left behind");
    }

    #[test]
    fn creating_never_overwrites() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("identity");
        create_private(&path, b"mine").unwrap();
        let error = create_private(&path, b"theirs").unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).unwrap(), b"mine");
        assert_eq!(mode(&path), PRIVATE_FILE_MODE);
    }

    #[test]
    fn secrets_are_generated_once_then_read_back() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("nested").join("api-key");
        let (first, created) = read_or_create_secret(&path, || "generated".into()).unwrap();
        assert_eq!((first.as_str(), created), ("generated", true));
        let (again, created) = read_or_create_secret(&path, || "other".into()).unwrap();
        assert_eq!((again.as_str(), created), ("generated", false));
        assert_eq!(mode(&path), PRIVATE_FILE_MODE);
    }

    #[test]
    fn private_folders_are_owner_only_even_when_they_existed() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("a").join("b");
        fs::create_dir_all(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&path).unwrap();
        assert_eq!(mode(&path), PRIVATE_DIR_MODE);
    }
}
