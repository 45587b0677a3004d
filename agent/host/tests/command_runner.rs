//! Real-process tests of `SystemCommandRunner`: deadlines kill the whole process group,
//! arguments reach the program byte for byte, failures carry status and output.
#![allow(
    clippy::disallowed_methods,
    reason = "the test inspects real processes under /proc, outside any node root"
)]

use std::time::Duration;

use lfleet_host::{CommandError, CommandRunner, CommandSpec, ExitStatus, SystemCommandRunner};

fn runner() -> SystemCommandRunner {
    SystemCommandRunner::new("/usr/bin:/bin")
}

#[tokio::test]
async fn a_command_past_its_deadline_is_killed_and_reported_within_a_second() {
    let deadline = Duration::from_millis(500);
    let spec = CommandSpec::new("sleep", deadline).arg("30");
    let started = std::time::SystemTime::now();
    let err = runner().run(&spec).await.unwrap_err();
    let elapsed = started.elapsed().unwrap();
    assert!(err.is_timeout(), "{err}");
    assert!(
        elapsed >= deadline,
        "returned before the deadline: {elapsed:?}"
    );
    assert!(
        elapsed < deadline + Duration::from_secs(1),
        "took {elapsed:?} for a {deadline:?} deadline"
    );
    assert_eq!(
        err.to_string(),
        "sleep 30: timed out after 500ms and was killed"
    );
}

fn process_is_alive(pid: i32) -> bool {
    // A zombie still has a /proc entry; read its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .split_whitespace()
                .next();
            state != Some("Z")
        }
        Err(_) => false,
    }
}

#[tokio::test]
async fn the_deadline_kills_grandchildren_too_and_keeps_partial_output() {
    // The shell starts a background sleep, prints its PID, and waits.
    let spec = CommandSpec::new("sh", Duration::from_millis(700))
        .args(["-c", "sleep 60 & echo $!; echo started >&2; wait"]);
    let err = runner().run(&spec).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert_eq!(err.stderr(), "started\n");
    let grandchild: i32 = err.stdout().trim().parse().expect("pid on stdout");
    // SIGKILL delivery is asynchronous; give the kernel a moment, boundedly.
    let mut alive = true;
    for _ in 0..50 {
        alive = process_is_alive(grandchild);
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive, "grandchild {grandchild} survived the deadline");
}

#[tokio::test]
async fn arguments_with_spaces_quotes_and_semicolons_arrive_unchanged() {
    let tricky = [
        "two words",
        "it's",
        "\"double\"",
        "a;b",
        "; rm -rf /",
        "$(id)",
        "`id`",
        "back\\slash",
        "*",
        "",
        "tab\there",
        "new\nline",
    ];
    // printf prints each argument between markers; no shell is involved anywhere.
    let spec = CommandSpec::new("printf", Duration::from_secs(5))
        .arg("<%s>\n")
        .args(tricky);
    let output = runner().run(&spec).await.unwrap();
    let expected: String = tricky.iter().map(|arg| format!("<{arg}>\n")).collect();
    assert_eq!(output.stdout, expected);
}

#[tokio::test]
async fn a_failing_command_reports_command_status_stdout_and_stderr() {
    let spec = CommandSpec::new("sh", Duration::from_secs(5))
        .args(["-c", "echo out; echo 'E: broken' >&2; exit 100"]);
    let err = runner().run(&spec).await.unwrap_err();
    match &err {
        CommandError::Exited {
            command,
            status,
            stdout,
            stderr,
        } => {
            assert_eq!(
                command,
                "sh -c 'echo out; echo '\\''E: broken'\\'' >&2; exit 100'"
            );
            assert_eq!(*status, ExitStatus::Code(100));
            assert_eq!(stdout, "out\n");
            assert_eq!(stderr, "E: broken\n");
        }
        other => panic!("expected Exited, got {other:?}"),
    }
    assert!(
        err.to_string()
            .ends_with("failed with exit code 100: E: broken"),
        "{err}"
    );
}

#[tokio::test]
async fn a_program_missing_from_the_search_path_is_not_found_and_nothing_runs() {
    let dir = tempfile::tempdir().unwrap();
    let runner = SystemCommandRunner::new(dir.path().as_os_str());
    let err = runner
        .run(&CommandSpec::new("sleep", Duration::from_secs(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, CommandError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
}

#[tokio::test]
async fn children_see_the_search_path_stdin_and_extra_environment() {
    let dir = tempfile::tempdir().unwrap();
    let search = format!("{}:/usr/bin:/bin", dir.path().display());
    let spec = CommandSpec::new("sh", Duration::from_secs(5))
        .args(["-c", "echo \"$PATH|$LC_ALL|$EXTRA\"; cat"])
        .env("EXTRA", "x y")
        .stdin("from stdin\n");
    let output = SystemCommandRunner::new(search.clone())
        .with_env("EXTRA", "from the runner")
        .run(&spec)
        .await
        .unwrap();
    // The spec's own variables win over the runner's.
    assert_eq!(output.stdout, format!("{search}|C|x y\nfrom stdin\n"));
    let base = CommandSpec::new("sh", Duration::from_secs(5)).args(["-c", "echo \"$BASE\""]);
    let output = SystemCommandRunner::new(search.clone())
        .with_env("BASE", "set on the runner")
        .run(&base)
        .await
        .unwrap();
    assert_eq!(output.stdout, "set on the runner\n");
}

#[tokio::test]
async fn output_beyond_the_limit_is_dropped_not_buffered() {
    let spec = CommandSpec::new("head", Duration::from_secs(5)).args(["-c", "100000", "/dev/zero"]);
    let output = runner().with_output_limit(1000).run(&spec).await.unwrap();
    assert_eq!(output.stdout.len(), 1000);
}

#[tokio::test]
async fn a_cancelled_run_kills_its_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 60", pid_file.display());
    let spec = CommandSpec::new("sh", Duration::from_secs(60)).args(["-c", &script]);
    let runner = runner();
    // Cancel the run by dropping its future once the child has written its PID.
    let _ = tokio::time::timeout(Duration::from_millis(500), runner.run(&spec)).await;
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut alive = true;
    for _ in 0..50 {
        alive = process_is_alive(pid);
        if !alive {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!alive, "process {pid} survived the cancelled run");
}
