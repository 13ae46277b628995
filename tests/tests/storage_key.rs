//! The stored key is injective in (operation, scope, client key): no two distinct requests'
//! key spaces meet, however their parts are split or what separators and hash-tag braces they
//! contain.

use std::collections::HashMap;

use idempotent_runtime::{IdempotencyKey, storage_key};
use proptest::prelude::*;

type Parts = (String, Option<String>, String);

fn stored(parts: &Parts) -> String {
    let key = IdempotencyKey::new(parts.2.as_str()).expect("generated keys are valid");
    storage_key(&parts.0, parts.1.as_deref(), &key)
        .as_str()
        .to_owned()
}

/// Asserts that equal stored keys come only from equal tuples.
fn assert_injective(tuples: &[Parts]) {
    let mut seen: HashMap<String, &Parts> = HashMap::new();
    for parts in tuples {
        if let Some(earlier) = seen.insert(stored(parts), parts) {
            assert_eq!(earlier, parts, "two requests share a stored key");
        }
    }
}

#[test]
fn split_points_separators_and_braces_never_meet() {
    let t = |op: &str, scope: Option<&str>, key: &str| {
        (op.to_owned(), scope.map(str::to_owned), key.to_owned())
    };
    assert_injective(&[
        t("op", Some("a:b"), "c"),
        t("op", Some("a"), "b:c"),
        t("op:a", Some("b"), "c"),
        t("op", None, "a:b:c"),
        t("op", Some(""), "a:b:c"),
        t("op", Some("unscoped"), "k"),
        t("op", None, "k"),
        t("op", Some("{tag}"), "k"),
        t("op", Some("{tag"), "}k"),
        t("op{", Some("tag}"), "k"),
        t("", Some("op"), "k"),
        t("op", Some("scoped"), "k"),
    ]);
}

/// Parts drawn from a tiny alphabet of separators and braces, so that distinct tuples whose
/// concatenations are equal come up in almost every case.
fn part() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[a:{}]{0,4}").expect("regex")
}

fn tuple() -> impl Strategy<Value = Parts> {
    (
        part(),
        proptest::option::of(part()),
        proptest::string::string_regex("[a:{}]{1,4}").expect("regex"),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn distinct_tuples_never_share_a_stored_key(tuples in proptest::collection::vec(tuple(), 64)) {
        assert_injective(&tuples);
    }
}
