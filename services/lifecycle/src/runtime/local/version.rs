//! The openclaw version the local runtime runs: the `version` of the `openclaw` package
//! the configured executable belongs to (the toolchain's `node_modules/openclaw`),
//! recorded in every backup's manifest (docs/product/backups.md#versions).

use std::path::Path;

/// The version of the openclaw package `program` belongs to, or `unknown`.
pub fn openclaw_version(program: &Path) -> String {
    // `node_modules/.bin/openclaw` links to `node_modules/openclaw/openclaw.mjs`.
    let resolved = std::fs::canonicalize(program).unwrap_or_else(|_| program.to_owned());
    resolved
        .ancestors()
        .skip(1)
        .take(4)
        .find_map(|dir| package_version(&dir.join("package.json")))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn package_version(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let package: serde_json::Value = serde_json::from_str(&text).ok()?;
    (package.get("name")?.as_str()? == "openclaw")
        .then(|| package.get("version")?.as_str().map(str::to_owned))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_comes_from_the_package_the_executable_belongs_to() {
        let root = tempfile::tempdir().expect("tempdir");
        let package = root.path().join("node_modules/openclaw");
        std::fs::create_dir_all(&package).expect("mkdir");
        std::fs::write(
            package.join("package.json"),
            r#"{"name":"openclaw","version":"2026.9.6"}"#,
        )
        .expect("write");
        std::fs::write(package.join("openclaw.mjs"), "").expect("write");
        let bin = root.path().join("node_modules/.bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        std::os::unix::fs::symlink("../openclaw/openclaw.mjs", bin.join("openclaw")).expect("link");
        assert_eq!(openclaw_version(&bin.join("openclaw")), "2026.9.6");
        assert_eq!(openclaw_version(&root.path().join("missing")), "unknown");
    }
}
