//! ExecInInstance on Kubernetes: `pods/exec` into the gateway container over a
//! WebSocket, with stdin, captured and bounded stdout/stderr, the exit code from the
//! final status, and a timeout.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::AttachParams;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::{api::ClusterApi, failure::ApiFailure, manifests::GATEWAY_CONTAINER};
use crate::{
    instance_id::InstanceId,
    runtime::{ExecOutput, ExecRequest, RuntimeError},
};

/// Exit code reported when the command could not be started (as a shell would).
const NOT_RUNNABLE: i32 = 127;
/// Exit code reported for a timeout (as `timeout(1)` would).
const TIMED_OUT: i32 = 124;

pub fn validate(request: &ExecRequest) -> Result<(), RuntimeError> {
    match request.argv.first() {
        None => Err(RuntimeError::InvalidExec("argv is empty".into())),
        Some(program) if program.is_empty() => Err(RuntimeError::InvalidExec(
            "argv holds an empty program".into(),
        )),
        Some(_) if request.argv.iter().any(|arg| arg.contains('\0')) => {
            Err(RuntimeError::InvalidExec("argv holds a nul byte".into()))
        }
        Some(_) => Ok(()),
    }
}

pub async fn exec_in_pod(
    api: &ClusterApi,
    id: &InstanceId,
    pod: &str,
    request: ExecRequest,
) -> Result<ExecOutput, RuntimeError> {
    validate(&request)?;
    let params = AttachParams::default()
        .container(GATEWAY_CONTAINER)
        .stdin(!request.stdin.is_empty())
        .stdout(true)
        .stderr(true);
    let limit = request.output_limit_bytes;
    let run = async {
        let mut process = api
            .exec(pod, request.argv.clone(), &params)
            .await
            .map_err(|failure| refused(id, pod, failure))?;
        let status = process.take_status();
        let feed = {
            let stdin = process.stdin();
            let input = request.stdin.clone();
            async move {
                if let Some(mut stdin) = stdin {
                    // A command that does not read its input closes it; that is fine.
                    let _ = stdin.write_all(&input).await;
                    let _ = stdin.shutdown().await;
                }
            }
        };
        let (_, stdout, stderr) = tokio::join!(
            feed,
            read_capped(process.stdout(), limit),
            read_capped(process.stderr(), limit)
        );
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        let _ = process.join().await;
        let broken = |error: std::io::Error| {
            tracing::warn!(instance = %id, pod, %error, "exec stream broke");
            RuntimeError::Unavailable(format!(
                "the exec session in pod {pod} broke off; retry shortly"
            ))
        };
        let (stdout, stdout_cut) = stdout.map_err(broken)?;
        let (mut stderr, stderr_cut) = stderr.map_err(broken)?;
        let exit_code = exit_code(status, &mut stderr, pod)?;
        Ok::<_, RuntimeError>(ExecOutput {
            exit_code,
            stdout,
            stderr,
            truncated: stdout_cut || stderr_cut,
            timed_out: false,
        })
    };
    match tokio::time::timeout(request.timeout, run).await {
        Ok(result) => result,
        // Dropping the future closes the WebSocket; the kubelet ends the exec session.
        Err(_) => Ok(ExecOutput {
            exit_code: TIMED_OUT,
            timed_out: true,
            ..ExecOutput::default()
        }),
    }
}

/// The exit code the final status reports. A session that ended without a status (the
/// stream broke, the API server went away) is an error: the command's outcome is
/// unknown, and reading it as exit 0 would report a failed command as a success.
fn exit_code(status: Option<Status>, stderr: &mut Vec<u8>, pod: &str) -> Result<i32, RuntimeError> {
    match status {
        None => Err(RuntimeError::Unavailable(format!(
            "the exec session in pod {pod} ended without an exit status; retry shortly"
        ))),
        Some(status) if status.status.as_deref() == Some("Success") => Ok(0),
        Some(status) => Ok(exit_code_of(&status).unwrap_or_else(|| {
            // Not started at all: say why on stderr, like a shell.
            stderr.extend_from_slice(status.message.unwrap_or_default().as_bytes());
            NOT_RUNNABLE
        })),
    }
}

/// `NonZeroExitCode` statuses carry the code as the `ExitCode` cause.
fn exit_code_of(status: &Status) -> Option<i32> {
    if status.reason.as_deref() != Some("NonZeroExitCode") {
        return None;
    }
    status
        .details
        .as_ref()?
        .causes
        .as_ref()?
        .iter()
        .find(|cause| cause.reason.as_deref() == Some("ExitCode"))?
        .message
        .as_ref()?
        .parse()
        .ok()
}

/// The pod the cache chose went away or its container stopped between the choice and
/// the exec (404, or the kubelet's 400): the instance is restarting, not missing.
fn refused(id: &InstanceId, pod: &str, failure: ApiFailure) -> RuntimeError {
    match failure.http_status() {
        Some(400 | 404) => {
            tracing::info!(instance = %id, pod, error = %failure, "exec target went away");
            RuntimeError::NotRunning {
                id: id.clone(),
                reason: format!("its pod {pod} stopped running"),
            }
        }
        _ => failure.into(),
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

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    use super::*;

    fn failed_with(code: &str) -> Status {
        Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some(code.into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        }
    }

    #[test]
    fn a_session_without_a_status_is_an_error_not_a_success() {
        let mut stderr = Vec::new();
        let error = exit_code(None, &mut stderr, "alice-0").unwrap_err();
        assert!(
            matches!(&error, RuntimeError::Unavailable(message) if message.contains("without an exit status")),
            "{error}"
        );
    }

    #[test]
    fn statuses_give_the_exit_code() {
        let mut stderr = Vec::new();
        let success = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(success), &mut stderr, "p").unwrap(), 0);
        assert_eq!(
            exit_code(Some(failed_with("3")), &mut stderr, "p").unwrap(),
            3
        );
        let not_started = Status {
            status: Some("Failure".into()),
            message: Some("executable file not found".into()),
            ..Status::default()
        };
        assert_eq!(
            exit_code(Some(not_started), &mut stderr, "p").unwrap(),
            NOT_RUNNABLE
        );
        assert_eq!(stderr, b"executable file not found");
    }
}
