//! The writer against `serde_json`: the same bytes for every kind of value serde knows, and the
//! values it leaves to `serde_json` written by it.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use super::write;

fn ours<V: Serialize + ?Sized>(value: &V) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, value).expect("ours writes it");
    out
}

#[track_caller]
fn same<V: Serialize + ?Sized>(value: &V) {
    let theirs = serde_json::to_vec(value).expect("serde_json writes it");
    assert_eq!(
        String::from_utf8_lossy(&ours(value)),
        String::from_utf8_lossy(&theirs)
    );
}

#[derive(Serialize)]
struct Unit;

#[derive(Serialize)]
struct Newtype(String);

#[derive(Serialize)]
struct Pair(u8, &'static str);

#[derive(Serialize)]
enum Kind {
    Plain,
    Wrapped(u64),
    Pair(i8, bool),
    Shaped { x: f64, label: &'static str },
}

#[derive(Serialize)]
struct Receipt {
    id: u64,
    note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    absent: Option<u8>,
    kinds: Vec<Kind>,
    unit: Unit,
    newtype: Newtype,
    pair: Pair,
    #[serde(flatten)]
    extra: BTreeMap<String, i32>,
}

#[test]
fn strings_are_written_as_serde_json_writes_them() {
    let long = "x".repeat(300);
    let escapes = "a\"b\\c\u{0}\u{8}\u{9}\u{a}\u{c}\u{d}\u{1f} \u{7f}/é漢🦀";
    for text in ["", "plain", &long, escapes, "\"", "end\\", "\nstart"] {
        same(text);
    }
    for c in ['x', '"', '\n', '\u{1}', 'é', '🦀'] {
        same(&c);
    }
    // Each byte that needs an escape, and the plain neighbours of those that do, at every
    // place of a string checked eight bytes at a time and then one by one.
    let tricky = [
        '"', '\\', '\u{0}', '\u{8}', '\u{1f}', ' ', '!', '#', '[', ']', '\u{7f}', '\u{a0}', 'é',
        '\u{ff}', '🦀',
    ];
    for c in tricky {
        for at in 0..17 {
            let mut text = "x".repeat(17);
            text.replace_range(at..=at, c.encode_utf8(&mut [0; 4]));
            same(text.as_str());
        }
    }
}

#[test]
fn numbers_are_written_as_serde_json_writes_them() {
    same(&[i64::MIN, -1, 0, i64::MAX]);
    same(&[u64::MAX, 0]);
    same(&(i8::MIN, i16::MIN, i32::MIN, u8::MAX, u16::MAX, u32::MAX));
    same(&(i128::MIN, u128::MAX));
    same(&[
        0.1,
        -0.0,
        1e300,
        5e-324,
        f64::MAX,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ]);
    same(&[1.5_f32, f32::MIN_POSITIVE, f32::NAN, f32::NEG_INFINITY]);
    same(&[true, false]);
}

#[test]
fn every_shape_of_value_is_written_as_serde_json_writes_it() {
    let receipt = Receipt {
        id: 42,
        note: None,
        absent: None,
        kinds: vec![
            Kind::Plain,
            Kind::Wrapped(7),
            Kind::Pair(-3, true),
            Kind::Shaped {
                x: 2.5,
                label: "a\"b",
            },
        ],
        unit: Unit,
        newtype: Newtype("n".into()),
        pair: Pair(1, "one"),
        extra: BTreeMap::from([("z".into(), -1), ("a\n".into(), 2)]),
    };
    same(&receipt);
    same(&Some(Kind::Plain));
    same(&Option::<u8>::None);
    same(&());
    same(&Vec::<u8>::new());
    same(&BTreeMap::<String, u8>::new());
    same(&vec![vec![1, 2], vec![], vec![3]]);
    same(&Ok::<u8, String>(1));
    same(&Err::<u8, String>("no".into()));
    same(&serde_json::json!({"a": [1, 2.5, null, true, {"b": "c\u{1}"}], "": {}}));
}

#[test]
fn integer_and_variant_map_keys_are_written_as_strings() {
    #[derive(Serialize, PartialEq, Eq, PartialOrd, Ord)]
    enum Side {
        Buy,
        Sell,
    }
    same(&BTreeMap::from([(1_u64, "one"), (u64::MAX, "max")]));
    same(&BTreeMap::from([(-5_i128, 'x'), (i128::MAX, 'y')]));
    same(&BTreeMap::from([(Side::Buy, 1), (Side::Sell, 2)]));
    same(&BTreeMap::from([('k', 1)]));
}

#[test]
fn bytes_are_an_array_of_numbers() {
    struct Raw(&'static [u8]);
    impl Serialize for Raw {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.serialize_bytes(self.0)
        }
    }
    same(&Raw(&[0, 1, 255]));
    same(&Raw(&[]));
}

#[test]
fn what_the_writer_leaves_to_serde_json_is_written_by_it() {
    // Keys `serde_json` writes but this writer does not: booleans, floats.
    struct FloatKeys(Vec<(f64, u8)>);
    impl Serialize for FloatKeys {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            serializer.collect_map(self.0.iter().map(|(k, v)| (k, v)))
        }
    }
    same(&BTreeMap::from([(true, 1), (false, 2)]));
    same(&FloatKeys(vec![(1.5, 1), (-0.25, 2)]));
    // `serde_json`'s raw JSON, which it writes as it is.
    let raw = serde_json::value::RawValue::from_string("{\"pre\" : [1,  2]}".into()).expect("raw");
    same(&raw);
    same(&vec![raw]);
}

#[test]
fn a_value_that_fails_fails_as_it_does_with_serde_json() {
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused"))
        }
    }
    let mut out = b"kept".to_vec();
    let error = write(&mut out, &vec![Refuses]).expect_err("fails");
    assert_eq!(error.to_string(), "refused");
    // A map whose key `serde_json` refuses, too.
    assert!(write(&mut Vec::new(), &BTreeMap::from([(vec![1], 1)])).is_err());
    assert!(serde_json::to_vec(&BTreeMap::from([(vec![1], 1)])).is_err());
}

#[test]
fn output_is_appended_to_what_the_buffer_holds() {
    let mut out = b"[".to_vec();
    write(&mut out, "x").expect("writes");
    // A value left to `serde_json` keeps what was there before it, too.
    write(&mut out, &BTreeMap::from([(true, 1)])).expect("writes");
    assert_eq!(out, b"[\"x\"{\"true\":1}");
}
