//! Log output for people and for log shippers: `--log-format json` writes one JSON object
//! per line; text logs carry no ANSI colour codes when stderr is not a terminal.

use ringdb_tests::{Access, NodeProc};

fn log_of(format: Option<&str>) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = vec!["--replication-factor", "1"];
    if let Some(f) = format {
        extra.extend(["--log-format", f]);
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut node = NodeProc::launch("n1", dir.path(), vec![], &extra, Access::default());
    rt.block_on(node.wait_serving());
    node.stop();
    std::fs::read_to_string(&node.log).unwrap()
}

#[test]
fn json_logs_are_one_object_per_line_and_text_logs_have_no_colours_off_a_terminal() {
    let json = log_of(Some("json"));
    let mut serving = false;
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line:?}\n{json}"));
        assert!(
            v["timestamp"].is_string() && v["level"].is_string(),
            "{line}"
        );
        serving |= v["message"] == "serving" && v["node"] == "n1";
    }
    assert!(serving, "no `serving` event with its fields:\n{json}");

    let text = log_of(None);
    assert!(text.contains("serving"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape in a log file:\n{text}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).is_err());
}
