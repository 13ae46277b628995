//! The `#[idempotent]` attribute macro. Use it through `idempotent-runtime`, whose docs
//! describe every option: `use idempotent_runtime::idempotent;`.
//!
//! Pipeline: parse the options (`args`) → parse the fn → validate and expand (`expand`).
//! On any error the user's fn is emitted unchanged beside the errors, so the rest of the crate
//! keeps type-checking.

#![allow(
    clippy::single_match_else,
    reason = "`match` on an option reads better when both arms build tokens"
)]

use proc_macro::TokenStream;

mod args;
mod duration;
mod expand;

/// Makes an async fn run at most once per idempotency key; see `idempotent_runtime::idempotent`.
#[proc_macro_attribute]
pub fn idempotent(args: TokenStream, item: TokenStream) -> TokenStream {
    let item2: proc_macro2::TokenStream = item.clone().into();
    let mut errors = None;
    let args = args::Args::parse(args.into(), &mut errors);
    let parsed: syn::ItemFn = match syn::parse2(item2.clone()) {
        Ok(f) => f,
        Err(e) => {
            let message = syn::Error::new(e.span(), "`#[idempotent]` goes on an `async fn`");
            let mut out = message.to_compile_error();
            out.extend(item2);
            return out.into();
        }
    };
    match expand::expand(&args, &parsed, errors) {
        Ok(tokens) => tokens.into(),
        Err(e) => {
            let mut out = e.to_compile_error();
            out.extend(item2);
            out.into()
        }
    }
}
