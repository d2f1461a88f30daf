//! The programs a virtual display needs, found on `PATH`.

use std::{ffi::OsStr, os::unix::fs::PermissionsExt, path::PathBuf};

/// Where Debian's `novnc` package puts the web client.
const NOVNC_WEB_DIR: &str = "/usr/share/novnc";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VncTools {
    pub xvfb: PathBuf,
    pub x11vnc: PathBuf,
    pub websockify: PathBuf,
    /// The NoVNC web client, served by websockify when installed.
    pub novnc_web: Option<PathBuf>,
}

impl VncTools {
    /// Looks the tools up on this process's `PATH`; `None` when one is missing.
    pub fn detect() -> Option<Self> {
        Self::detect_in(&std::env::var_os("PATH")?)
    }

    pub(crate) fn detect_in(search_path: &OsStr) -> Option<Self> {
        Some(Self {
            xvfb: find_program(search_path, "Xvfb")?,
            x11vnc: find_program(search_path, "x11vnc")?,
            websockify: find_program(search_path, "websockify")?,
            novnc_web: Some(PathBuf::from(NOVNC_WEB_DIR)).filter(|dir| dir.is_dir()),
        })
    }
}

fn find_program(search_path: &OsStr, name: &str) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|metadata| {
                metadata.is_file() && metadata.permissions().mode() & 0o111 != 0
            })
        })
}
