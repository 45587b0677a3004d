//! The running agent's control socket: a Unix socket under the node root that only root can
//! reach (mode 0600), through which local tools hand the running agent a one-line request
//! and read its one-line answer. The kernel hooks use it to hand over a newly installed
//! kernel without waiting for anything themselves.
//!
//! Entry points: [`HostRoot::bind_control`], [`ControlListener::accept`], [`request`], and
//! [`spawn_detached`] for when no agent answers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::root::{HostError, HostRoot};

/// The longest request line read.
const MAX_LINE: usize = 512;

fn io_error<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> HostError + 'a {
    move |source| HostError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A bound control socket.
#[derive(Debug)]
pub struct ControlListener {
    listener: UnixListener,
    path: PathBuf,
}

/// One request read from a client, to be answered once.
#[derive(Debug)]
pub struct ControlRequest {
    pub line: String,
    stream: BufReader<UnixStream>,
}

impl HostRoot {
    /// Binds the control socket at `node_path` (root-only). A socket file no agent answers
    /// on (left by one that died) is replaced; one an agent answers on is an error, so two
    /// agents never share a node.
    pub async fn bind_control(
        &self,
        node_path: impl AsRef<Path>,
    ) -> Result<ControlListener, HostError> {
        let path = self.resolve(node_path)?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io_error("create directory", parent))?;
        }
        if UnixStream::connect(&path).await.is_ok() {
            return Err(HostError::Io {
                op: "bind control socket",
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another lfleet-agent answers on it",
                ),
            });
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => return Err(io_error("remove stale socket", &path)(error)),
        }
        let listener = UnixListener::bind(&path).map_err(io_error("bind", &path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .map_err(io_error("chmod", &path))?;
        Ok(ControlListener { listener, path })
    }
}

impl ControlListener {
    /// The next request: a connection and its first line (read within 2 s; a client that
    /// sends nothing is dropped and the next one awaited).
    pub async fn accept(&self) -> std::io::Result<ControlRequest> {
        loop {
            let (stream, _) = self.listener.accept().await?;
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            let read = tokio::time::timeout(Duration::from_secs(2), async {
                let mut limited = (&mut stream).take(MAX_LINE as u64);
                limited.read_line(&mut line).await
            })
            .await;
            match read {
                Ok(Ok(n)) if n > 0 => {
                    return Ok(ControlRequest {
                        line: line.trim_end().to_owned(),
                        stream,
                    });
                }
                _ => continue,
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlListener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl ControlRequest {
    /// Sends the one-line answer and closes the connection.
    pub async fn reply(mut self, answer: &str) {
        let mut text = answer.replace('\n', " ");
        text.push('\n');
        let _ = self.stream.get_mut().write_all(text.as_bytes()).await;
        let _ = self.stream.get_mut().shutdown().await;
    }
}

/// Sends `line` to the control socket at `node_path` and returns the answer line; an error
/// when no agent answers within `timeout`.
pub async fn request(
    host: &HostRoot,
    node_path: impl AsRef<Path>,
    line: &str,
    timeout: Duration,
) -> Result<String, HostError> {
    let path = host.resolve(node_path)?;
    let exchange = async {
        let mut stream = UnixStream::connect(&path).await?;
        stream.write_all(format!("{line}\n").as_bytes()).await?;
        let mut answer = String::new();
        let mut reader = BufReader::new(stream).take(MAX_LINE as u64);
        reader.read_line(&mut answer).await?;
        Ok::<_, std::io::Error>(answer.trim_end().to_owned())
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result.map_err(io_error("ask the agent at", &path)),
        Err(_) => Err(io_error("ask the agent at", &path)(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer within {timeout:?}"),
        ))),
    }
}

/// Starts `program ARGS` in its own process group with no terminal input or output and does
/// not wait for it: work that must outlive its caller (a kernel hook that has to return at
/// once). The child is reparented to init when the caller exits.
pub fn spawn_detached(
    program: &Path,
    args: &[std::ffi::OsString],
    env: &[(String, String)],
) -> std::io::Result<u32> {
    use std::os::unix::process::CommandExt;
    let child = std::process::Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()?;
    Ok(child.id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_gets_its_answer_and_a_second_agent_cannot_bind() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let listener = host.bind_control("run/lfleet/agent.sock").await.unwrap();
        let mode = std::fs::metadata(listener.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let server = async {
            let request = listener.accept().await.unwrap();
            assert_eq!(request.line, "kernel-installed 6.8.0-1030-azure");
            request.reply("ok").await;
        };
        let client = request(
            &host,
            "run/lfleet/agent.sock",
            "kernel-installed 6.8.0-1030-azure",
            Duration::from_secs(2),
        );
        let ((), answer) = tokio::join!(server, client);
        assert_eq!(answer.unwrap(), "ok");
        let second = host
            .bind_control("run/lfleet/agent.sock")
            .await
            .unwrap_err();
        assert!(
            second.to_string().contains("bind control socket"),
            "{second}"
        );
    }

    #[tokio::test]
    async fn with_no_agent_a_request_fails_and_a_stale_socket_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostRoot::new(dir.path());
        let error = request(&host, "run/lfleet/agent.sock", "x", Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(error.is_not_found(), "{error}");
        // A socket file left by an agent that died: there, but nobody listens.
        let path = host.resolve("run/lfleet/agent.sock").unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert!(path.exists());
        let again = host.bind_control("run/lfleet/agent.sock").await;
        assert!(again.is_ok(), "{again:?}");
    }
}
