//! The JSON a stored result is written as: `serde_json`'s compact output, byte for byte, with
//! each string that needs no escape checked a whole block of bytes at a time and copied in
//! one piece (`serde_json` looks up every byte of every string in its escape table, the largest
//! cost of storing a result with text in it). Numbers, escapes and the layout are
//! `serde_json`'s own ([`CompactFormatter`], `serde_json::to_writer` for a string that needs an
//! escape). A value this writer does not cover — a map key that is not a string or an
//! integer, `serde_json`'s own `RawValue` and `Number` tokens — or any error is handed to
//! `serde_json` whole, which writes it or reports the error as it always did. Decoding is
//! `serde_json`'s.

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::ser::{CompactFormatter, Formatter};

/// Appends the JSON of `value` to `out`, as `serde_json::to_writer` would.
pub(super) fn write<V: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &V,
) -> Result<(), serde_json::Error> {
    let start = out.len();
    if value.serialize(Writer { out: &mut *out }).is_ok() {
        return Ok(());
    }
    out.truncate(start);
    serde_json::to_writer(out, value)
}

/// Something this writer leaves to `serde_json`: the whole value is written again by it.
#[derive(Debug)]
struct Fallback;

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for Fallback {}

impl ser::Error for Fallback {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Self
    }
}

fn io(result: std::io::Result<()>) -> Result<(), Fallback> {
    result.map_err(|_| Fallback)
}

/// A string that needs no escape: eight bytes checked at once (a byte below 0x20, a quote or a
/// backslash found by the carry tricks of "Bit Twiddling Hacks"), the rest one by one.
fn plain(text: &str) -> bool {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let escape_in = |x: u64| {
        (x.wrapping_sub(ONES * 0x20) & !x & HIGH)
            | zero_in(x ^ (ONES * u64::from(b'"')))
            | zero_in(x ^ (ONES * u64::from(b'\\')))
    };
    let mut chunks = text.as_bytes().chunks_exact(8);
    let mut escapes = 0;
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            return false;
        };
        escapes |= escape_in(u64::from_ne_bytes(word));
    }
    escapes == 0
        && chunks
            .remainder()
            .iter()
            .all(|&b| b >= 0x20 && b != b'"' && b != b'\\')
}

#[inline]
fn write_str(out: &mut Vec<u8>, text: &str) -> Result<(), Fallback> {
    if !plain(text) {
        return write_escaped(out, text);
    }
    out.reserve(text.len() + 2);
    out.push(b'"');
    out.extend_from_slice(text.as_bytes());
    out.push(b'"');
    Ok(())
}

/// A string with an escape in it, written by `serde_json`.
#[cold]
#[inline(never)]
fn write_escaped(out: &mut Vec<u8>, text: &str) -> Result<(), Fallback> {
    serde_json::to_writer(out, text).map_err(|_| Fallback)
}

/// `{"variant":`, what an enum's data follows.
fn open_variant(out: &mut Vec<u8>, variant: &str) -> Result<(), Fallback> {
    out.push(b'{');
    write_str(out, variant)?;
    out.push(b':');
    Ok(())
}

/// The integer methods of a serializer, each writing `serde_json`'s digits through `$write`
/// (as they are, or quoted for a map key).
macro_rules! integers {
    ($write:ident) => {
        integers!($write: serialize_i8(i8) write_i8, serialize_i16(i16) write_i16,
            serialize_i32(i32) write_i32, serialize_i64(i64) write_i64,
            serialize_i128(i128) write_i128, serialize_u8(u8) write_u8,
            serialize_u16(u16) write_u16, serialize_u32(u32) write_u32,
            serialize_u64(u64) write_u64, serialize_u128(u128) write_u128);
    };
    ($write:ident: $($method:ident($ty:ty) $format:ident),*) => {$(
        fn $method(self, v: $ty) -> Result<(), Fallback> {
            self.$write(|out| CompactFormatter.$format(out, v))
        }
    )*};
}

/// What a value and a map key write alike: strings, chars and unit variants as strings, and
/// a newtype struct as what it wraps.
macro_rules! strings {
    () => {
        fn serialize_str(self, v: &str) -> Result<(), Fallback> {
            write_str(self.out, v)
        }
        fn serialize_char(self, v: char) -> Result<(), Fallback> {
            write_str(self.out, v.encode_utf8(&mut [0; 4]))
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            variant: &'static str,
        ) -> Result<(), Fallback> {
            write_str(self.out, variant)
        }
        fn serialize_newtype_struct<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            value: &T,
        ) -> Result<(), Fallback> {
            value.serialize(self)
        }
    };
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// An array, object or the variant object around one: its writer, whether no element was
/// written yet, and whether a variant's `}` closes it.
struct Compound<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    variant: bool,
}

impl<'a> Writer<'a> {
    /// Whatever `CompactFormatter` writes: a number, a bool, null, a byte array.
    fn formatted(
        self,
        write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<(), Fallback> {
        io(write(self.out))
    }

    /// A float, or null for a NaN or an infinity, as `serde_json` writes them.
    fn float(
        self,
        finite: bool,
        write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<(), Fallback> {
        if finite {
            self.formatted(write)
        } else {
            self.formatted(|out| CompactFormatter.write_null(out))
        }
    }

    /// Opens `open` (`[` or `{`), inside `{"variant":` when `variant` is given.
    fn open(self, variant: Option<&str>, open: u8) -> Result<Compound<'a>, Fallback> {
        if let Some(variant) = variant {
            open_variant(self.out, variant)?;
        }
        self.out.push(open);
        Ok(Compound {
            out: self.out,
            first: true,
            variant: variant.is_some(),
        })
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Fallback;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Fallback> {
        self.formatted(|out| CompactFormatter.write_bool(out, v))
    }
    integers!(formatted);
    fn serialize_f32(self, v: f32) -> Result<(), Fallback> {
        self.float(v.is_finite(), |out| CompactFormatter.write_f32(out, v))
    }
    fn serialize_f64(self, v: f64) -> Result<(), Fallback> {
        self.float(v.is_finite(), |out| CompactFormatter.write_f64(out, v))
    }
    strings!();
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Fallback> {
        self.formatted(|out| CompactFormatter.write_byte_array(out, v))
    }
    fn serialize_none(self) -> Result<(), Fallback> {
        self.serialize_unit()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Fallback> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Fallback> {
        self.formatted(|out| CompactFormatter.write_null(out))
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Fallback> {
        self.serialize_unit()
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Fallback> {
        let out = self.out;
        open_variant(out, variant)?;
        value.serialize(Writer { out: &mut *out })?;
        out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>, Fallback> {
        self.open(None, b'[')
    }
    fn serialize_tuple(self, _: usize) -> Result<Compound<'a>, Fallback> {
        self.open(None, b'[')
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Compound<'a>, Fallback> {
        self.open(None, b'[')
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Fallback> {
        self.open(Some(variant), b'[')
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>, Fallback> {
        self.open(None, b'{')
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Compound<'a>, Fallback> {
        // `serde_json`'s `RawValue` and arbitrary-precision `Number` are structs with a private
        // name that `serde_json` writes as raw JSON: left to it.
        if name.starts_with("$serde_json::private::") {
            return Err(Fallback);
        }
        self.open(None, b'{')
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>, Fallback> {
        self.open(Some(variant), b'{')
    }
}

impl Compound<'_> {
    fn separate(&mut self) {
        if !std::mem::replace(&mut self.first, false) {
            self.out.push(b',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fallback> {
        self.separate();
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result<(), Fallback> {
        self.separate();
        write_str(self.out, key)?;
        self.out.push(b':');
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }

    fn close(self, close: u8) {
        self.out.push(close);
        if self.variant {
            self.out.push(b'}');
        }
    }
}

/// The four kinds of array, written alike.
macro_rules! array {
    ($($trait:ident :: $method:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Fallback;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fallback> {
                self.element(value)
            }
            fn end(self) -> Result<(), Fallback> {
                self.close(b']');
                Ok(())
            }
        }
    )*};
}

array!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// The two kinds of struct, written alike.
macro_rules! object {
    ($($trait:ident),*) => {$(
        impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Fallback;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Fallback> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Fallback> {
                self.close(b'}');
                Ok(())
            }
        }
    )*};
}

object!(SerializeStruct, SerializeStructVariant);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Fallback;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Fallback> {
        self.separate();
        key.serialize(Key {
            out: &mut *self.out,
        })?;
        self.out.push(b':');
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Fallback> {
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }

    fn end(self) -> Result<(), Fallback> {
        self.close(b'}');
        Ok(())
    }
}

/// A map key: a string, or an integer written as one (as `serde_json` writes them); any other
/// key is left to `serde_json`.
struct Key<'a> {
    out: &'a mut Vec<u8>,
}

impl Key<'_> {
    fn quoted(
        self,
        write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<(), Fallback> {
        self.out.push(b'"');
        io(write(self.out))?;
        self.out.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = Fallback;
    type SerializeSeq = Impossible<(), Fallback>;
    type SerializeTuple = Impossible<(), Fallback>;
    type SerializeTupleStruct = Impossible<(), Fallback>;
    type SerializeTupleVariant = Impossible<(), Fallback>;
    type SerializeMap = Impossible<(), Fallback>;
    type SerializeStruct = Impossible<(), Fallback>;
    type SerializeStructVariant = Impossible<(), Fallback>;

    strings!();
    integers!(quoted);
    fn serialize_bool(self, _: bool) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_f32(self, _: f32) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_f64(self, _: f64) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_bytes(self, _: &[u8]) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_none(self) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_unit(self) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<(), Fallback> {
        Err(Fallback)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Fallback> {
        Err(Fallback)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Fallback> {
        Err(Fallback)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Fallback> {
        Err(Fallback)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Fallback> {
        Err(Fallback)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Fallback> {
        Err(Fallback)
    }
    fn serialize_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStruct, Fallback> {
        Err(Fallback)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Fallback> {
        Err(Fallback)
    }
}

#[cfg(test)]
mod tests;
