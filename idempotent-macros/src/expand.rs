//! Validation against the fn, and the thin expansion: extract the key, fingerprint the
//! arguments, call `__private::execute` with the body as `async move { … }`.

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Expr, FnArg, Ident, ItemFn, Pat, ReturnType};

use crate::args::{Args, Concurrent, HeaderKey, KeySource, push};

/// Expands `item` with `args`, or returns every error found.
#[allow(
    clippy::too_many_lines,
    reason = "one list of independent checks, then the expansion"
)]
pub(crate) fn expand(
    args: &Args,
    item: &ItemFn,
    mut errors: Option<syn::Error>,
) -> Result<TokenStream, syn::Error> {
    let sig = &item.sig;
    if sig.asyncness.is_none() {
        push(
            &mut errors,
            syn::Error::new(
                sig.fn_token.span,
                "`#[idempotent]` needs an `async fn`; add `async` before `fn`",
            ),
        );
    }
    let has_receiver = sig.inputs.iter().any(|a| matches!(a, FnArg::Receiver(_)));
    let http = matches!(&args.key, Some((_, KeySource::Header(_))));
    if has_receiver && args.name.is_none() && !http {
        push(
            &mut errors,
            syn::Error::new(
                sig.ident.span(),
                "a method needs a stable operation name, since two types may share a method name in one module: add `name = \"orders.pay\"`",
            ),
        );
    }
    if matches!(sig.output, ReturnType::Default) {
        let message = if http {
            "an axum handler with `key = header` must return a response type (`impl IntoResponse`), like `Result<Json<User>, ApiError>`"
        } else {
            "a plain `#[idempotent]` fn must return `Result<T, E>` with `T: Serialize + DeserializeOwned` and `E: From<idempotent_runtime::Error>`"
        };
        push(&mut errors, syn::Error::new(sig.ident.span(), message));
    }
    let bound = bound_arguments(item);
    let mode = match &args.key {
        None if args.key_invalid => None,
        None => {
            push(
                &mut errors,
                syn::Error::new(
                    Span::call_site(),
                    "missing option `key`: add `key = <expr>` (an argument or field holding the key, e.g. `key = req.idempotency_key`) or `key = header`",
                ),
            );
            None
        }
        Some((_, KeySource::Header(header))) => {
            if !cfg!(feature = "axum") {
                push(
                    &mut errors,
                    syn::Error::new(
                        header.span,
                        "`key = header` makes an axum handler, which needs the `axum` feature of `idempotent-runtime`: enable it in Cargo.toml, or use `key = <expr>`",
                    ),
                );
            }
            if let Some(FnArg::Receiver(receiver)) =
                sig.inputs.iter().find(|a| matches!(a, FnArg::Receiver(_)))
            {
                push(
                    &mut errors,
                    syn::Error::new_spanned(
                        receiver,
                        "`key = header` makes an axum handler, which is a free `async fn`: remove `self` and pass state with `State(…)`",
                    ),
                );
            }
            Some(Mode::Http(header))
        }
        Some((_, KeySource::Expr(expr))) => Some(Mode::Plain(expr)),
    };
    if let (Some((_, _)), Some((span, _))) = (&args.skip, &args.fingerprint) {
        push(
            &mut errors,
            syn::Error::new(
                *span,
                "`skip(…)` and `fingerprint(…)` exclude each other: list what to hash with `fingerprint(…)`, or what to leave out with `skip(…)`",
            ),
        );
    }
    for name in args.skip.iter().flat_map(|(_, names)| names) {
        if !bound.iter().any(|b| b == name) {
            push(
                &mut errors,
                syn::Error::new(
                    name.span(),
                    format!(
                        "`skip({name})` names no argument of this fn; arguments: {}",
                        list(&bound)
                    ),
                ),
            );
        }
    }
    for field in args.fingerprint.iter().flat_map(|(_, fields)| fields) {
        match root_ident(field) {
            Some(root) if bound.iter().any(|b| b == root) => {}
            _ => push(
                &mut errors,
                syn::Error::new_spanned(
                    field,
                    format!(
                        "`fingerprint(…)` must name arguments or their fields (like `order.amount`); arguments: {}",
                        list(&bound)
                    ),
                ),
            ),
        }
    }
    if let Some(errors) = errors {
        return Err(errors);
    }
    let Some(mode) = mode else {
        return Ok(TokenStream::new());
    };
    let fingerprinted: Vec<Expr> = match &args.fingerprint {
        Some((_, fields)) => fields.clone(),
        None => {
            // The argument the store comes from is never request content: skipped too.
            let store_root = args.store.as_ref().and_then(|(_, e)| root_ident(e));
            let skipped: Vec<&Ident> = args
                .skip
                .iter()
                .flat_map(|(_, names)| names)
                .chain(store_root)
                .collect();
            bound
                .iter()
                .filter(|b| !skipped.contains(b))
                .map(|b| syn::parse_quote!(#b))
                .collect()
        }
    };
    Ok(match mode {
        Mode::Plain(key) => plain_body(args, item, key, &fingerprinted),
        Mode::Http(header) => http_body(args, item, header, &fingerprinted),
    })
}

/// Plain async fn or axum handler.
enum Mode<'a> {
    Plain(&'a Expr),
    Http(&'a HeaderKey),
}

/// What both modes share: the operation, the spec, the store, the scope, and the checks that
/// fingerprinted arguments are `Serialize`.
struct Common {
    operation: TokenStream,
    spec: TokenStream,
    scope: TokenStream,
    checks: TokenStream,
}

fn common(args: &Args, item: &ItemFn, fingerprinted: &[Expr]) -> Common {
    let rt = quote!(::idempotent_runtime::__private);
    let fn_name = item.sig.ident.to_string();
    let operation = match &args.name {
        Some((_, name)) => quote!(#name),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let mut spec = quote!(#rt::Spec::new());
    if let Some((_, ms)) = args.ttl {
        spec = quote!(#spec.ttl(#rt::Duration::from_millis(#ms)));
    }
    if let Some((_, ms)) = args.lease {
        spec = quote!(#spec.lease(#rt::Duration::from_millis(#ms)));
    }
    if let Some((_, Concurrent::Wait(ms))) = args.concurrent {
        spec = quote!(#spec.concurrency(#rt::Concurrency::Wait(#rt::Duration::from_millis(#ms))));
    }
    let scope = match &args.scope {
        Some((_, expr)) => {
            quote_spanned!(expr.span()=> ::core::option::Option::Some(::std::string::ToString::to_string(&(#expr))))
        }
        None => quote!(::core::option::Option::<::std::string::String>::None),
    };
    let checks = fingerprinted
        .iter()
        .map(|e| quote_spanned!(e.span()=> #rt::assert_fingerprintable(&#e);))
        .collect();
    Common {
        operation,
        spec,
        scope,
        checks,
    }
}

/// An axum handler: a hidden `RequestHead` extractor goes first, the return type becomes
/// `Response`, and the body runs detached under `__private::execute_http`.
fn http_body(
    args: &Args,
    item: &ItemFn,
    header: &HeaderKey,
    fingerprinted: &[Expr],
) -> TokenStream {
    let rt = quote!(::idempotent_runtime::__private);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let ReturnType::Type(_, ret) = &sig.output else {
        return TokenStream::new();
    };
    let Common {
        operation,
        spec,
        scope,
        checks,
    } = common(args, item, fingerprinted);
    let header_name = header.name.as_deref().unwrap_or("idempotency-key");
    let mut options = quote!(#rt::HttpOptions::new(#operation, #header_name).spec(#spec));
    if header.optional {
        options = quote!(#options.optional());
    }
    if args.cache_errors.is_some() {
        options = quote!(#options.cache_errors());
    }
    let store = match &args.store {
        Some((_, expr)) => quote_spanned!(expr.span()=> #rt::store_handle(&(#expr))),
        None => quote!(#rt::implicit_store(#operation)),
    };
    // The block gets the declared type (so `?` infers), unless it is `impl Trait`, which
    // cannot be named there.
    // `impl Trait` cannot be named there; the witness fn keeps it (and the imports it names)
    // in use and checks that it is a response type.
    let (typed_block, witness) = if contains_impl_trait(ret) {
        let witness = quote! {
            #[allow(dead_code)]
            fn __idempotent_return_type(response: #rt::Response) -> #ret {
                response
            }
        };
        (quote!(async move #block), witness)
    } else {
        (
            quote!(#rt::typed::<#ret, _>(async move #block)),
            TokenStream::new(),
        )
    };
    // Spanned at the return type: "not a response" points there.
    let into_response = quote_spanned! {ret.span()=>
        ::idempotent_runtime::__private::into_response(__idempotent_value)
    };
    let mut sig = sig.clone();
    sig.inputs
        .insert(0, syn::parse_quote!(__idempotent_head: #rt::RequestHead));
    sig.output = syn::parse_quote!(-> #rt::Response);
    quote! {
        #(#attrs)*
        #vis #sig {
            static __IDEMPOTENT_HTTP: #rt::HttpOptions = #options;
            #witness
            #checks
            let __idempotent_fingerprint = #rt::fingerprint_http(
                &__IDEMPOTENT_HTTP,
                &__idempotent_head,
                &(#(&#fingerprinted,)*),
            );
            let __idempotent_scope = #scope;
            let __idempotent_store = #store;
            let __idempotent_body = async move {
                let __idempotent_value = #typed_block.await;
                #into_response
            };
            #rt::execute_http(
                __idempotent_store,
                &__IDEMPOTENT_HTTP,
                &__idempotent_head,
                __idempotent_scope,
                __idempotent_fingerprint,
                __idempotent_body,
            )
            .await
        }
    }
}

fn plain_body(args: &Args, item: &ItemFn, key: &Expr, fingerprinted: &[Expr]) -> TokenStream {
    let rt = quote!(::idempotent_runtime::__private);
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = item;
    let ReturnType::Type(_, ret) = &sig.output else {
        return TokenStream::new();
    };
    let Common {
        operation,
        spec,
        scope,
        checks,
    } = common(args, item, fingerprinted);
    let codec = if args.cache_errors.is_some() {
        quote!(#rt::CacheErrors)
    } else {
        quote!(#rt::Plain)
    };
    let store = match &args.store {
        Some((_, expr)) => quote_spanned! {expr.span()=>
            let __idempotent_store_handle = #rt::store_handle(&(#expr));
            let __idempotent_store: &dyn #rt::IdempotencyStore = &__idempotent_store_handle;
        },
        None => {
            quote!(let __idempotent_store: &dyn #rt::IdempotencyStore = #rt::implicit_store(__idempotent_operation);)
        }
    };
    let into_key = quote_spanned!(key.span()=> #rt::IntoKey::into_key(&(#key)));
    // A type whose well-formedness needs the codec: the error points at the return type.
    let assert_result = quote_spanned! {ret.span()=>
        let _: ::idempotent_runtime::__private::AssertResult<#ret, #codec> =
            ::idempotent_runtime::__private::AssertResult::new();
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            static __IDEMPOTENT_SPEC: #rt::Spec = #spec;
            #assert_result
            let __idempotent_key = #into_key;
            #checks
            let __idempotent_operation: &'static str = #operation;
            let __idempotent_fingerprint = #rt::fingerprint(__idempotent_operation, &(#(&#fingerprinted,)*));
            let __idempotent_scope = #scope;
            #store
            let __idempotent_body = #rt::typed::<#ret, _>(async move #block);
            match (__idempotent_key, __idempotent_fingerprint) {
                (::core::result::Result::Ok(key), ::core::result::Result::Ok(fingerprint)) => {
                    #rt::execute::<#ret, #codec, _>(
                        __idempotent_store,
                        &__IDEMPOTENT_SPEC,
                        __idempotent_operation,
                        ::core::option::Option::as_deref(&__idempotent_scope),
                        &key,
                        fingerprint,
                        __idempotent_body,
                    )
                    .await
                }
                (::core::result::Result::Err(error), _) | (_, ::core::result::Result::Err(error)) => {
                    #rt::reject::<#ret, #codec>(__idempotent_operation, error)
                }
            }
        }
    }
}

fn contains_impl_trait(ty: &syn::Type) -> bool {
    fn walk(tokens: TokenStream) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => i == "impl",
            proc_macro2::TokenTree::Group(g) => walk(g.stream()),
            _ => false,
        })
    }
    walk(quote!(#ty))
}

/// The identifiers the fn's argument patterns bind, in order (the receiver excluded).
fn bound_arguments(item: &ItemFn) -> Vec<Ident> {
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

fn root_ident(expr: &Expr) -> Option<&Ident> {
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
