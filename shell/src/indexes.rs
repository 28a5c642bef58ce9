//! How the index statements print: `DESCRIBE INDEXES` as a table for people or as the JSON
//! object of the contract (`{"indexes": [{"collection", "path", "state"}, ...]}`), and the
//! index a `CREATE INDEX` made.

use ringdb_client::{Index, IndexState};
use serde_json::{json, Value};

use crate::render::{table, Cell, Color, Style};

/// `"ready"` or `"building"`, as the JSON output says it.
pub fn state_name(i: &Index) -> &'static str {
    match i.state {
        IndexState::Ready => "ready",
        IndexState::Building { .. } => "building",
    }
}

/// How far a building index is, for people (`-` when ready).
pub fn progress(i: &Index) -> String {
    match i.state {
        IndexState::Ready => "-".into(),
        IndexState::Building { total: 0, .. } => "starting".into(),
        IndexState::Building { done, total } => {
            let pct = (done as f64 * 100.0 / total as f64).min(100.0);
            format!("{pct:.0}% ({done} of about {total} keys, slowest node)")
        }
    }
}

/// One index for scripts: `{"collection": C, "path": P, "state": S}`.
pub fn index_value(i: &Index) -> Value {
    json!({"collection": i.collection, "path": i.path, "state": state_name(i)})
}

/// `DESCRIBE INDEXES` for scripts.
pub fn list_json(list: &[Index]) -> String {
    let indexes: Vec<Value> = list.iter().map(index_value).collect();
    json!({ "indexes": indexes }).to_string()
}

/// `DESCRIBE INDEXES` for people.
pub fn list_table(list: &[Index], style: Style) -> String {
    if list.is_empty() {
        return "no indexes (CREATE INDEX ON <collection> (<path>) makes one)".into();
    }
    let rows: Vec<Vec<Cell>> = list
        .iter()
        .map(|i| {
            let state = match i.state {
                IndexState::Ready => Cell::colored("ready", Color::Green),
                IndexState::Building { .. } => Cell::colored("building", Color::Yellow),
            };
            vec![
                i.collection.clone().into(),
                i.path.clone().into(),
                state,
                progress(i).into(),
            ]
        })
        .collect();
    table(
        &["COLLECTION", "PATH", "STATE", "PROGRESS"],
        &[false, false, false, false],
        &rows,
        style,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(path: &str, state: IndexState) -> Index {
        Index {
            collection: "users".into(),
            path: path.into(),
            state,
            created_ms: 1,
            created_by: "n1".into(),
            nodes: Vec::new(),
        }
    }

    #[test]
    fn json_follows_the_contract_and_the_table_shows_progress() {
        let list = [
            index("age", IndexState::Ready),
            index("tags[]", IndexState::Building { done: 5, total: 20 }),
        ];
        let v: Value = serde_json::from_str(&list_json(&list)).unwrap();
        assert_eq!(
            v,
            json!({"indexes": [
                {"collection": "users", "path": "age", "state": "ready"},
                {"collection": "users", "path": "tags[]", "state": "building"},
            ]})
        );
        let t = list_table(&list, Style::default());
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "COLLECTION  PATH    STATE     PROGRESS");
        assert_eq!(lines[1], "users       age     ready     -");
        assert_eq!(
            lines[2],
            "users       tags[]  building  25% (5 of about 20 keys, slowest node)"
        );
        assert!(list_table(&[], Style::default()).starts_with("no indexes"));
    }
}
