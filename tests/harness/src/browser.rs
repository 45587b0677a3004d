//! Real headless Chromium for tests, driven over WebDriver by Debian's chromedriver (its
//! W3C JSON over HTTP on loopback, spoken here with a small blocking client).
//!
//! Each [`Browser`] is its own chromedriver process and Chromium profile: a fresh
//! `--user-data-dir` and a fresh `HOME`, whose NSS database (`~/.pki/nssdb`, where Chromium
//! on Linux keeps certificates) trusts the coordinator's CA and, for an admin's browser,
//! holds the admin's client certificate (imported with Debian's `openssl` and NSS tools),
//! with the profile's `auto_select_certificate` setting naming the dashboard's origin so
//! Chromium presents it without a picker (headless Chromium cannot show one). Chromium
//! runs with the flags this closed network needs (no background connections).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::{Owned, free_port};

/// Flags for Chromium as root on a machine without network: no sandbox (root), no GPU, and
/// none of the background connections that would be refused.
pub const CHROMIUM_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
];

/// Where a test's artifacts go: `target/<profile>/artifacts/<name>` beside the test
/// executable (created).
pub fn artifacts_dir(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable");
    let profile = exe
        .ancestors()
        .find(|dir| dir.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .unwrap_or_else(|| exe.parent().expect("a directory"));
    let dir = profile.join("artifacts").join(name);
    std::fs::create_dir_all(&dir).expect("the artifacts directory");
    dir
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} ({e}): install it (tests/setup.sh)"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An admin's certificate for a browser: PEM certificate and key, and the origin
/// (`https://127.0.0.1:PORT`) Chromium presents it to.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    pub certificate_pem: PathBuf,
    pub key_pem: PathBuf,
    pub origin: String,
    /// The issuer's common name (the coordinator's CA).
    pub issuer_cn: String,
}

/// A Chromium session.
#[derive(Debug)]
pub struct Browser {
    driver: Owned,
    port: u16,
    session: String,
    /// Chromium's own process, ended by its PID if closing the session left it running.
    chromium: Option<i32>,
    pub dir: PathBuf,
}

/// One HTTP/1.1 exchange with chromedriver: (status, JSON body). chromedriver keeps the
/// connection open, so the body is read by its length (or its chunks).
fn exchange(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    use std::io::BufRead;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver answers");
    stream
        .set_read_timeout(Some(Duration::from_secs(150)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("a status line");
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {line:?}"));
    let (mut length, mut chunked) = (None, false);
    loop {
        line.clear();
        reader.read_line(&mut line).expect("a header");
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap_or((header, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse::<usize>().ok(),
            "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
            _ => {}
        }
    }
    let mut content = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).expect("a chunk size");
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .expect("a chunk size");
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).expect("a chunk");
            if size == 0 {
                break;
            }
            content.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        content.resize(length, 0);
        reader.read_exact(&mut content).expect("the body");
    } else {
        reader.read_to_end(&mut content).expect("the body");
    }
    let value = serde_json::from_slice(&content).unwrap_or(Value::Null);
    (status, value)
}

impl Browser {
    /// Starts chromedriver and a Chromium session in `dir`, trusting the CA at `ca_pem` and,
    /// with `client`, holding that certificate for its origin.
    pub fn start(dir: &Path, ca_pem: &Path, client: Option<&ClientCertificate>) -> Browser {
        let home = dir.join("home");
        let nssdb = home.join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let db = format!("sql:{}", nssdb.display());
        run("certutil", &["-N", "-d", &db, "--empty-password"]);
        run(
            "certutil",
            &[
                "-A",
                "-d",
                &db,
                "-n",
                "lfleet-ca",
                "-t",
                "C,,",
                "-i",
                ca_pem.to_str().unwrap(),
            ],
        );
        let profile = dir.join("profile");
        std::fs::create_dir_all(profile.join("Default")).unwrap();
        if let Some(client) = client {
            let p12 = dir.join("admin.p12");
            run(
                "openssl",
                &[
                    "pkcs12",
                    "-export",
                    "-in",
                    client.certificate_pem.to_str().unwrap(),
                    "-inkey",
                    client.key_pem.to_str().unwrap(),
                    "-out",
                    p12.to_str().unwrap(),
                    "-passout",
                    "pass:",
                    "-name",
                    "lfleet-admin",
                ],
            );
            run(
                "pk12util",
                &["-i", p12.to_str().unwrap(), "-d", &db, "-W", ""],
            );
            // What the AutoSelectCertificateForUrls policy would set, as the profile's own
            // content setting: present the CA's certificate to this origin, no picker.
            let preferences = json!({"profile": {"content_settings": {"exceptions": {
                "auto_select_certificate": {
                    format!("{},*", client.origin): {"setting": {"filters": [
                        {"ISSUER": {"CN": client.issuer_cn}}
                    ]}}
                }
            }}}});
            std::fs::write(profile.join("Default/Preferences"), preferences.to_string()).unwrap();
        }
        let port = free_port();
        let driver = Owned(
            Command::new("chromedriver")
                .arg(format!("--port={port}"))
                .env("HOME", &home)
                .stdout(Stdio::null())
                .stderr(Stdio::from(
                    std::fs::File::create(dir.join("chromedriver.log")).unwrap(),
                ))
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("chromedriver ({e}): install chromium-driver (tests/setup.sh)")
                }),
        );
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && exchange(port, "GET", "/status", None).1["value"]["ready"] == true
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push("--window-size=1400,1000".into());
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let (status, answer) = exchange(port, "POST", "/session", Some(&capabilities));
        assert_eq!(status, 200, "no Chromium session: {answer}");
        let session = answer["value"]["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        let browser = Browser {
            driver,
            port,
            session,
            chromium: answer["value"]["capabilities"]["goog:processID"]
                .as_i64()
                .map(|pid| pid as i32),
            dir: dir.to_path_buf(),
        };
        browser.command(
            "POST",
            "timeouts",
            json!({"script": 60_000, "pageLoad": 60_000}),
        );
        browser
    }

    /// A WebDriver command of this session; its `value`.
    pub fn command(&self, method: &str, command: &str, body: Value) -> Value {
        let path = format!("/session/{}/{command}", self.session);
        let body = (method == "POST").then_some(&body);
        let (status, answer) = exchange(self.port, method, &path, body);
        assert_eq!(status, 200, "WebDriver {method} {command}: {answer}");
        answer["value"].clone()
    }

    /// Navigates and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.command("POST", "url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its return value.
    pub fn eval(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Runs `script` with a callback as its last argument (for promises); what it passed.
    pub fn eval_async(&self, script: &str, args: Value) -> Value {
        self.command(
            "POST",
            "execute/async",
            json!({"script": script, "args": args}),
        )
    }

    /// Evaluates `script` every 100 ms until it returns something truthy; how long it took
    /// and the value. Panics with `what` and the page's text after `limit`.
    pub fn wait_for(&self, what: &str, script: &str, limit: Duration) -> (Duration, Value) {
        let started = Instant::now();
        loop {
            let value = self.eval(script, json!([]));
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return (started.elapsed(), value);
            }
            if started.elapsed() > limit {
                panic!(
                    "not within {limit:?}: {what}\n--- page text:\n{}",
                    self.text()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.eval(
            "return document.body ? document.body.innerText : ''",
            json!([]),
        )
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Clicks the first element `css` selects.
    pub fn click(&self, css: &str) {
        let element = self.command(
            "POST",
            "element",
            json!({"using": "css selector", "value": css}),
        );
        let id = element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}: {element}"))
            .to_owned();
        self.command("POST", &format!("element/{id}/click"), json!({}));
    }

    /// A PNG of the whole page (beyond the window) written to `path`.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let shot = self.command(
            "POST",
            "goog/cdp/execute",
            json!({"cmd": "Page.captureScreenshot", "params": {"format": "png", "captureBeyondViewport": true}}),
        );
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends Chromium; then chromedriver is ended by its PID.
        let _ = exchange(
            self.port,
            "DELETE",
            &format!("/session/{}", self.session),
            None,
        );
        if let Some(pid) = self.chromium {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        self.driver.stop();
    }
}
