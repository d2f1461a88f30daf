//! Running a command inside a local instance: a child process with the instance's
//! state dir and environment (the local counterpart of pods/exec).

use std::process::Stdio;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use clawfleet_instance::confine::TenantIdentity;

use super::{
    LocalSettings,
    layout::InstanceLayout,
    tenancy::{self, confinement_for},
};
use crate::{
    model::InstanceSpec,
    runtime::{ExecOutput, ExecRequest, RuntimeError},
};

/// Whom the command runs as: the instance's tenant, confined like its gateway.
pub struct Tenant {
    pub identity: Option<TenantIdentity>,
    /// The gateway's port while it runs (its slot is the tenant's to bind).
    pub port: Option<u16>,
}

/// Runs `request.argv`; `openclaw` as argv[0] means the instance's gateway CLI. With
/// confinement on, it runs as `clawfleet instance confine --spec <json> -- argv`: the
/// tenant's uid, Landlock ruleset and no_new_privs (docs/product/local-confinement.md).
pub async fn exec_in_instance(
    settings: &LocalSettings,
    layout: &InstanceLayout,
    spec: &InstanceSpec,
    tenant: Tenant,
    request: ExecRequest,
) -> Result<ExecOutput, RuntimeError> {
    let Some((program, args)) = request.argv.split_first() else {
        return Err(RuntimeError::InvalidExec("argv is empty".into()));
    };
    if program.is_empty() || request.argv.iter().any(|arg| arg.contains('\0')) {
        return Err(RuntimeError::InvalidExec(
            "argv holds an empty program or a nul byte".into(),
        ));
    }
    let program: &std::ffi::OsStr = if program == "openclaw" {
        settings.openclaw.program.as_os_str()
    } else {
        program.as_ref()
    };
    let mut command = match settings.confinement.policy {
        Some(policy) => {
            tenancy::prepare_openclaw_lock_dir(tenant.identity)?;
            let confinement = confinement_for(
                policy,
                layout,
                &settings.openclaw,
                &settings.ports,
                tenant.port,
                tenant.identity,
            );
            let mut command = tokio::process::Command::new(&settings.executable);
            command
                .args(["instance", "confine", "--spec"])
                .arg(confinement.to_json())
                .arg("--")
                .arg(program);
            command
        }
        None => tokio::process::Command::new(program),
    };
    command.args(args);
    settings
        .openclaw
        .apply_environment(&mut command, layout, spec);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let limit = request.output_limit_bytes;
    let input = request.stdin;
    let run = async move {
        let feed = async move {
            if let Some(mut pipe) = stdin.take() {
                // A command that does not read its input closes the pipe; that is fine.
                let _ = pipe.write_all(&input).await;
            }
        };
        let (_, out, err, status) = tokio::join!(
            feed,
            read_capped(stdout, limit),
            read_capped(stderr, limit),
            child.wait()
        );
        (out, err, status)
    };
    match tokio::time::timeout(request.timeout, run).await {
        Ok((Ok((stdout, stdout_cut)), Ok((stderr, stderr_cut)), status)) => {
            let status = status?;
            Ok(ExecOutput {
                exit_code: exit_code_of(status),
                stdout,
                stderr,
                truncated: stdout_cut || stderr_cut,
                timed_out: false,
            })
        }
        Ok((stdout, stderr, _)) => Err(RuntimeError::Io(
            stdout
                .err()
                .or(stderr.err())
                .unwrap_or_else(|| std::io::Error::other("exec output failed")),
        )),
        // Dropping the future drops the child, which kill_on_drop kills.
        Err(_) => Ok(ExecOutput {
            exit_code: 124,
            timed_out: true,
            ..ExecOutput::default()
        }),
    }
}

/// Reads a whole stream, keeping at most `limit` bytes; true when bytes were dropped.
async fn read_capped(
    stream: Option<impl AsyncRead + Unpin>,
    limit: usize,
) -> std::io::Result<(Vec<u8>, bool)> {
    let Some(mut stream) = stream else {
        return Ok((Vec::new(), false));
    };
    let mut kept = Vec::new();
    let mut truncated = false;
    let mut buffer = [0u8; 8192];
    loop {
        let read = stream.read(&mut buffer).await?;
        if read == 0 {
            return Ok((kept, truncated));
        }
        let room = limit.saturating_sub(kept.len());
        kept.extend_from_slice(&buffer[..read.min(room)]);
        truncated |= read > room;
    }
}

fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
