//! The locks the stores use (`MemoryStore`, `ValkeyStore`'s local cache): `parking_lot`
//! normally, shuttle's under `--cfg shuttle` so the model checker can explore every
//! interleaving of the real store code.

#[cfg(not(shuttle))]
pub(crate) use parking_lot::Mutex;
#[cfg(all(not(shuttle), feature = "memory"))]
pub(crate) use parking_lot::MutexGuard;

#[cfg(shuttle)]
pub(crate) use shuttle_mutex::{Mutex, MutexGuard};

#[cfg(shuttle)]
mod shuttle_mutex {
    pub(crate) use shuttle::sync::MutexGuard;

    /// shuttle's mutex with `parking_lot`'s non-poisoning `lock()`.
    #[derive(Debug, Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(shuttle::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}

#[cfg(all(not(shuttle), feature = "memory"))]
pub(crate) use std::sync::atomic::AtomicUsize;

#[cfg(shuttle)]
pub(crate) use shuttle::sync::atomic::AtomicUsize;
