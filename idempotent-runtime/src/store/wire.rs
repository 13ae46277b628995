//! The binary form of a stored response, shared by the stores that keep one as bytes
//! (`ValkeyStore`'s record, the SQL stores' `response` column): status u16, header count u16,
//! then per header name length u16, name, value length u32, value; then body length u32 and
//! the body, all big-endian. Decoding checks every length against what is left.

use bytes::Bytes;

use crate::{CachedResponse, Error};

/// Appends `response` to `out`.
pub(crate) fn encode_response(response: &CachedResponse, out: &mut Vec<u8>) -> Result<(), Error> {
    let too_large = |what: &str| Error::Corrupt(format!("response {what} too large to store"));
    out.extend_from_slice(&response.status().to_be_bytes());
    let count = u16::try_from(response.headers().len()).map_err(|_| too_large("header count"))?;
    out.extend_from_slice(&count.to_be_bytes());
    for (name, value) in response.headers() {
        let len = u16::try_from(name.len()).map_err(|_| too_large("header name"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(name.as_bytes());
        let len = u32::try_from(value.len()).map_err(|_| too_large("header value"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(value);
    }
    let len = u32::try_from(response.body().len()).map_err(|_| too_large("body"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(response.body());
    Ok(())
}

/// `part` of the buffer the reader reads as `Bytes`: a view of `shared` when that is the
/// buffer (no copy, and one allocation for the whole record at most: the first share of a
/// buffer that was a `Vec`), else a copy (of a buffer the caller only borrows).
fn bytes_of(shared: Option<&Bytes>, part: &[u8]) -> Bytes {
    match shared {
        // `slice_ref` needs `part` inside the buffer; a reader over another one copies.
        Some(whole) if contains(whole, part) => whole.slice_ref(part),
        _ => Bytes::copy_from_slice(part),
    }
}

fn contains(whole: &[u8], part: &[u8]) -> bool {
    let (whole, part) = (whole.as_ptr_range(), part.as_ptr_range());
    whole.start <= part.start && part.end <= whole.end
}

/// The response `input` holds, its body and header values views of `shared` when that is the
/// buffer `input` reads (else copies); a description of what is wrong otherwise.
pub(crate) fn decode_response(
    input: &mut Reader<'_>,
    shared: Option<&Bytes>,
) -> Result<CachedResponse, String> {
    let status = u16::from_be_bytes(input.array("status")?);
    let count = u16::from_be_bytes(input.array("header count")?);
    let mut headers = Vec::with_capacity(usize::from(count).min(64));
    for _ in 0..count {
        let len = u16::from_be_bytes(input.array("header name length")?);
        let name = input.take(usize::from(len), "header name")?;
        let name = std::str::from_utf8(name).map_err(|_| "header name is not UTF-8".to_owned())?;
        let len = u32::from_be_bytes(input.array("header value length")?);
        let value = input.take(widen(len), "header value")?;
        headers.push((name.to_owned(), bytes_of(shared, value)));
    }
    let len = u32::from_be_bytes(input.array("body length")?);
    let body = input.take(widen(len), "body")?;
    Ok(CachedResponse::new(status, bytes_of(shared, body)).with_headers(headers))
}

fn widen(len: u32) -> usize {
    usize::try_from(len).unwrap_or(usize::MAX)
}

/// Bytes read front to back.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!(
                "truncated at the {what}: {n} bytes needed, {} left",
                self.0.len()
            ));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
        let bytes = self.take(N, what)?;
        let mut out = [0; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }
}
