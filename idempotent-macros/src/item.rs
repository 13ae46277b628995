//! The annotated fn, parsed as little as the macro needs: attributes, visibility, signature,
//! and the body as raw tokens (tracing-attributes' `MaybeItemFn`). A syntax error inside the
//! body is then rustc's own error on the emitted fn, never an attribute error.

use proc_macro2::TokenStream;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Signature, Visibility};

/// A fn with its body unparsed.
pub(crate) struct MaybeItemFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// Everything after the signature: `{ … }` for a fn with a body.
    pub(crate) body: TokenStream,
}

impl Parse for MaybeItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        Ok(Self {
            attrs: input.call(Attribute::parse_outer)?,
            vis: input.parse()?,
            sig: input.parse()?,
            body: input.parse()?,
        })
    }
}
