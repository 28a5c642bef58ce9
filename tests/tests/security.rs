//! TLS, mutual TLS between nodes, certificate reload, and token authentication, against
//! real node processes, through raw gRPC stubs as well as the Rust client and the CLI.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use ringdb_proto::v1::admin_client::AdminClient;
use ringdb_proto::v1::client_client::ClientClient;
use ringdb_proto::v1::internode_client::InternodeClient;
use ringdb_proto::v1::{
    CreateTokenRequest, GetRequest, GossipSyn, PutRequest, ReplicaWriteRequest, StatusRequest,
};
use ringdb_tests::{binary, wait_until, Access, Cluster, NodeProc};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request};

/// A CA and what it signs.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        let key = KeyPair::generate().unwrap();
        let cert = p.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A node certificate for 127.0.0.1 and localhost, good for serving and for dialing
    /// peers: (certificate PEM, key PEM).
    fn node_cert(&self, cn: &str) -> (String, String) {
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Write a node certificate, its key and this CA into `dir`; returns the flags.
    fn node_files(&self, dir: &Path, cn: &str) -> Vec<String> {
        std::fs::create_dir_all(dir).unwrap();
        let (cert, key) = self.node_cert(cn);
        std::fs::write(dir.join("node.pem"), cert).unwrap();
        std::fs::write(dir.join("node.key"), key).unwrap();
        std::fs::write(dir.join("ca.pem"), self.pem()).unwrap();
        let path = |f: &str| dir.join(f).display().to_string();
        vec![
            "--tls-cert".into(),
            path("node.pem"),
            "--tls-key".into(),
            path("node.key"),
            "--tls-ca".into(),
            path("ca.pem"),
        ]
    }
}

const BOOTSTRAP: &str = "bootstrap-admin-token-0123456789";

fn bootstrap_file(dir: &Path) -> PathBuf {
    let f = dir.join("bootstrap.token");
    std::fs::write(&f, format!("{BOOTSTRAP}\n")).unwrap();
    f
}

/// A raw channel: TLS trusting `ca` (presenting `identity` if given), or plaintext.
async fn channel(
    address: &str,
    ca: Option<&str>,
    identity: Option<(String, String)>,
) -> Result<Channel, tonic::transport::Error> {
    match ca {
        None => {
            Endpoint::from_shared(format!("http://{address}"))?
                .connect_timeout(Duration::from_secs(3))
                .connect()
                .await
        }
        Some(ca) => {
            let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca));
            if let Some((cert, key)) = identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            Endpoint::from_shared(format!("https://{address}"))?
                .connect_timeout(Duration::from_secs(3))
                .tls_config(tls)?
                .connect()
                .await
        }
    }
}

fn with_token<T>(msg: T, token: Option<&str>) -> Request<T> {
    let mut r = Request::new(msg);
    if let Some(t) = token {
        r.metadata_mut()
            .insert("authorization", format!("Bearer {t}").parse().unwrap());
    }
    r
}

fn get(collection: &str, key: &str) -> GetRequest {
    GetRequest {
        collection: collection.into(),
        key: key.into(),
        ..Default::default()
    }
}

fn put(collection: &str, key: &str) -> PutRequest {
    PutRequest {
        collection: collection.into(),
        key: key.into(),
        document: br#"{"v":1}"#.to_vec().into(),
        ..Default::default()
    }
}

fn syn() -> GossipSyn {
    GossipSyn {
        from: "intruder".into(),
        ..Default::default()
    }
}

fn replica_write() -> ReplicaWriteRequest {
    ReplicaWriteRequest {
        collection: "a".into(),
        key: "k".into(),
        ..Default::default()
    }
}

/// TLS with auth: clients verify nodes against the CA, nodes form the cluster over mutual
/// TLS, and nothing without the right CA (or without a node certificate) gets in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_admits_only_what_the_cluster_ca_vouches_for() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster");
    let mut flags = ca.node_files(&certs.path().join("nodes"), "node");
    let boot = bootstrap_file(certs.path());
    flags.extend([
        "--auth".into(),
        "--auth-bootstrap-token-file".into(),
        boot.display().to_string(),
    ]);
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let access = Access {
        tls_ca: Some(ca.pem().into_bytes()),
        token: Some(BOOTSTRAP.into()),
    };
    // Two nodes seeing each other up means gossip ran over mutual TLS.
    let cluster = Cluster::start_secured(2, &flag_refs, access).await;
    let addr = cluster.nodes[0].address.clone();

    let client = cluster.client().await;
    client
        .put("a", "k", &serde_json::json!({"x": 1}))
        .await
        .unwrap();
    assert_eq!(client.get("a", "k").await.unwrap().values.len(), 1);

    // A plaintext client gets no answer from the TLS-only port.
    let plain = match channel(&addr, None, None).await {
        Ok(ch) => ClientClient::new(ch)
            .get(with_token(get("a", "k"), Some(BOOTSTRAP)))
            .await
            .map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(plain.is_err(), "plaintext request answered: {plain:?}");

    // A client trusting another CA refuses the node.
    let other = Ca::new("other");
    assert!(
        channel(&addr, Some(&other.pem()), None).await.is_err(),
        "a client trusting another CA connected"
    );

    // Verified TLS, but no node certificate: the internode service refuses, admin token
    // or not; the client service answers.
    let ch = channel(&addr, Some(&ca.pem()), None).await.unwrap();
    let status = InternodeClient::new(ch.clone())
        .gossip(with_token(syn(), Some(BOOTSTRAP)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = InternodeClient::new(ch.clone())
        .replica_write(with_token(replica_write(), Some(BOOTSTRAP)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    ClientClient::new(ch)
        .get(with_token(get("a", "k"), Some(BOOTSTRAP)))
        .await
        .unwrap();

    // A certificate from another CA does not get through the handshake: no gossip.
    let rogue = other.node_cert("rogue");
    let refused = match channel(&addr, Some(&ca.pem()), Some(rogue)).await {
        Ok(ch) => InternodeClient::new(ch).gossip(syn()).await.map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(
        refused.is_err(),
        "gossip with a foreign certificate answered"
    );
    // The positive control: a node certificate from the cluster CA may gossip.
    let ch = channel(&addr, Some(&ca.pem()), Some(ca.node_cert("peer")))
        .await
        .unwrap();
    InternodeClient::new(ch).gossip(syn()).await.unwrap();

    // A whole node with a certificate from another CA cannot join: it gives up on the
    // seed and founds a cluster of its own, which the real one never hears of.
    let rogue_flags = other.node_files(&certs.path().join("rogue"), "rogue");
    let rogue_refs: Vec<&str> = rogue_flags.iter().map(String::as_str).collect();
    let rogue = NodeProc::launch(
        "rogue",
        certs.path(),
        vec![addr.clone()],
        &rogue_refs,
        Access {
            tls_ca: Some(other.pem().into_bytes()),
            token: None,
        },
    );
    rogue.wait_serving().await;
    let seen = cluster.client().await.status().await.unwrap();
    assert!(
        seen.nodes.iter().all(|n| n.id != "rogue"),
        "the rogue node got in: {:?}",
        seen.nodes
    );
    let own = rogue.client().await.status().await.unwrap();
    assert_eq!(own.nodes.len(), 1, "rogue saw {:?}", own.nodes);
}

/// Certificate files replaced on disk are used by new connections without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificates_serve_new_connections() {
    let certs = tempfile::tempdir().unwrap();
    let first = Ca::new("first");
    let dir = certs.path().join("n1");
    let flags = first.node_files(&dir, "n1");
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let access = Access {
        tls_ca: Some(first.pem().into_bytes()),
        token: None,
    };
    let cluster = Cluster::start_secured(1, &flag_refs, access).await;
    let addr = cluster.nodes[0].address.clone();
    let status = |ca: String| {
        let addr = addr.clone();
        async move {
            match channel(&addr, Some(&ca), None).await {
                Ok(ch) => AdminClient::new(ch).status(StatusRequest {}).await.is_ok(),
                Err(_) => false,
            }
        }
    };
    assert!(status(first.pem()).await);

    // Rotate to a certificate from a second CA (written key first, then certificate: the
    // node must ride out the moment the two do not match).
    let second = Ca::new("second");
    let (cert, key) = second.node_cert("n1-rotated");
    std::fs::write(dir.join("node.key"), key).unwrap();
    std::fs::write(dir.join("node.pem"), cert).unwrap();
    let started = Instant::now();
    wait_until(
        Duration::from_secs(20),
        "a new connection to present the rotated certificate",
        || status(second.pem()),
    )
    .await;
    eprintln!("rotation seen after {:?}", started.elapsed());
    assert!(
        !status(first.pem()).await,
        "new connections still get the old certificate"
    );
}

/// Run `ringdb admin ...` with a token; returns stdout, panicking with stderr on failure.
fn ringdb_admin(args: &[&str], token: &str) -> String {
    let out = std::process::Command::new(binary("ringdb"))
        .arg("admin")
        .args(args)
        .env("RINGDB_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ringdb admin {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_string()
}

async fn code_of<T>(r: Result<tonic::Response<T>, tonic::Status>) -> Option<Code> {
    r.err().map(|s| s.code())
}

/// Tokens: missing or unknown → UNAUTHENTICATED; outside the grant → PERMISSION_DENIED;
/// spread to every node; revocation refused everywhere within 5 s; a node down does not
/// stop any token on the others; and no client token opens the internode service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_grant_exactly_their_role_on_every_node() {
    let secrets = tempfile::tempdir().unwrap();
    let boot = bootstrap_file(secrets.path());
    let boot_arg = boot.display().to_string();
    let access = Access {
        tls_ca: None,
        token: Some(BOOTSTRAP.into()),
    };
    let mut cluster = Cluster::start_secured(
        3,
        &["--auth", "--auth-bootstrap-token-file", &boot_arg],
        access,
    )
    .await;
    let addrs: Vec<String> = cluster.nodes.iter().map(|n| n.address.clone()).collect();
    let raw = |i: usize| {
        let a = addrs[i].clone();
        async move { ClientClient::new(channel(&a, None, None).await.unwrap()) }
    };

    // No token, a malformed one, an unknown one.
    let mut c1 = raw(0).await;
    assert_eq!(
        code_of(c1.get(get("a", "k")).await).await,
        Some(Code::Unauthenticated)
    );
    let mut r = Request::new(get("a", "k"));
    r.metadata_mut()
        .insert("authorization", "Basic abc".parse().unwrap());
    assert_eq!(code_of(c1.get(r).await).await, Some(Code::Unauthenticated));
    assert_eq!(
        code_of(c1.get(with_token(get("a", "k"), Some("rdb_nope"))).await).await,
        Some(Code::Unauthenticated)
    );

    // The admin (bootstrap) token creates tokens: through the CLI (token on the last
    // line), and through raw gRPC.
    let host = addrs[0].as_str();
    let reader = last_line(&ringdb_admin(
        &[
            "create-token",
            "--name",
            "reader",
            "--role",
            "read",
            "--collection",
            "a",
            "--host",
            host,
        ],
        BOOTSTRAP,
    ));
    assert!(reader.starts_with("rdb_"), "{reader}");
    let writer = AdminClient::new(channel(host, None, None).await.unwrap())
        .create_token(with_token(
            CreateTokenRequest {
                name: "writer".into(),
                role: "readwrite".into(),
                collections: vec!["a".into()],
            },
            Some(BOOTSTRAP),
        ))
        .await
        .unwrap()
        .into_inner()
        .token;
    let listed = ringdb_admin(&["list-tokens", "--host", host], BOOTSTRAP);
    assert!(
        listed.contains("reader") && listed.contains("writer"),
        "{listed}"
    );
    assert!(!listed.contains(&reader), "list-tokens shows a secret");

    // Grants, checked on another node than the one that made the tokens.
    let mut c2 = raw(1).await;
    c2.put(with_token(put("a", "k"), Some(&writer)))
        .await
        .unwrap();
    c2.get(with_token(get("a", "k"), Some(&reader)))
        .await
        .unwrap();
    assert_eq!(
        code_of(c2.put(with_token(put("a", "k"), Some(&reader))).await).await,
        Some(Code::PermissionDenied),
        "a read token wrote"
    );
    assert_eq!(
        code_of(c2.get(with_token(get("b", "k"), Some(&reader))).await).await,
        Some(Code::PermissionDenied),
        "a token for a read b"
    );
    assert_eq!(
        code_of(c2.put(with_token(put("b", "k"), Some(&writer))).await).await,
        Some(Code::PermissionDenied),
        "a token for a wrote b"
    );
    let denied = AdminClient::new(channel(&addrs[1], None, None).await.unwrap())
        .create_token(with_token(
            CreateTokenRequest {
                name: "sneaky".into(),
                role: "admin".into(),
                collections: vec![],
            },
            Some(&writer),
        ))
        .await;
    assert_eq!(code_of(denied).await, Some(Code::PermissionDenied));

    // The Rust client's pipeline: authenticated once, each operation on its grant.
    let rust = Access {
        tls_ca: None,
        token: Some(writer.clone()),
    }
    .builder(&addrs)
    .connect()
    .await
    .unwrap();
    rust.put("a", "p", &serde_json::json!({"y": 2}))
        .await
        .unwrap();
    let e = rust
        .put("b", "p", &serde_json::json!({"y": 2}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("may not"), "{e}");

    // No client token opens the internode service, not even the bootstrap admin token.
    for token in [None, Some(BOOTSTRAP), Some(writer.as_str())] {
        let mut n = InternodeClient::new(channel(&addrs[2], None, None).await.unwrap());
        let g = n.gossip(with_token(syn(), token)).await;
        assert_eq!(code_of(g).await, Some(Code::PermissionDenied), "{token:?}");
        let w = n.replica_write(with_token(replica_write(), token)).await;
        assert_eq!(code_of(w).await, Some(Code::PermissionDenied), "{token:?}");
    }

    // A pipelined client of the reader, its stream open before the revocation.
    let piped = Access {
        tls_ca: None,
        token: Some(reader.clone()),
    }
    .builder(&addrs)
    .connect()
    .await
    .unwrap();
    piped.get("a", "k").await.unwrap();

    // Revoke the reader: refused on every node within 5 s.
    ringdb_admin(&["revoke-token", "reader", "--host", host], BOOTSTRAP);
    let revoked = Instant::now();
    for i in 0..3 {
        let mut c = raw(i).await;
        let reader = reader.clone();
        wait_until(
            Duration::from_secs(5).saturating_sub(revoked.elapsed()),
            &format!("node {} to refuse the revoked token", i + 1),
            || {
                let (mut c, reader) = (c.clone(), reader.clone());
                async move {
                    c.get(with_token(get("a", "k"), Some(&reader)))
                        .await
                        .is_err_and(|s| s.code() == Code::Unauthenticated)
                }
            },
        )
        .await;
        // Still fine for the others.
        c.get(with_token(get("a", "k"), Some(&writer)))
            .await
            .unwrap();
    }

    wait_until(
        Duration::from_secs(5).saturating_sub(revoked.elapsed()),
        "the open pipeline to refuse the revoked token",
        || {
            let piped = piped.clone();
            async move {
                piped
                    .get("a", "k")
                    .await
                    .is_err_and(|e| e.to_string().contains("revoked"))
            }
        },
    )
    .await;

    // One node down: every token still works on the others.
    cluster.node("n3").kill9();
    for i in 0..2 {
        let mut c = raw(i).await;
        for t in [writer.as_str(), BOOTSTRAP] {
            c.get(with_token(get("a", "k"), Some(t))).await.unwrap();
        }
    }
}

/// Turning TLS on in a running cluster by three rolling restarts (plaintext → serve both and
/// dial plaintext → serve both and dial TLS → TLS only), serving reads and writes after each
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_turns_on_by_rolling_restarts() {
    let certs = tempfile::tempdir().unwrap();
    let ca = Ca::new("cluster");
    let tls = ca.node_files(certs.path(), "node");
    let mut cluster = Cluster::start_with(2, &["--replication-factor", "2"]).await;
    let plain = Access::default();
    let secured = Access {
        tls_ca: Some(ca.pem().into_bytes()),
        token: None,
    };
    let mut n = 0;
    for (step, access) in [("plaintext", &plain), ("tls", &secured), ("", &secured)] {
        let mut flags: Vec<&str> = tls.iter().map(String::as_str).collect();
        flags.extend(["--replication-factor", "2"]);
        if !step.is_empty() {
            flags.extend(["--tls-transitional", step]);
        }
        for id in ["n1", "n2"] {
            let node = cluster.node(id);
            node.stop();
            node.set_flags(&flags, access.clone());
            node.restart().await;
            cluster.wait_all_up().await;
            // Reads and writes through both nodes at ALL, so both must reach each other.
            for i in 0..2 {
                let c = cluster.nodes[i].client().await;
                let key = format!("k{n}");
                n += 1;
                let all =
                    ringdb_client::WriteOptions::new().consistency(ringdb_client::Consistency::All);
                c.put_with("a", &key, &serde_json::json!({"n": n}), &all)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("write after restarting {id} into step {step:?}: {e}")
                    });
            }
        }
    }
    // Finished: plaintext is refused.
    let addr = cluster.nodes[0].address.clone();
    let refused = match channel(&addr, None, None).await {
        Ok(ch) => ClientClient::new(ch).get(get("a", "k0")).await.map(|_| ()),
        Err(e) => Err(tonic::Status::unavailable(e.to_string())),
    };
    assert!(refused.is_err(), "plaintext answered after the transition");
}
