//! [`Sink`]: where a fingerprint's encoding goes on its way into its xxh3 hash.

use xxhash_rust::xxh3::{Xxh3, xxh3_128};

/// How many bytes a [`Sink`] gathers before it hands them to a streaming hasher.
const SINK: usize = 256;

/// An encoding is many writes of a few bytes, and each streaming `update` is dear: they are
/// gathered here, and what fits is hashed in one shot; only an encoding that outgrows the
/// buffer makes a streaming hasher, which then takes the buffer a buffer at a time. xxh3 gives
/// the same hash either way, so the bytes, not how they were handed over, make a fingerprint.
#[derive(Clone)]
pub(super) struct Sink {
    buf: [u8; SINK],
    len: usize,
    /// Made the first time the encoding outgrows the buffer; kept by [`Self::reset`].
    hasher: Option<Box<Xxh3>>,
}

impl Sink {
    pub(super) const fn new() -> Self {
        Self {
            buf: [0; SINK],
            len: 0,
            hasher: None,
        }
    }

    /// Inlined: most writes are a tag byte or an 8-byte length, stored straight into the
    /// buffer where the size is known.
    #[inline]
    pub(super) fn update(&mut self, bytes: &[u8]) {
        let end = self.len + bytes.len();
        match self.buf.get_mut(self.len..end) {
            Some(room) => {
                room.copy_from_slice(bytes);
                self.len = end;
            }
            None => self.update_past_the_buffer(bytes),
        }
    }

    #[inline(never)]
    fn update_past_the_buffer(&mut self, bytes: &[u8]) {
        let hasher = self.spill();
        if bytes.len() > SINK {
            hasher.update(bytes);
        } else {
            self.buf[..bytes.len()].copy_from_slice(bytes);
            self.len = bytes.len();
        }
    }

    /// Hands the buffer to the streaming hasher (made here the first time).
    fn spill(&mut self) -> &mut Xxh3 {
        let len = std::mem::take(&mut self.len);
        let hasher = self.hasher.get_or_insert_with(|| Box::new(Xxh3::new()));
        hasher.update(&self.buf[..len]);
        hasher
    }

    /// Starts again from nothing (a map's next entry), keeping the hasher if one was made.
    #[cfg(feature = "serde")]
    pub(super) fn reset(&mut self) {
        self.len = 0;
        if let Some(hasher) = &mut self.hasher {
            hasher.reset();
        }
    }

    /// The hash of every byte written since [`Self::new`] or [`Self::reset`]. The sink is left
    /// as it was ([`super::FingerprintBuilder::finish`] takes `&self`): a hasher that was made
    /// is copied to finish, which only an encoding past the buffer pays.
    pub(super) fn digest128(&self) -> u128 {
        let rest = &self.buf[..self.len];
        match &self.hasher {
            None => xxh3_128(rest),
            Some(hasher) => {
                let mut hasher = Xxh3::clone(hasher);
                hasher.update(rest);
                hasher.digest128()
            }
        }
    }
}
