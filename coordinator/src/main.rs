//! `lfleet-coordinator`: the per-cluster daemon.
//!
//! - `lfleet-coordinator [--config FILE] [--listen ADDR] [--data-dir DIR] [--admin-socket PATH]`:
//!   serve until SIGTERM. Prints `listening on ADDR` (and `metrics on ADDR`, `dashboard on
//!   http://ADDR/`) once bound.
//! - `lfleet-coordinator admin-cert NAME --out DIR`: an operator's certificate and key.
//! - `lfleet-coordinator [--config FILE] check-config`: check the file and exit (0 valid, 2
//!   with every error); nothing is made or changed. Cluster-init checks what it wrote.
//!
//! On first start it makes its CA in the data directory and a join token in the token file
//! (when absent); a bad config file is refused whole and nothing starts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use lfleet_coordinator::app::{Coordinator, Enrollment};
use lfleet_coordinator::{config, dashboard, pki::Pki, server, store::Store};
use lfleet_host::{HostRoot, SystemClock, SystemCommandRunner};
use lfleet_types::ErrorChain;

#[derive(Debug, Parser)]
#[command(
    name = "lfleet-coordinator",
    version,
    about = "The lfleet coordinator."
)]
struct Cli {
    #[arg(long, default_value = "/etc/lfleet/coordinator.toml")]
    config: PathBuf,
    /// Overrides [server].listen.
    #[arg(long)]
    listen: Option<String>,
    /// Overrides [server].data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Overrides [server].admin_socket.
    #[arg(long)]
    admin_socket: Option<PathBuf>,
    /// Overrides [server].join_token_file.
    #[arg(long)]
    join_token_file: Option<PathBuf>,
    /// Also write JSON logs to daily files in this directory.
    #[arg(long)]
    log_dir: Option<PathBuf>,
    /// Overrides [server].metrics_listen.
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Overrides [server].dashboard_listen (an IP address and port; "" turns it off).
    #[arg(long)]
    dashboard_listen: Option<String>,
    /// Make the desired state in coordinator.toml the running configuration (a new
    /// generation) when it differs from the stored one; without it the store wins and the
    /// difference is reported.
    #[arg(long)]
    take_config_from_file: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Issue an operator's certificate (`admin.pem`, `admin.key`, `ca.pem` in DIR).
    AdminCert {
        name: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 24 * 30)]
        hours: u32,
    },
    /// Check the configuration file and exit: 0 valid, 2 with every error. Changes nothing.
    CheckConfig,
}

fn load(cli: &Cli) -> Result<config::CoordinatorFile, String> {
    // As the operator gave it: relative to the working directory.
    let path =
        std::path::absolute(&cli.config).map_err(|e| format!("{}: {e}", cli.config.display()))?;
    let text = HostRoot::new("/")
        .read_optional(&path)
        .map_err(|e| lfleet_types::error_chain(&e))?
        .ok_or_else(|| format!("{} does not exist", cli.config.display()))?;
    let mut file = config::parse(&text).map_err(|errors| {
        errors
            .0
            .iter()
            .map(|e| format!("{}: {e}", cli.config.display()))
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let server = &mut file.server;
    if let Some(listen) = &cli.listen {
        server.listen = listen.clone();
    }
    if let Some(dir) = &cli.data_dir {
        server.data_dir = dir.clone();
    }
    if let Some(socket) = &cli.admin_socket {
        server.admin_socket = socket.clone();
    }
    if let Some(token) = &cli.join_token_file {
        server.join_token_file = token.clone();
    }
    if let Some(metrics) = &cli.metrics_listen {
        server.metrics_listen = Some(metrics.clone());
    }
    if let Some(dashboard) = &cli.dashboard_listen {
        server.dashboard_listen = dashboard.clone();
    }
    // The file was checked whole; a flag is checked here, before anything is made.
    config::dashboard_address(&server.dashboard_listen, server.dashboard_tls)
        .map_err(|e| format!("server.dashboard_listen: {e}"))?;
    Ok(file)
}

/// The join token: read, or made (32 random hex bytes, mode 0600) when the file is absent.
fn join_token(path: &std::path::Path) -> Result<String, String> {
    let files = HostRoot::new("/");
    if let Some(text) = files
        .read_optional(path)
        .map_err(|e| lfleet_types::error_chain(&e))?
    {
        let token = text.trim().to_owned();
        if token.len() < 16 {
            return Err(format!(
                "{}: a join token is at least 16 characters",
                path.display()
            ));
        }
        return Ok(token);
    }
    let token: String = (0..32)
        .map(|_| format!("{:02x}", rand::random::<u8>()))
        .collect();
    if let Some(parent) = path.parent() {
        files
            .create_dir_all(parent, 0o755)
            .map_err(|e| lfleet_types::error_chain(&e))?;
    }
    files
        .write_atomic(path, format!("{token}\n").as_bytes(), 0o600)
        .map_err(|e| lfleet_types::error_chain(&e))?;
    Ok(token)
}

async fn run(cli: Cli) -> Result<(), String> {
    let file = load(&cli)?;
    if let Some(Command::CheckConfig) = &cli.command {
        println!("{}: valid", cli.config.display());
        return Ok(());
    }
    let server = file.server.clone();
    let pki = Pki::load_or_create(&server.data_dir, &server.server_names)
        .map_err(|e| lfleet_types::error_chain(&e))?;
    if let Some(Command::AdminCert { name, out, hours }) = &cli.command {
        let issued = pki
            .issue_admin(name, *hours)
            .map_err(|e| lfleet_types::error_chain(&e))?;
        // Recorded before it is handed out, so `lfleet certs` lists it and a revocation of
        // this operator covers it.
        let store = Store::open(&server.data_dir.join("coordinator.db"))
            .map_err(|e| ErrorChain(&e).to_string())?;
        lfleet_coordinator::identity::record_admin(
            &store,
            name,
            &issued.serial,
            issued.not_after_unix,
            lfleet_host::Clock::wall_unix_ms(&SystemClock) as i64,
        )
        .map_err(|e| ErrorChain(&e).to_string())?;
        store.close().map_err(|e| ErrorChain(&e).to_string())?;
        let (cert, key) = (issued.certificate_pem, issued.key_pem);
        let files = HostRoot::new("/");
        files
            .create_dir_all(out, 0o700)
            .map_err(|e| lfleet_types::error_chain(&e))?;
        for (file, text, mode) in [
            ("admin.pem", &cert, 0o644),
            ("admin.key", &key, 0o600),
            ("ca.pem", &pki.ca_pem, 0o644),
        ] {
            files
                .write_atomic(out.join(file), text.as_bytes(), mode)
                .map_err(|e| lfleet_types::error_chain(&e))?;
        }
        println!("wrote {}/admin.pem, admin.key and ca.pem", out.display());
        return Ok(());
    }
    let token = join_token(&server.join_token_file)?;
    let store = Arc::new(
        Store::open(&server.data_dir.join("coordinator.db"))
            .map_err(|e| ErrorChain(&e).to_string())?,
    );
    let coordinator = Arc::new(
        Coordinator::start(
            file,
            store.clone(),
            pki,
            Enrollment {
                file_token: token,
                token_file: server.join_token_file.clone(),
                certificate_seconds: server.agent_certificate_lifetime_seconds(),
            },
            cli.take_config_from_file,
            Arc::new(SystemClock),
            Arc::new(SystemCommandRunner::from_env()),
        )
        .map_err(|e| ErrorChain(&e).to_string())?,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let drains = tokio::spawn(coordinator.clone().run_drains(stop_rx.clone()));
    let slow = tokio::spawn(coordinator.clone().run_slow(stop_rx));
    let shutdown = async move {
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = terminate => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        let _ = stop_tx.send(true);
    };
    let served = server::serve(
        coordinator.clone(),
        &server,
        |bound| {
            println!("listening on {}", bound.grpc);
            if let Some(metrics) = bound.metrics {
                println!("metrics on {metrics}");
            }
            match &bound.dashboard {
                dashboard::Started::Serving { url, .. } => println!("dashboard on {url}"),
                dashboard::Started::Unavailable(why) => println!("dashboard unavailable: {why}"),
                dashboard::Started::Off => {}
            }
            tracing::info!(address = %bound.grpc, "coordinator listening");
        },
        shutdown,
    )
    .await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = tokio::join!(drains, slow);
    })
    .await;
    coordinator.shut_down();
    store.close().map_err(|e| ErrorChain(&e).to_string())?;
    served
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _logs = lfleet_host::init_logging("lfleet-coordinator", "info", cli.log_dir.as_deref());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("lfleet-coordinator: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lfleet-coordinator: {message}");
            ExitCode::from(2)
        }
    }
}
