// A record another request finds reports what the store kept: no TTL or lease a store did not
// keep (contract point 12; these compiled and returned invented defaults before).
use idempotent_runtime::ExistingEntry;

fn lifetimes(found: ExistingEntry) -> std::time::Duration {
    match found {
        ExistingEntry::Completed(done) => done.ttl(),
        ExistingEntry::Processing(claim) => claim.lease(),
    }
}

fn main() {
    let _ = lifetimes;
}
