//! Logs of platforms started in the test process: one global subscriber (a process has
//! only one) whose lines go to the data dir of the platform started last, so a failing
//! test can show the tail of its platform's log as the binary's log file did.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::Path,
    sync::{Arc, Mutex, Once},
};

use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

static CURRENT: Mutex<Option<Arc<File>>> = Mutex::new(None);
static INSTALL: Once = Once::new();

/// Sends the process's logs to `path` (appending) from now on.
pub fn log_to(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    *CURRENT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Arc::new(file));
    INSTALL.call_once(|| {
        let filter = EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| EnvFilter::new("info,h2=warn,hyper=warn,tower=warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(CurrentLog)
            .try_init();
    });
    Ok(())
}

/// Writes to the current platform's log file, or nowhere before one exists.
#[derive(Clone, Copy)]
struct CurrentLog;

impl<'a> MakeWriter<'a> for CurrentLog {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        LogWriter(
            CURRENT
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .clone(),
        )
    }
}

struct LogWriter(Option<Arc<File>>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match &self.0 {
            Some(file) => (&**file).write(bytes),
            None => Ok(bytes.len()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &self.0 {
            Some(file) => (&**file).flush(),
            None => Ok(()),
        }
    }
}
