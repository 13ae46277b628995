//! The `#[idempotent]` attribute macro. Use it through `idempotent-runtime`, whose docs
//! describe every option: `use idempotent_runtime::idempotent;`.
//!
//! A pipeline of small steps (thiserror-impl's shape): parse the options (`args`), parse the
//! fn with its body as raw tokens (`item`), validate both into a `validate::Validated` (every
//! error collected, `errors`), then expand it (`expand`), which cannot fail. On any error the user's fn is emitted unchanged beside the errors, so the rest of the crate keeps
//! type-checking.

#![allow(
    clippy::single_match_else,
    reason = "`match` on an option reads better when both arms build tokens"
)]

use proc_macro::TokenStream;

mod args;
mod duration;
mod errors;
mod expand;
mod item;
mod validate;

/// Makes an async fn run at most once per idempotency key; see `idempotent_runtime::idempotent`.
#[proc_macro_attribute]
pub fn idempotent(args: TokenStream, item: TokenStream) -> TokenStream {
    idempotent2(args.into(), item.into()).into()
}

fn idempotent2(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let mut errors = errors::Errors::default();
    let args = args::Args::parse(args, &mut errors);
    let parsed: item::MaybeItemFn = match syn::parse2(item.clone()) {
        Ok(parsed) => parsed,
        Err(e) => {
            return fallback(
                &syn::Error::new(e.span(), "`#[idempotent]` goes on an `async fn`"),
                item,
            );
        }
    };
    match validate::validate(&args, &parsed, errors) {
        Ok(valid) => expand::expand(&valid),
        Err(e) => fallback(&e, item),
    }
}

/// The errors, then the user's fn as it was.
fn fallback(error: &syn::Error, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut out = error.to_compile_error();
    out.extend(item);
    out
}
