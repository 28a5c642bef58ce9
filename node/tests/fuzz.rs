//! Fuzzing on stable Rust: property tests that feed arbitrary bytes and arbitrary
//! structured input to every decoder that reads data from clients, peers or disk. None may
//! panic; valid input must round-trip exactly. `RINGDB_FUZZ_CASES` sets the inputs per
//! target (default 256 for CI); docs/testing.md gives the million-input command.

use bytes::Bytes;
use proptest::prelude::*;
use prost::Message;
use ringdb_core::merkle::Leaves;
use ringdb_core::version::{CausalContext, SiblingSet};
use ringdb_node::cluster::{gossip, Membership, MembershipConfig};
use ringdb_node::coordinator::validate;
use ringdb_proto::v1::{GossipAck2, GossipSyn, MemberList, MemberState};
use serde_json::Value;

fn config() -> ProptestConfig {
    let cases = std::env::var("RINGDB_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A sibling set built by a random history of writes and deletes from a few actors, each
/// with a context that saw a random prefix of the history.
fn sibling_set() -> impl Strategy<Value = SiblingSet> {
    let step = (
        0u8..4,
        any::<bool>(),
        0usize..8,
        "[a-z]{0,12}",
        any::<u64>(),
    );
    prop::collection::vec(step, 0..12).prop_map(|steps| {
        let mut set = SiblingSet::new();
        let mut contexts = vec![CausalContext::new()];
        for (actor, delete, seen, text, ts) in steps {
            let ctx = contexts[seen % contexts.len()].clone();
            let value = (!delete).then(|| Bytes::from(format!("{{\"t\":\"{text}\"}}")));
            let new = set.apply_write(&format!("n{actor}.1"), &ctx, value, ts >> 1);
            contexts.push(new);
        }
        set
    })
}

/// Flip, drop or insert bytes of a valid encoding.
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8, u8)]) -> Vec<u8> {
    for &(at, byte, kind) in edits {
        if bytes.is_empty() {
            bytes.push(byte);
            continue;
        }
        let i = at % bytes.len();
        match kind % 3 {
            0 => bytes[i] ^= byte | 1,
            1 => {
                bytes.truncate(i);
            }
            _ => bytes.insert(i, byte),
        }
    }
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8, u8)>> {
    prop::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..4)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sibling_sets_round_trip_and_mutations_never_panic(set in sibling_set(), e in edits()) {
        let enc = set.encode();
        let back = SiblingSet::decode(&Bytes::from(enc.clone())).expect("own encoding decodes");
        prop_assert_eq!(back.encode(), enc.clone());
        prop_assert_eq!(back.context(), set.context());
        // A damaged encoding fails or decodes to a set that re-encodes stably.
        if let Ok(d) = SiblingSet::decode(&Bytes::from(mutate(enc, &e))) {
            let again = SiblingSet::decode(&Bytes::from(d.encode())).expect("re-encoding decodes");
            prop_assert_eq!(again.encode(), d.encode());
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_storage_decoders(raw in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = SiblingSet::decode(&Bytes::from(raw.clone()));
        let _ = CausalContext::decode(&raw);
        let _ = Leaves::from_bytes(&raw);
        let _ = ringdb_query::value::decode(&raw);
        let _ = ringdb_query::value::decode_prefix(&raw);
    }

    #[test]
    fn context_tokens_round_trip_bound_to_their_key(set in sibling_set(), key in "[a-z]{1,8}", other in "[a-z]{1,8}") {
        let tok = validate::context_token("c", &key, set.context());
        prop_assert_eq!(&validate::context(&tok, "c", &key).unwrap(), set.context());
        if other != key {
            prop_assert!(validate::context(&tok, "c", &other).is_err());
        }
        prop_assert!(validate::context(&tok, "d", &key).is_err());
    }

    #[test]
    fn arbitrary_context_strings_are_refused_cleanly(token in any::<String>(), e in edits(), set in sibling_set()) {
        // Arbitrary text, and damaged real tokens: Ok or INVALID_ARGUMENT, never a panic.
        for t in [token, {
            let real = validate::context_token("c", "k", set.context()).into_bytes();
            String::from_utf8_lossy(&mutate(real, &e)).into_owned()
        }] {
            if let Err(err) = validate::context(&t, "c", "k") {
                prop_assert!(err.to_string().contains("context"), "{}", err);
            }
        }
    }

    #[test]
    fn documents_are_checked_without_panics(raw in prop::collection::vec(any::<u8>(), 0..128)) {
        let doc = Bytes::from(raw.clone());
        if validate::document(&doc, 1 << 20).is_ok() {
            let v: Value = serde_json::from_slice(&raw).expect("accepted documents parse");
            prop_assert!(v.is_object());
            prop_assert!(std::str::from_utf8(&raw).is_ok());
        }
    }

    #[test]
    fn json_objects_are_accepted_and_invalid_utf8_is_not(v in json_object(), bad in 0x80u8..=0xff) {
        let text = v.to_string();
        prop_assert!(validate::document(&Bytes::from(text.clone()), 1 << 20).is_ok());
        // A stray byte that is not UTF-8 (alone, 0x80..=0xff never is) inside a string.
        let mut spoiled = b"{\"s\":\"xy\"}".to_vec();
        spoiled.insert(7, bad);
        prop_assert!(validate::document(&Bytes::from(spoiled), 1 << 20).is_err());
    }

    #[test]
    fn typed_value_encoding_preserves_order(a in scalar(), b in scalar()) {
        let (ea, eb) = (ringdb_query::value::encode(&a), ringdb_query::value::encode(&b));
        prop_assert_eq!(ringdb_query::value::decode(&ea).ok().map(|v| ringdb_query::value::encode(&v)), Some(ea.clone()));
        let same_type = std::mem::discriminant(&a) == std::mem::discriminant(&b);
        if same_type {
            prop_assert_eq!(ringdb_query::value::cmp(&a, &b), ea.cmp(&eb), "{} vs {}", a, b);
        }
    }

    #[test]
    fn query_text_never_panics_the_parsers(text in any::<String>(), words in prop::collection::vec(query_word(), 0..10)) {
        let sentence = words.join(" ");
        for t in [text.as_str(), sentence.as_str()] {
            let _ = ringdb_query::statement::parse(t);
            let _ = ringdb_query::statement::parse_conditions(t);
            let _ = ringdb_query::Path::parse(t);
        }
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn gossip_from_anyone_never_panics_and_never_rewrites_this_node(
        raw in prop::collection::vec(any::<u8>(), 0..512),
        states in prop::collection::vec(member_state(), 0..12),
        e in edits(),
    ) {
        let view = Membership::new(me(), Vec::new(), MembershipConfig::default());
        // Arbitrary bytes as each gossip message (and the persisted member list), and a
        // damaged real message.
        let real = GossipAck2 { states: states.clone(), ..Default::default() }.encode_to_vec();
        for bytes in [raw.clone(), mutate(real, &e)] {
            if let Ok(syn) = GossipSyn::decode(bytes.as_slice()) {
                let _ = gossip::answer_syn(&view, &syn);
            }
            if let Ok(ack2) = GossipAck2::decode(bytes.as_slice()) {
                let _ = gossip::take_ack2(&view, &ack2);
            }
            if let Ok(list) = MemberList::decode(bytes.as_slice()) {
                view.merge(&list.members);
            }
        }
        // A well-formed batch (one state per member, as gossip sends): merging it again
        // changes nothing, and nobody's gossip replaces this node's own state.
        let mut batch: Vec<MemberState> = Vec::new();
        for s in states {
            if !batch.iter().any(|b| b.id == s.id) {
                batch.push(s);
            }
        }
        let states = batch;
        view.merge(&states);
        let once = view.known_states();
        view.merge(&states);
        prop_assert_eq!(&view.known_states(), &once);
        let own = view.own_state();
        prop_assert_eq!((own.id.as_str(), own.incarnation, own.tokens.as_slice()), ("me", 7, &[0i64][..]));
        let _ = view.ring().preference_list(0, 3);
        let _ = view.members();
    }
}

fn me() -> MemberState {
    MemberState {
        id: "me".into(),
        address: "me:1".into(),
        incarnation: 7,
        tokens: vec![0],
        status: "NORMAL".into(),
        ..Default::default()
    }
}

/// A peer's state: a few ids (this node's among them), any status text, token lists that
/// collide.
fn member_state() -> impl Strategy<Value = MemberState> {
    (
        prop::sample::select(vec!["me", "a", "b", "c", ""]),
        0u64..4,
        0u64..6,
        prop::collection::vec(-3i64..3, 0..4),
        prop::sample::select(vec!["NORMAL", "JOINING", "LEAVING", "LEFT", "", "weird"]),
        any::<bool>(),
    )
        .prop_map(
            |(id, incarnation, heartbeat, tokens, status, removed)| MemberState {
                id: id.into(),
                address: format!("{id}:1"),
                incarnation,
                heartbeat,
                tokens,
                status: status.into(),
                removed_by: if removed { "a".into() } else { String::new() },
                ..Default::default()
            },
        )
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

fn json_object() -> impl Strategy<Value = Value> {
    let leaf = scalar();
    let tree = leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(any::<String>(), tree, 0..4)
        .prop_map(|m| Value::Object(m.into_iter().collect()))
}

/// Words that make query text close to valid, so the parsers get past their first token.
fn query_word() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("FIND".to_string()),
        Just("COUNT".to_string()),
        Just("WHERE".to_string()),
        Just("AND".to_string()),
        Just("IN".to_string()),
        Just("EXISTS".to_string()),
        Just("LIMIT".to_string()),
        Just("ALLOW FILTERING".to_string()),
        Just("FIELDS".to_string()),
        Just("GROUP BY".to_string()),
        prop_oneof![
            Just("="),
            Just("!="),
            Just("<"),
            Just("<="),
            Just(">="),
            Just("("),
            Just(")"),
            Just(",")
        ]
        .prop_map(str::to_string),
        "[a-z]{1,4}(\\.[a-z]{1,3}|\\[\\])?",
        any::<i32>().prop_map(|i| i.to_string()),
        "\"[a-z\\\\\"]{0,4}\"",
    ]
}
