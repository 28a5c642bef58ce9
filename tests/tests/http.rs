//! The HTTP/JSON API with real processes and hand-written HTTP/1.1 requests, as `curl`
//! would send them: documents by key, contexts in a header, siblings, errors as JSON with
//! the documented statuses, health, and tokens.

use ringdb_tests::{http, Cluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_by_key_over_http_keep_grpc_semantics() {
    let cluster = Cluster::start_together(3, &["--max-document-bytes", "4096"]).await;
    let a = cluster.nodes[0].http_address.clone().unwrap();
    let b = cluster.nodes[1].http_address.clone().unwrap();

    // Not found: 404 with the document shape and a context that covers nothing.
    let r = http(&a, "GET", "/v1/users/alice", &[], b"");
    assert_eq!(r.status, 404, "{r:?}");
    let missing = r.json();
    assert_eq!(missing["key"], "alice");
    assert_eq!(missing["values"], json!([]));
    let nothing = missing["context"].as_str().unwrap().to_string();
    assert!(!nothing.is_empty());

    // A write with that context, then a read on another node at ALL.
    let r = http(
        &a,
        "PUT",
        "/v1/users/alice?consistency=ALL",
        &[
            ("X-RingDB-Context", &nothing),
            ("Content-Type", "application/json"),
        ],
        br#"{"name": "Alice", "langs": ["rust"]}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let put = r.json();
    assert_eq!(put["acknowledged_by"].as_array().unwrap().len(), 3, "{put}");
    assert_eq!(put["hinted_for"], json!([]));
    assert_eq!(r.header("x-ringdb-context"), put["context"].as_str());
    let r = http(&b, "GET", "/v1/users/alice?consistency=all", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    let read = r.json();
    assert_eq!(
        read["values"],
        json!([{"name": "Alice", "langs": ["rust"]}])
    );
    let context = read["context"].as_str().unwrap().to_string();

    // Two writes from the same read are concurrent: siblings, one context covering both.
    for (node, name) in [(&a, "Alice A"), (&b, "Alice B")] {
        let doc = json!({ "name": name }).to_string();
        let r = http(
            node,
            "PUT",
            "/v1/users/alice?consistency=QUORUM",
            &[("X-RingDB-Context", &context)],
            doc.as_bytes(),
        );
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = http(&a, "GET", "/v1/users/alice?consistency=ALL", &[], b"");
    let both = r.json();
    let mut names: Vec<String> = both["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["Alice A", "Alice B"], "{both}");

    // Deleting with that context removes both; the key reads as not found everywhere.
    let covering = both["context"].as_str().unwrap();
    let r = http(
        &b,
        "DELETE",
        "/v1/users/alice?consistency=ALL",
        &[("X-RingDB-Context", covering)],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    for node in [&a, &b] {
        let r = http(node, "GET", "/v1/users/alice?consistency=ALL", &[], b"");
        assert_eq!(r.status, 404, "{r:?}");
    }

    // Keys may hold slashes and escapes; they come back as written.
    let r = http(&a, "PUT", "/v1/users/team%2Fa/b%20c", &[], br#"{"x": 1}"#);
    assert_eq!(r.status, 200, "{r:?}");
    let r = http(&b, "GET", "/v1/users/team%2Fa/b%20c", &[], b"");
    assert_eq!(r.json()["key"], "team/a/b c", "{r:?}");

    // Errors: JSON with the code, the message and the documented status.
    let cases: [(&str, &str, &[u8], u16, &str); 6] = [
        ("PUT", "/v1/users/bad", b"not json", 400, "INVALID_ARGUMENT"),
        ("PUT", "/v1/users/arr", b"[1, 2]", 400, "INVALID_ARGUMENT"),
        (
            "GET",
            "/v1/users/x?consistency=SOME",
            b"",
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "GET",
            "/v1/users/x?colour=red",
            b"",
            400,
            "INVALID_ARGUMENT",
        ),
        ("GET", "/v1/Bad$Name/x", b"", 400, "INVALID_ARGUMENT"),
        ("GET", "/nowhere", b"", 404, "NOT_FOUND"),
    ];
    for (method, path, body, status, code) in cases {
        let r = http(&a, method, path, &[], body);
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
        let e = r.json();
        assert_eq!(e["error"]["code"], code, "{method} {path}: {e}");
        assert!(
            !e["error"]["message"].as_str().unwrap().is_empty(),
            "{method} {path}: {e}"
        );
    }
    // A body over --max-document-bytes is refused with the limit, and nothing is written.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(5000));
    let r = http(&a, "PUT", "/v1/users/big", &[], big.as_bytes());
    assert_eq!(r.status, 400, "{r:?}");
    let e = r.json();
    assert_eq!(e["error"]["code"], "INVALID_ARGUMENT", "{e}");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("4096"),
        "{e}"
    );
    assert_eq!(
        http(&a, "GET", "/v1/users/big?consistency=ALL", &[], b"").status,
        404
    );
    // A context of another key is refused, and nothing is written.
    let other = http(&a, "GET", "/v1/users/carol", &[], b"").json()["context"]
        .as_str()
        .unwrap()
        .to_string();
    let r = http(
        &a,
        "PUT",
        "/v1/users/dave",
        &[("X-RingDB-Context", &other)],
        b"{}",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(
        http(&a, "GET", "/v1/users/dave?consistency=ALL", &[], b"").status,
        404
    );

    // Health: 200 while the node serves.
    let r = http(&a, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["serving"], true);

    // With two replicas killed, ALL is 503 UNAVAILABLE, and nothing is claimed written.
    let mut cluster = cluster;
    cluster.node("n2").kill9();
    cluster.node("n3").kill9();
    let r = http(&a, "PUT", "/v1/users/erin?consistency=ALL", &[], b"{}");
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "UNAVAILABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_http_takes_the_same_bearer_tokens_and_grants() {
    const BOOTSTRAP: &str = "bootstrap-admin-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let boot = dir.path().join("bootstrap.token");
    std::fs::write(&boot, format!("{BOOTSTRAP}\n")).unwrap();
    let boot = boot.display().to_string();
    let http_at = format!("127.0.0.1:{}", ringdb_tests::free_port());
    let access = ringdb_tests::Access {
        tls_ca: None,
        token: Some(BOOTSTRAP.into()),
    };
    let mut node = ringdb_tests::NodeProc::launch(
        "n1",
        dir.path(),
        vec![],
        &[
            "--auth",
            "--auth-bootstrap-token-file",
            &boot,
            "--http-listen",
            &http_at,
            "--replication-factor",
            "1",
        ],
        access,
    );
    node.wait_serving().await;
    let admin = format!("Bearer {BOOTSTRAP}");
    let r = http(&http_at, "PUT", "/v1/notes/a", &[], b"{}");
    assert_eq!(r.status, 401, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "UNAUTHENTICATED");
    let r = http(
        &http_at,
        "PUT",
        "/v1/notes/a",
        &[("Authorization", "Bearer not-a-token-of-this-cluster")],
        b"{}",
    );
    assert_eq!(r.status, 401, "{r:?}");
    let r = http(
        &http_at,
        "PUT",
        "/v1/notes/a",
        &[("Authorization", &admin)],
        br#"{"n": 1}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    // A read token may read but not write.
    let (ok, out, err) = ringdb_tests::run_ringdb(
        &node.address,
        &[
            "admin",
            "create-token",
            "--name",
            "reader",
            "--role",
            "read",
            "--token",
            BOOTSTRAP,
        ],
    );
    assert!(ok, "create-token: {out} {err}");
    let token = out.lines().last().unwrap().trim();
    let bearer = format!("Bearer {token}");
    let r = http(
        &http_at,
        "GET",
        "/v1/notes/a",
        &[("Authorization", &bearer)],
        b"",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = http(
        &http_at,
        "PUT",
        "/v1/notes/a",
        &[("Authorization", &bearer)],
        b"{}",
    );
    assert_eq!(r.status, 403, "{r:?}");
    assert_eq!(r.json()["error"]["code"], "PERMISSION_DENIED");
    node.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_over_http_find_count_and_aggregate_like_grpc() {
    let cluster = Cluster::start_together(3, &[]).await;
    let a = cluster.nodes[0].http_address.clone().unwrap();
    let b = cluster.nodes[1].http_address.clone().unwrap();
    let client = cluster.client().await;
    client.create_index("people", "age", false).await.unwrap();
    cluster
        .wait_indexes_ready("people", std::time::Duration::from_secs(120))
        .await;
    for i in 0..25u32 {
        let doc = json!({"age": 20 + i, "city": if i % 2 == 0 { "Oslo" } else { "Rome" }});
        let path = format!("/v1/people/p{i:02}?consistency=QUORUM");
        let r = http(&a, "PUT", &path, &[], doc.to_string().as_bytes());
        assert_eq!(r.status, 200, "{r:?}");
    }

    // FIND on the index, in pages: ordered by age, each page continuing the last.
    let mut keys = Vec::new();
    let mut page: Option<String> = None;
    loop {
        let mut body = json!({"where": [{"path": "age", "op": ">=", "value": 30}],
                              "fields": ["age"], "limit": 4});
        if let Some(p) = &page {
            body["page"] = json!(p);
        }
        let r = http(
            &b,
            "POST",
            "/v1/people/_find?consistency=QUORUM",
            &[],
            body.to_string().as_bytes(),
        );
        assert_eq!(r.status, 200, "{r:?}");
        let v = r.json();
        for d in v["documents"].as_array().unwrap() {
            assert_eq!(d["values"].as_array().unwrap().len(), 1, "{d}");
            assert!(d["values"][0].get("city").is_none(), "FIELDS projects: {d}");
            assert!(!d["context"].as_str().unwrap().is_empty());
            keys.push(d["key"].as_str().unwrap().to_string());
        }
        match v["next"].as_str() {
            Some(n) => page = Some(n.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (10..25).map(|i| format!("p{i:02}")).collect();
    assert_eq!(keys, expected);

    // A found document's context updates it safely.
    let r = http(
        &a,
        "POST",
        "/v1/people/_find",
        &[],
        br#"{"where": [{"path": "age", "op": "=", "value": 20.0}]}"#,
    );
    let found = r.json();
    assert_eq!(found["documents"][0]["key"], "p00", "{found}");
    let context = found["documents"][0]["context"].as_str().unwrap();
    let r = http(
        &a,
        "PUT",
        "/v1/people/p00?consistency=ALL",
        &[("X-RingDB-Context", context)],
        br#"{"age": 99, "city": "Oslo"}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let r = http(&b, "GET", "/v1/people/p00?consistency=ALL", &[], b"");
    assert_eq!(r.json()["values"], json!([{"age": 99, "city": "Oslo"}]));

    // COUNT and AGGREGATE, also without an index (ALLOW FILTERING).
    let count = |body: &str| {
        let r = http(
            &a,
            "POST",
            "/v1/people/_count?consistency=ALL",
            &[],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{body}: {r:?}");
        r.json()["count"].as_u64().unwrap()
    };
    assert_eq!(count(""), 25);
    assert_eq!(
        count(r#"{"where": [{"path": "age", "op": "in", "values": [21, 22, "22"]}]}"#),
        2
    );
    assert_eq!(
        count(
            r#"{"where": [{"path": "city", "op": "=", "value": "Rome"}], "allow_filtering": true}"#
        ),
        12
    );
    let r = http(
        &b,
        "POST",
        "/v1/people/_aggregate",
        &[],
        br#"{"aggregations": ["count(*)", "max(age)"], "group_by": "city", "allow_filtering": true}"#,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let groups = r.json()["groups"].clone();
    let oslo = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "Oslo")
        .unwrap_or_else(|| panic!("{groups}"));
    assert_eq!(oslo["values"]["count(*)"], 13, "{groups}");
    assert_eq!(oslo["values"]["max(age)"], 99, "{groups}");

    // Bad queries: the gRPC codes and messages, as JSON.
    let cases: [(&str, &str, u16, &str, &str); 7] = [
        (
            "/v1/people/_find",
            r#"{"where": [{"path": "city", "op": "=", "value": "Oslo"}]}"#,
            400,
            "INVALID_ARGUMENT",
            "city",
        ),
        (
            "/v1/people/_find",
            r#"{"wher": []}"#,
            400,
            "INVALID_ARGUMENT",
            "wher",
        ),
        (
            "/v1/people/_find",
            r#"{"limit": 5000}"#,
            400,
            "INVALID_ARGUMENT",
            "1000",
        ),
        (
            "/v1/people/_count",
            r#"{"where": [{"path": "age", "op": "~", "value": 1}]}"#,
            400,
            "INVALID_ARGUMENT",
            "where[0]",
        ),
        (
            "/v1/people/_aggregate",
            "",
            400,
            "INVALID_ARGUMENT",
            "aggregations",
        ),
        (
            "/v1/people/_find?ttl_secs=5",
            "",
            400,
            "INVALID_ARGUMENT",
            "ttl_secs",
        ),
        ("/v1/people/p01", "{}", 405, "METHOD_NOT_ALLOWED", "PUT"),
    ];
    for (path, body, status, code, mention) in cases {
        let r = http(&a, "POST", path, &[], body.as_bytes());
        assert_eq!(r.status, status, "{path} {body}: {r:?}");
        let e = r.json();
        assert_eq!(e["error"]["code"], code, "{path} {body}: {e}");
        let message = e["error"]["message"].as_str().unwrap();
        assert!(message.contains(mention), "{path} {body}: {message}");
    }
}
