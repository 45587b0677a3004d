//! systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram to the socket in
//! `NOTIFY_SOCKET` (a path, or `@name` for an abstract socket). Nothing is sent, and nothing
//! fails, when the variable is absent (not run by systemd).

use std::os::unix::net::UnixDatagram;

/// Sends `state` (`READY=1`, `WATCHDOG=1`, `STATUS=...`) when run by systemd; returns whether
/// it was sent.
pub fn sd_notify(state: &str) -> bool {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(datagram) = UnixDatagram::unbound() else {
        return false;
    };
    let socket = socket.to_string_lossy().into_owned();
    let sent = match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|address| datagram.send_to_addr(state.as_bytes(), &address))
        }
        None => datagram.send_to(state.as_bytes(), &socket),
    };
    sent.is_ok()
}

/// systemd's watchdog period for this process (`WATCHDOG_USEC`, when `WATCHDOG_PID` is ours).
pub fn watchdog_period() -> Option<std::time::Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID")
        && pid.parse::<u32>().ok() != Some(std::process::id())
    {
        return None;
    }
    Some(std::time::Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_sent_without_systemd() {
        // The test runner is not run by systemd with a notify socket for this process.
        if std::env::var_os("NOTIFY_SOCKET").is_none() {
            assert!(!sd_notify("READY=1"));
        }
    }
}
