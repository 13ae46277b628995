//! Validation against the fn: every independent check pushes into one accumulator, and what
//! passes is a [`Validated`] value the expansion takes and cannot fail on.

use proc_macro2::{Span, TokenTree};
use syn::{Expr, FnArg, Ident, Pat, ReturnType, Type};

use crate::args::{Args, HeaderKey, KeySource};
use crate::errors::Errors;
use crate::item::MaybeItemFn;

/// A fn and options that passed every check.
pub(crate) struct Validated<'a> {
    pub(crate) args: &'a Args,
    pub(crate) item: &'a MaybeItemFn,
    /// The declared return type.
    pub(crate) ret: &'a Type,
    pub(crate) mode: Mode<'a>,
    /// The expressions the fingerprint hashes, in order.
    pub(crate) fingerprinted: Vec<Expr>,
}

/// Plain async fn or axum handler.
pub(crate) enum Mode<'a> {
    Plain(&'a Expr),
    Http(&'a HeaderKey),
}

/// Checks `args` against `item`, adding to the errors the options already produced.
pub(crate) fn validate<'a>(
    args: &'a Args,
    item: &'a MaybeItemFn,
    mut errors: Errors,
) -> syn::Result<Validated<'a>> {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            "`#[idempotent]` needs an `async fn`; add `async` before `fn`",
        ));
    }
    if !is_block(&item.body) {
        errors.push(syn::Error::new(
            sig.ident.span(),
            "`#[idempotent]` needs a fn with a body `{ … }`",
        ));
    }
    let http = matches!(&args.key, Some((_, KeySource::Header(_))));
    let ret = errors.take(return_type(sig, http));
    let mode = errors.take(mode(args)).flatten();
    if let Some(Mode::Http(header)) = &mode {
        check_http(header, item, &mut errors);
    }
    if sig.inputs.iter().any(|a| matches!(a, FnArg::Receiver(_))) && args.name.is_none() && !http {
        errors.push(syn::Error::new(
            sig.ident.span(),
            "a method needs a stable operation name, since two types may share a method name in one module: add `name = \"orders.pay\"`",
        ));
    }
    if let (Some((span, _)), None) = (&args.transaction, &args.store) {
        errors.push(syn::Error::new(
            *span,
            "`transaction = …` needs the store it opens the transaction on: add `store = <a PostgresStore or SqliteStore>`",
        ));
    }
    let bound = bound_arguments(item);
    check_selection(args, &bound, &mut errors);
    errors.finish()?;
    let (Some(ret), Some(mode)) = (ret, mode) else {
        // Unreachable: a missing part always pushed an error above.
        return Err(syn::Error::new(
            Span::call_site(),
            "invalid `#[idempotent]`",
        ));
    };
    Ok(Validated {
        args,
        item,
        ret,
        mode,
        fingerprinted: fingerprinted(args, &bound),
    })
}

fn is_block(body: &proc_macro2::TokenStream) -> bool {
    let mut tokens = body.clone().into_iter();
    matches!(
        (tokens.next(), tokens.next()),
        (Some(TokenTree::Group(g)), None) if g.delimiter() == proc_macro2::Delimiter::Brace
    )
}

fn return_type(sig: &syn::Signature, http: bool) -> syn::Result<&Type> {
    match &sig.output {
        ReturnType::Type(_, ret) => Ok(ret),
        ReturnType::Default => Err(syn::Error::new(
            sig.ident.span(),
            if http {
                "an axum handler with `key = header` must return a response type (`impl IntoResponse`), like `Result<Json<User>, ApiError>`"
            } else {
                "a plain `#[idempotent]` fn must return `Result<T, E>` with `T: Serialize + DeserializeOwned` and `E: From<idempotent_runtime::Error>`"
            },
        )),
    }
}

/// The mode the key selects; `Ok(None)` when `key = …` was given but already refused.
fn mode(args: &Args) -> syn::Result<Option<Mode<'_>>> {
    match &args.key {
        None if args.key_invalid => Ok(None),
        None => Err(syn::Error::new(
            Span::call_site(),
            "missing option `key`: add `key = <expr>` (an argument or field holding the key, e.g. `key = req.idempotency_key`) or `key = header`",
        )),
        Some((_, KeySource::Header(header))) => Ok(Some(Mode::Http(header))),
        Some((_, KeySource::Expr(expr))) => Ok(Some(Mode::Plain(expr))),
    }
}

fn check_http(header: &HeaderKey, item: &MaybeItemFn, errors: &mut Errors) {
    if !cfg!(feature = "axum") {
        errors.push(syn::Error::new(
            header.span,
            "`key = header` makes an axum handler, which needs the `axum` feature of `idempotent-runtime`: enable it in Cargo.toml, or use `key = <expr>`",
        ));
    }
    if let Some(FnArg::Receiver(receiver)) = item
        .sig
        .inputs
        .iter()
        .find(|a| matches!(a, FnArg::Receiver(_)))
    {
        errors.push(syn::Error::new_spanned(
            receiver,
            "`key = header` makes an axum handler, which is a free `async fn`: remove `self` and pass state with `State(…)`",
        ));
    }
}

/// `skip(…)` and `fingerprint(…)` name what exists, once, and not both.
fn check_selection(args: &Args, bound: &[Ident], errors: &mut Errors) {
    if let (Some(_), Some((span, _))) = (&args.skip, &args.fingerprint) {
        errors.push(syn::Error::new(
            *span,
            "`skip(…)` and `fingerprint(…)` exclude each other: list what to hash with `fingerprint(…)`, or what to leave out with `skip(…)`",
        ));
    }
    let skipped: &[Ident] = args.skip.as_ref().map_or(&[], |(_, names)| names);
    for (i, name) in skipped.iter().enumerate() {
        if skipped[..i].contains(name) {
            errors.push(syn::Error::new(
                name.span(),
                format!("`{name}` is skipped twice; name it once in `skip(…)`"),
            ));
        } else if !bound.contains(name) {
            errors.push(syn::Error::new(
                name.span(),
                format!(
                    "`skip({name})` names no argument of this fn; arguments: {}",
                    list(bound)
                ),
            ));
        }
    }
    for field in args.fingerprint.iter().flat_map(|(_, fields)| fields) {
        if !root_ident(field).is_some_and(|root| bound.contains(root)) {
            errors.push(syn::Error::new_spanned(
                field,
                format!(
                    "`fingerprint(…)` must name arguments or their fields (like `order.amount`); arguments: {}",
                    list(bound)
                ),
            ));
        }
    }
}

/// What the fingerprint hashes: `fingerprint(…)`, or every bound argument not skipped. The
/// arguments the store and the fingerprint strategy come from are infrastructure, never
/// request content: skipped too.
fn fingerprinted(args: &Args, bound: &[Ident]) -> Vec<Expr> {
    if let Some((_, fields)) = &args.fingerprint {
        return fields.clone();
    }
    let infrastructure = [&args.store, &args.fingerprint_strategy]
        .into_iter()
        .filter_map(|option| option.as_ref().and_then(|(_, e)| root_ident(e)));
    let skipped: Vec<&Ident> = args
        .skip
        .iter()
        .flat_map(|(_, names)| names)
        .chain(infrastructure)
        .collect();
    bound
        .iter()
        .filter(|b| !skipped.contains(b))
        .map(|b| syn::parse_quote!(#b))
        .collect()
}

/// The identifiers the fn's argument patterns bind, in order (the receiver excluded).
fn bound_arguments(item: &MaybeItemFn) -> Vec<Ident> {
    let mut out = Vec::new();
    for arg in &item.sig.inputs {
        if let FnArg::Typed(typed) = arg {
            collect(&typed.pat, &mut out);
        }
    }
    out
}

fn collect(pat: &Pat, out: &mut Vec<Ident>) {
    match pat {
        Pat::Ident(p) => {
            out.push(p.ident.clone());
            if let Some((_, sub)) = &p.subpat {
                collect(sub, out);
            }
        }
        Pat::Tuple(p) => p.elems.iter().for_each(|e| collect(e, out)),
        Pat::TupleStruct(p) => p.elems.iter().for_each(|e| collect(e, out)),
        Pat::Struct(p) => p.fields.iter().for_each(|f| collect(&f.pat, out)),
        Pat::Reference(p) => collect(&p.pat, out),
        Pat::Type(p) => collect(&p.pat, out),
        Pat::Paren(p) => collect(&p.pat, out),
        Pat::Slice(p) => p.elems.iter().for_each(|e| collect(e, out)),
        _ => {}
    }
}

pub(crate) fn root_ident(expr: &Expr) -> Option<&Ident> {
    match expr {
        Expr::Path(p) => p.path.get_ident(),
        Expr::Field(f) => root_ident(&f.base),
        _ => None,
    }
}

fn list(idents: &[Ident]) -> String {
    if idents.is_empty() {
        return "none".to_owned();
    }
    idents
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::Errors;

    fn check(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> syn::Result<()> {
        let mut errors = Errors::default();
        let args = Args::parse(args, &mut errors);
        let item: MaybeItemFn = syn::parse2(item)?;
        validate(&args, &item, errors).map(|_| ())
    }

    #[test]
    fn a_valid_fn_passes_and_every_mistake_is_reported_at_once() {
        let ok = check(
            quote::quote!(key = k),
            quote::quote!(
                async fn f(k: &str) -> Result<u8, E> {
                    body()
                }
            ),
        );
        assert!(ok.is_ok());
        let err = check(
            quote::quote!(key = k, skip(k, k, nope)),
            quote::quote!(
                fn f(k: &str) {}
            ),
        )
        .expect_err("four mistakes");
        let messages: Vec<String> = err.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 4, "{messages:?}");
        assert!(messages[0].contains("needs an `async fn`"), "{messages:?}");
        assert!(
            messages.iter().any(|m| m.contains("skipped twice")),
            "{messages:?}"
        );
        assert!(
            messages.iter().any(|m| m.contains("`skip(nope)`")),
            "{messages:?}"
        );
    }

    #[test]
    fn a_body_that_does_not_parse_is_left_to_rustc() {
        let ok = check(
            quote::quote!(key = k),
            quote::quote!(async fn f(k: &str) -> Result<u8, E> { let = ; }),
        );
        assert!(ok.is_ok(), "the body is raw tokens: {ok:?}");
    }
}
