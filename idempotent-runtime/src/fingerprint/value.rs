//! A serde `Serializer` that streams serde's data model into an xxHash3 hasher.
//!
//! The encoding is prefix-free (every value starts with a tag; strings and byte strings are
//! length-prefixed; sequences end with a marker), so distinct values give distinct inputs.
//! Maps and structs are order-independent: each entry is hashed on its own and the entry hashes
//! are summed, then the count and the sum are written. Integers of every width share one form,
//! so widening a field from `u32` to `u64` keeps fingerprints; `-0.0` is written as `0.0` and
//! every NaN as one NaN. Type names are never written (renaming a type keeps fingerprints);
//! field and variant names are.

use super::FingerprintError;
use super::sink::Sink;
use serde::ser::{self, Serialize};

const UNIT: u8 = 0x10;
const BOOL: u8 = 0x11;
const INT: u8 = 0x12;
const FLOAT: u8 = 0x13;
const STR: u8 = 0x14;
const BYTES: u8 = 0x15;
const NONE: u8 = 0x16;
const SOME: u8 = 0x17;
const SEQ: u8 = 0x18;
const ELEM: u8 = 0x19;
const END: u8 = 0x1a;
const MAP: u8 = 0x1b;
const VARIANT: u8 = 0x1c;

impl ser::Error for FingerprintError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

pub(super) struct ValueSerializer<'a> {
    out: &'a mut Sink,
}

impl<'a> ValueSerializer<'a> {
    pub(super) fn new(out: &'a mut Sink) -> Self {
        Self { out }
    }

    fn tag(&mut self, tag: u8) {
        self.out.update(&[tag]);
    }

    fn len_prefixed(&mut self, tag: u8, bytes: &[u8]) {
        self.out.update(&[tag]);
        self.out.update(&(bytes.len() as u64).to_le_bytes());
        self.out.update(bytes);
    }

    fn int(self, negative: bool, magnitude: u128) {
        self.out.update(&[INT, u8::from(negative)]);
        self.out.update(&magnitude.to_le_bytes());
    }

    fn signed(self, v: i128) {
        self.int(v < 0, v.unsigned_abs());
    }

    fn variant(&mut self, variant: &str) {
        self.len_prefixed(VARIANT, variant.as_bytes());
    }
}

/// Sequences, tuples and the fields of tuple structs and tuple variants: order kept.
pub(super) struct SeqSerializer<'a> {
    out: &'a mut Sink,
}

impl SeqSerializer<'_> {
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FingerprintError> {
        self.out.update(&[ELEM]);
        value.serialize(ValueSerializer::new(self.out))
    }

    fn finish(self) {
        self.out.update(&[END]);
    }
}

/// Maps, structs and struct variants: order-independent.
pub(super) struct MapSerializer<'a> {
    out: &'a mut Sink,
    sum: u128,
    count: u64,
    /// The entry being serialized, reset for each one.
    entry: Sink,
    /// A key was serialized and its value not yet.
    pending: bool,
}

impl<'a> MapSerializer<'a> {
    fn new(out: &'a mut Sink) -> Self {
        Self {
            out,
            sum: 0,
            count: 0,
            entry: Sink::new(),
            pending: false,
        }
    }

    fn key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), FingerprintError> {
        if self.pending {
            return Err(FingerprintError(
                "map key serialized without a value".into(),
            ));
        }
        self.entry.reset();
        key.serialize(ValueSerializer::new(&mut self.entry))?;
        self.pending = true;
        Ok(())
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FingerprintError> {
        if !self.pending {
            return Err(FingerprintError(
                "map value serialized before its key".into(),
            ));
        }
        value.serialize(ValueSerializer::new(&mut self.entry))?;
        self.pending = false;
        self.sum = self.sum.wrapping_add(self.entry.digest128());
        self.count += 1;
        Ok(())
    }

    fn field<T: Serialize + ?Sized>(
        &mut self,
        name: &'static str,
        value: &T,
    ) -> Result<(), FingerprintError> {
        self.key(name)?;
        self.value(value)
    }

    fn finish(self) -> Result<(), FingerprintError> {
        if self.pending {
            return Err(FingerprintError(
                "map key serialized without a value".into(),
            ));
        }
        self.out.update(&[MAP]);
        self.out.update(&self.count.to_le_bytes());
        self.out.update(&self.sum.to_le_bytes());
        Ok(())
    }
}

impl<'a> ser::Serializer for ValueSerializer<'a> {
    type Ok = ();
    type Error = FingerprintError;
    type SerializeSeq = SeqSerializer<'a>;
    type SerializeTuple = SeqSerializer<'a>;
    type SerializeTupleStruct = SeqSerializer<'a>;
    type SerializeTupleVariant = SeqSerializer<'a>;
    type SerializeMap = MapSerializer<'a>;
    type SerializeStruct = MapSerializer<'a>;
    type SerializeStructVariant = MapSerializer<'a>;

    fn serialize_bool(mut self, v: bool) -> Result<(), FingerprintError> {
        self.tag(BOOL);
        self.out.update(&[u8::from(v)]);
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result<(), FingerprintError> {
        self.signed(v.into());
        Ok(())
    }

    fn serialize_i16(self, v: i16) -> Result<(), FingerprintError> {
        self.signed(v.into());
        Ok(())
    }

    fn serialize_i32(self, v: i32) -> Result<(), FingerprintError> {
        self.signed(v.into());
        Ok(())
    }

    fn serialize_i64(self, v: i64) -> Result<(), FingerprintError> {
        self.signed(v.into());
        Ok(())
    }

    fn serialize_i128(self, v: i128) -> Result<(), FingerprintError> {
        self.signed(v);
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result<(), FingerprintError> {
        self.int(false, v.into());
        Ok(())
    }

    fn serialize_u16(self, v: u16) -> Result<(), FingerprintError> {
        self.int(false, v.into());
        Ok(())
    }

    fn serialize_u32(self, v: u32) -> Result<(), FingerprintError> {
        self.int(false, v.into());
        Ok(())
    }

    fn serialize_u64(self, v: u64) -> Result<(), FingerprintError> {
        self.int(false, v.into());
        Ok(())
    }

    fn serialize_u128(self, v: u128) -> Result<(), FingerprintError> {
        self.int(false, v);
        Ok(())
    }

    fn serialize_f32(self, v: f32) -> Result<(), FingerprintError> {
        self.serialize_f64(v.into())
    }

    fn serialize_f64(mut self, v: f64) -> Result<(), FingerprintError> {
        let canonical = if v.is_nan() {
            f64::NAN
        } else if v == 0.0 {
            0.0
        } else {
            v
        };
        self.tag(FLOAT);
        self.out.update(&canonical.to_bits().to_le_bytes());
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result<(), FingerprintError> {
        self.serialize_str(v.encode_utf8(&mut [0; 4]))
    }

    fn serialize_str(mut self, v: &str) -> Result<(), FingerprintError> {
        self.len_prefixed(STR, v.as_bytes());
        Ok(())
    }

    fn serialize_bytes(mut self, v: &[u8]) -> Result<(), FingerprintError> {
        self.len_prefixed(BYTES, v);
        Ok(())
    }

    fn serialize_none(mut self) -> Result<(), FingerprintError> {
        self.tag(NONE);
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(mut self, value: &T) -> Result<(), FingerprintError> {
        self.tag(SOME);
        value.serialize(self)
    }

    fn serialize_unit(mut self) -> Result<(), FingerprintError> {
        self.tag(UNIT);
        Ok(())
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), FingerprintError> {
        self.serialize_unit()
    }

    fn serialize_unit_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), FingerprintError> {
        self.variant(variant);
        self.serialize_unit()
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), FingerprintError> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), FingerprintError> {
        self.variant(variant);
        value.serialize(self)
    }

    fn serialize_seq(mut self, _len: Option<usize>) -> Result<SeqSerializer<'a>, FingerprintError> {
        self.tag(SEQ);
        Ok(SeqSerializer { out: self.out })
    }

    fn serialize_tuple(self, len: usize) -> Result<SeqSerializer<'a>, FingerprintError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<SeqSerializer<'a>, FingerprintError> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<SeqSerializer<'a>, FingerprintError> {
        self.variant(variant);
        self.serialize_seq(Some(len))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<MapSerializer<'a>, FingerprintError> {
        Ok(MapSerializer::new(self.out))
    }

    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<MapSerializer<'a>, FingerprintError> {
        Ok(MapSerializer::new(self.out))
    }

    fn serialize_struct_variant(
        mut self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<MapSerializer<'a>, FingerprintError> {
        self.variant(variant);
        Ok(MapSerializer::new(self.out))
    }
}

macro_rules! seq_impl {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for SeqSerializer<'_> {
            type Ok = ();
            type Error = FingerprintError;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), FingerprintError> {
                self.element(value)
            }

            fn end(self) -> Result<(), FingerprintError> {
                self.finish();
                Ok(())
            }
        }
    )*};
}

seq_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for MapSerializer<'_> {
    type Ok = ();
    type Error = FingerprintError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), FingerprintError> {
        self.key(key)
    }

    fn serialize_value<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
    ) -> Result<(), FingerprintError> {
        self.value(value)
    }

    fn end(self) -> Result<(), FingerprintError> {
        self.finish()
    }
}

macro_rules! struct_impl {
    ($($trait:ident),*) => {$(
        impl ser::$trait for MapSerializer<'_> {
            type Ok = ();
            type Error = FingerprintError;

            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                name: &'static str,
                value: &T,
            ) -> Result<(), FingerprintError> {
                self.field(name, value)
            }

            fn end(self) -> Result<(), FingerprintError> {
                self.finish()
            }
        }
    )*};
}

struct_impl!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests;
