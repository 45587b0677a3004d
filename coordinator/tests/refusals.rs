//! What the coordinator refuses, each refusal followed by proof that a good agent is still
//! served (its session keeps delivering telemetry, so the coordinator's last-seen time for it
//! moves past the attack): plain TCP without TLS, random bytes, a wrong join token, a
//! certificate from another CA, node A's certificate saying Hello as node B, a 64 MiB message
//! (refused from its length, without the coordinator's memory growing by it), and operator
//! calls without operator identity (no certificate, a node's certificate, a user other than
//! root on the admin socket).
#![allow(
    clippy::disallowed_methods,
    reason = "the test talks raw TCP and TLS to the coordinator and reads its /proc entry"
)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lfleet_coordinator::pki::{Pki, node_csr};
use lfleet_harness::{
    Cluster, coordinator_binary, lfleet_binary, lfleet_json, now_ms, rss_kib, tls_channel,
};
use lfleet_proto::v1;
use lfleet_proto::v1::agent_service_client::AgentServiceClient;
use lfleet_proto::v1::fleet_service_client::FleetServiceClient;
use tonic::transport::Identity;

/// The good agent is still served: the coordinator hears from it after `since`, over TLS
/// with an admin certificate (so the TLS port itself still serves too).
fn still_served(cluster: &Cluster, admin: &std::path::Path, since: i64) {
    for _ in 0..80 {
        let output = std::process::Command::new(lfleet_binary())
            .args(["--server", &format!("https://{}", cluster.address)])
            .arg("--cert")
            .arg(admin.join("admin.pem"))
            .arg("--key")
            .arg(admin.join("admin.key"))
            .arg("--ca")
            .arg(admin.join("ca.pem"))
            .args(["nodes", "--json"])
            .output()
            .unwrap();
        let nodes = lfleet_json(&output);
        let good = nodes
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["name"] == "hpc-pg0-1")
            .expect("the good agent is listed");
        if good["connected"] == true && good["last_seen_unix_ms"].as_i64().unwrap() > since {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the good agent is no longer served");
}

/// Raw bytes to the TLS port: the connection must end without a gRPC answer.
fn raw(address: &str, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_leave_a_good_agent_served() {
    let cluster = Cluster::start(1);
    cluster.wait_until(
        "the good agent is healthy",
        Duration::from_secs(30),
        |nodes| nodes.len() == 1 && nodes[0]["health"] == "healthy",
    );
    let admin = cluster.dir.path().join("admin");
    let issued = std::process::Command::new(coordinator_binary())
        .arg("--config")
        .arg(cluster.dir.path().join("coordinator.toml"))
        .args(["admin-cert", "tester", "--out"])
        .arg(&admin)
        .output()
        .unwrap();
    assert!(issued.status.success(), "{issued:?}");
    let ca = std::fs::read_to_string(admin.join("ca.pem")).unwrap();
    let token = std::fs::read_to_string(cluster.dir.path().join("token"))
        .unwrap()
        .trim()
        .to_owned();
    let address = cluster.address.clone();

    // Plain TCP without TLS (an HTTP/2 preface in clear) and random bytes: no gRPC answer.
    for bytes in [
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00".to_vec(),
        (0..65_536u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect(),
    ] {
        let since = now_ms();
        let answer = raw(&address, &bytes);
        assert!(
            answer.is_empty() || answer[0] == 0x15,
            "answered something other than a TLS alert: {:?}",
            &answer[..answer.len().min(16)]
        );
        still_served(&cluster, &admin, since);
    }

    // A wrong join token.
    let since = now_ms();
    let (_, csr) = node_csr(&"rogue-a".parse().unwrap()).unwrap();
    let mut enroll = AgentServiceClient::new(tls_channel(&address, &ca, None).await.unwrap());
    let refused = enroll
        .enroll(v1::EnrollRequest {
            join_token: format!("{token}x"),
            node_name: "rogue-a".into(),
            csr_pem: csr.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    still_served(&cluster, &admin, since);

    // A real certificate for node A (rogue-a), then Hello as node B (the good agent).
    let (key_a, csr_a) = node_csr(&"rogue-a".parse().unwrap()).unwrap();
    let cert_a = enroll
        .enroll(v1::EnrollRequest {
            join_token: token.clone(),
            node_name: "rogue-a".into(),
            csr_pem: csr_a,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .certificate_pem;
    let since = now_ms();
    let channel_a = tls_channel(&address, &ca, Some(Identity::from_pem(&cert_a, &key_a)))
        .await
        .unwrap();
    let hello_as_b = v1::AgentMessage {
        seq: 1,
        body: Some(v1::agent_message::Body::Hello(v1::Hello {
            node_name: "hpc-pg0-1".into(),
            ..v1::Hello::default()
        })),
    };
    let refused = AgentServiceClient::new(channel_a.clone())
        .session(tokio_stream::iter(vec![hello_as_b]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(
        refused.message().contains("not \"hpc-pg0-1\""),
        "{refused:?}"
    );
    still_served(&cluster, &admin, since);

    // Operator calls without operator identity: no certificate, and a node's certificate.
    let since = now_ms();
    for channel in [
        tls_channel(&address, &ca, None).await.unwrap(),
        channel_a.clone(),
    ] {
        let refused = FleetServiceClient::new(channel)
            .list_nodes(v1::ListNodesRequest {
                unhealthy_only: false,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    }
    still_served(&cluster, &admin, since);

    // A certificate from another CA: the TLS handshake or the first call fails.
    let other = tempfile::tempdir().unwrap();
    let other_pki = Pki::load_or_create(other.path(), &["localhost".into()]).unwrap();
    let (key_x, csr_x) = node_csr(&"hpc-pg0-1".parse().unwrap()).unwrap();
    let (cert_x, _) = other_pki
        .sign_node(&"hpc-pg0-1".parse().unwrap(), &csr_x, 1)
        .unwrap();
    let since = now_ms();
    let foreign = match tls_channel(&address, &ca, Some(Identity::from_pem(&cert_x, &key_x))).await
    {
        Err(_) => true,
        Ok(channel) => AgentServiceClient::new(channel)
            .session(tokio_stream::iter(vec![v1::AgentMessage {
                seq: 1,
                body: Some(v1::agent_message::Body::Hello(v1::Hello {
                    node_name: "hpc-pg0-1".into(),
                    ..v1::Hello::default()
                })),
            }]))
            .await
            .is_err(),
    };
    assert!(foreign, "a certificate from another CA was accepted");
    still_served(&cluster, &admin, since);

    // A 64 MiB message on a valid session: refused from its length prefix.
    let pid = cluster.coordinator_pid();
    let before = rss_kib(pid);
    let since = now_ms();
    let huge = v1::AgentMessage {
        seq: 1,
        body: Some(v1::agent_message::Body::Hello(v1::Hello {
            node_name: "rogue-a".into(),
            vm_id: "x".repeat(64 << 20),
            ..v1::Hello::default()
        })),
    };
    let refused = AgentServiceClient::new(channel_a)
        .max_encoding_message_size(128 << 20)
        .session(tokio_stream::iter(vec![huge]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused.code(),
            tonic::Code::ResourceExhausted | tonic::Code::OutOfRange
        ),
        "{refused:?}"
    );
    let after = rss_kib(pid);
    eprintln!(
        "64 MiB message: {:?} {:?}; coordinator RSS {before} KiB -> {after} KiB",
        refused.code(),
        refused.message()
    );
    assert!(
        after < before + 16 * 1024,
        "the coordinator grew from {before} KiB to {after} KiB on a refused 64 MiB message"
    );
    still_served(&cluster, &admin, since);

    // The admin socket as a user who is not root (the socket opened to everyone, so only
    // the peer-credential check stands between them and the fleet).
    use std::os::unix::fs::PermissionsExt;
    for path in [cluster.dir.path().to_path_buf(), cluster.socket()] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let nobody = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(lfleet_binary())
        .arg("--socket")
        .arg(cluster.socket())
        .arg("nodes")
        .output()
        .unwrap();
    assert!(!nobody.status.success(), "{nobody:?}");
    assert!(
        String::from_utf8_lossy(&nobody.stderr).contains("only root may use the admin socket"),
        "{nobody:?}"
    );

    // The rogue never became a node.
    let nodes = lfleet_json(&cluster.lfleet(&["nodes", "--json"]));
    assert_eq!(nodes.as_array().unwrap().len(), 1, "{nodes:#}");
}

/// `check-config` judges a file and changes nothing: the shipped (inert) configuration is
/// valid; a broken one is refused with its field, exit 2, and no CA or token is made.
#[test]
fn check_config_judges_a_file_and_makes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shipped = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../packaging/common/coordinator.toml"
    );
    let check = |file: &std::path::Path| {
        std::process::Command::new(coordinator_binary())
            .arg("--config")
            .arg(file)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .arg("--join-token-file")
            .arg(dir.path().join("token"))
            .arg("check-config")
            .output()
            .unwrap()
    };
    let valid = check(&std::fs::canonicalize(shipped).unwrap());
    assert!(valid.status.success(), "{valid:?}");
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        "[server]\nlisten = \"0.0.0.0:7443\"\n[client]\nlustre_version = \"2.15.7\"\n[[filesystems]]\nname = \"a\"\nmgs_nids = \"10.0.1.4@tcp\"\nfsname = \"lustrefs\"\nmount_point = \"relative\"\n",
    )
    .unwrap();
    let refused = check(&broken);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("filesystems[0].mount_point"),
        "{refused:?}"
    );
    assert!(!dir.path().join("data").exists() && !dir.path().join("token").exists());
}
