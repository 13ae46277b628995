//! The value fingerprint's golden encodings and properties.
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::{DefaultFingerprintStrategy, Fingerprint, FingerprintError};

fn fp<T: Serialize + ?Sized>(value: &T) -> Fingerprint {
    DefaultFingerprintStrategy
        .compute_value("op", value)
        .expect("serializable")
}

#[derive(Serialize)]
struct Order {
    email: String,
    amount: u64,
    tags: Vec<String>,
    note: Option<String>,
}

#[derive(Serialize)]
struct OrderReordered {
    amount: u64,
    note: Option<String>,
    email: String,
    tags: Vec<String>,
}

#[derive(Serialize)]
enum Shape {
    Unit,
    Circle(f64),
    Rect { w: u32, h: u32 },
    Pair(u8, u8),
}

fn order() -> Order {
    Order {
        email: "a@example.com".into(),
        amount: 100,
        tags: vec!["x".into(), "y".into()],
        note: None,
    }
}

/// Golden values for the value encoding; see `fingerprint::tests::golden_bytes_fingerprints`.
#[test]
fn golden_value_fingerprints() {
    let cases: [(Fingerprint, &str); 6] = [
        (fp(&order()), "1da3e4096f5f1c599d7e38d21165b5cd"),
        (fp(&("ab", "c")), "ad3bef6dfe4a4b293aae4fff64b5be5f"),
        (fp(&42_u64), "0079887403624b87f8dc24ff877a12bc"),
        (
            fp(&Shape::Rect { w: 1, h: 2 }),
            "daf1fddffd30d25c5e85955fe8b2b938",
        ),
        (
            fp(&[Shape::Unit, Shape::Circle(1.5), Shape::Pair(1, 2)]),
            "f8e4b04c3d9363b068a2bc1cb15dc1a2",
        ),
        (
            fp(&BTreeMap::from([("k", vec![1_i32, -1])])),
            "0ec64c4e1e24e8fb7df586f97a990ee1",
        ),
    ];
    for (i, (actual, expected)) in cases.iter().enumerate() {
        assert_eq!(actual.to_string(), *expected, "case {i}");
    }
}

#[test]
fn length_prefixing_separates_neighbouring_strings() {
    assert_ne!(fp(&("ab", "c")), fp(&("a", "bc")));
    assert_ne!(fp(&vec!["ab", "c"]), fp(&vec!["a", "bc"]));
    assert_ne!(
        fp(&vec![vec![1], vec![2, 3]]),
        fp(&vec![vec![1, 2], vec![3]])
    );
    assert_ne!(fp(&b"ab".as_slice()), fp(&"ab"));
}

#[test]
fn hash_maps_with_equal_content_always_agree() {
    let pairs: Vec<(String, u32)> = (0..200).map(|i| (format!("k{i}"), i)).collect();
    let forward: HashMap<String, u32> = pairs.iter().cloned().collect();
    let backward: HashMap<String, u32> = pairs.iter().rev().cloned().collect();
    let btree: BTreeMap<String, u32> = pairs.iter().cloned().collect();
    assert_eq!(fp(&forward), fp(&backward));
    assert_eq!(fp(&forward), fp(&btree));
    let mut changed = forward.clone();
    changed.insert("k7".into(), 8);
    assert_ne!(fp(&forward), fp(&changed));
    let mut swapped = forward;
    swapped.insert("k1".into(), 2);
    swapped.insert("k2".into(), 1);
    assert_ne!(
        fp(&swapped),
        fp(&btree),
        "swapping values between keys is a change"
    );
}

#[test]
fn structs_ignore_field_order_and_type_names() {
    let reordered = OrderReordered {
        amount: 100,
        note: None,
        email: "a@example.com".into(),
        tags: vec!["x".into(), "y".into()],
    };
    assert_eq!(fp(&order()), fp(&reordered));
    let as_map = BTreeMap::from([
        ("email", serde_json_like::Str("a@example.com")),
        ("amount", serde_json_like::Int(100)),
        ("tags", serde_json_like::List(&["x", "y"])),
        ("note", serde_json_like::Null),
    ]);
    assert_eq!(
        fp(&order()),
        fp(&as_map),
        "a struct equals a map of its fields"
    );
}

#[test]
fn every_field_matters() {
    let base = fp(&order());
    let mut o = order();
    o.amount = 101;
    assert_ne!(fp(&o), base);
    let mut o = order();
    o.note = Some(String::new());
    assert_ne!(fp(&o), base);
    let mut o = order();
    o.tags.reverse();
    assert_ne!(fp(&o), base, "sequences keep their order");
}

#[test]
fn integers_of_every_width_agree_and_signs_differ() {
    assert_eq!(fp(&5_u8), fp(&5_i64));
    assert_eq!(fp(&5_u128), fp(&5_i32));
    assert_ne!(fp(&-5_i32), fp(&5_i32));
    assert_ne!(fp(&u128::MAX), fp(&i128::MIN));
    assert_ne!(fp(&1_u32), fp(&1.0_f64));
    assert_ne!(fp(&1_u32), fp(&true));
}

#[test]
fn floats_are_canonical() {
    assert_eq!(fp(&0.0_f64), fp(&-0.0_f64));
    assert_eq!(fp(&f64::NAN), fp(&-f64::NAN));
    assert_eq!(fp(&1.5_f32), fp(&1.5_f64));
    assert_ne!(fp(&1.5_f64), fp(&2.5_f64));
}

#[test]
fn options_variants_and_units_are_distinct() {
    assert_ne!(fp(&None::<u8>), fp(&()));
    assert_ne!(fp(&Some(1_u8)), fp(&1_u8));
    assert_ne!(fp(&Shape::Unit), fp(&()));
    assert_ne!(fp(&Shape::Pair(1, 2)), fp(&(1_u8, 2_u8)));
    assert_ne!(
        fp(&Shape::Rect { w: 1, h: 2 }),
        fp(&Shape::Rect { w: 2, h: 1 })
    );
    assert_eq!(fp(&'x'), fp(&"x"));
}

#[test]
fn operation_name_separates_equal_values() {
    let s = DefaultFingerprintStrategy;
    assert_ne!(
        s.compute_value("users.create", &1).expect("ok"),
        s.compute_value("users.delete", &1).expect("ok")
    );
}

#[test]
fn serialize_errors_are_reported_not_panicked() {
    struct Refuses;
    impl Serialize for Refuses {
        fn serialize<S: serde::Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
            Err(serde::ser::Error::custom("refused on purpose"))
        }
    }
    assert_eq!(
        DefaultFingerprintStrategy.compute_value("op", &(1, Refuses)),
        Err(FingerprintError("refused on purpose".into()))
    );
    assert_eq!(
        FingerprintError("x".into()).to_string(),
        "cannot fingerprint the request: x"
    );
}

/// A map whose `Serialize` breaks serde's key-then-value order is an error, in every order.
#[test]
fn map_entries_out_of_order_are_errors() {
    use serde::ser::SerializeMap;
    enum Broken {
        TwoKeys,
        ValueFirst,
        KeyLast,
    }
    impl Serialize for Broken {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(None)?;
            match self {
                Broken::TwoKeys => {
                    map.serialize_key("a")?;
                    map.serialize_key("b")?;
                }
                Broken::ValueFirst => map.serialize_value(&1)?,
                Broken::KeyLast => map.serialize_key("a")?,
            }
            map.end()
        }
    }
    for (broken, message) in [
        (Broken::TwoKeys, "map key serialized without a value"),
        (Broken::ValueFirst, "map value serialized before its key"),
        (Broken::KeyLast, "map key serialized without a value"),
    ] {
        assert_eq!(
            DefaultFingerprintStrategy.compute_value("op", &broken),
            Err(FingerprintError(message.into()))
        );
    }
}

/// A tiny JSON-like value to show that a struct equals a map with the same fields.
mod serde_json_like {
    use serde::{Serialize, Serializer};

    pub(super) enum V {
        Str(&'static str),
        Int(u64),
        List(&'static [&'static str]),
        Null,
    }
    pub(super) use V::{Int, List, Null, Str};

    impl Serialize for V {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            match self {
                Str(v) => s.serialize_str(v),
                Int(v) => s.serialize_u64(*v),
                List(v) => v.serialize(s),
                Null => s.serialize_none(),
            }
        }
    }
}

/// Values whose encoding outgrows the serializer's buffers: the whole value (many times over),
/// one map entry (by one long string, and by many short writes), a small entry after a large
/// one, nested maps. Their fingerprints were computed by the streaming encoder that wrote every
/// piece straight into the hasher: buffering must not change them.
#[test]
fn golden_fingerprints_of_values_larger_than_the_buffers() {
    let mut big = BTreeMap::new();
    big.insert("a", vec!["x".repeat(300)]);
    big.insert("b", vec!["1".to_owned()]);
    big.insert("c", vec!["y".repeat(100); 5]);
    big.insert("d", (0..40).map(|i| i.to_string()).collect());
    let mut nested = BTreeMap::new();
    nested.insert("inner", big.clone());
    nested.insert("again", big.clone());
    let cases: [(Fingerprint, &str); 4] = [
        (fp(&big), "c8ba0b89690ed62c61ffbc0e3043972c"),
        (
            fp(&(&big, "z".repeat(1000))),
            "bddd86959e455959c0cb22fe9bc8fe35",
        ),
        (fp(&nested), "7da3430e42132ac8afb253c445c35eaf"),
        (
            fp(&(0..20).map(|_| order()).collect::<Vec<_>>()),
            "bfb7fd495d863f4dc5161cfc688adcf2",
        ),
    ];
    let got: Vec<String> = cases.iter().map(|(g, _)| g.to_string()).collect();
    let want: Vec<&str> = cases.iter().map(|(_, w)| *w).collect();
    assert_eq!(got, want);
}
