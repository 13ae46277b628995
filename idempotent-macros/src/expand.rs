//! The thin expansion of a [`Validated`] fn: extract the key, fingerprint the arguments, call
//! one runtime function with the body as `async move { … }`. Nothing here can fail.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use crate::args::{Concurrent, DurationArg, HeaderKey};
use crate::validate::{Mode, Validated};

/// The fn, rewritten to run its body under the protocol.
pub(crate) fn expand(valid: &Validated<'_>) -> TokenStream {
    match valid.mode {
        Mode::Plain(key) => plain(valid, key),
        Mode::Http(header) => http(valid, header),
    }
}

/// What both modes share: the operation, the spec, the scope, and the checks that
/// fingerprinted arguments are `Serialize`.
struct Common {
    operation: TokenStream,
    spec: TokenStream,
    scope: TokenStream,
    checks: TokenStream,
}

/// The path of the runtime's hidden module: `crate = …`, or `::idempotent_runtime`.
pub(crate) fn runtime(valid: &Validated<'_>) -> TokenStream {
    runtime_at(valid, proc_macro2::Span::call_site())
}

/// [`runtime`] with every token at `span`, for calls whose errors must point at a user's
/// token (the return type): an interpolated path keeps its own spans otherwise.
fn runtime_at(valid: &Validated<'_>, span: proc_macro2::Span) -> TokenStream {
    let path = match &valid.args.krate {
        Some((_, path)) => quote!(#path::__private),
        None => quote!(::idempotent_runtime::__private),
    };
    path.into_iter()
        .map(|mut token| {
            token.set_span(span);
            token
        })
        .collect()
}

/// The spec's `ttl`/`lease` argument: a literal's milliseconds, or the run-time expression
/// (spanned there, so a value that is not a `Duration` is reported at it).
fn duration(rt: &TokenStream, arg: &DurationArg) -> TokenStream {
    match arg {
        DurationArg::Millis(ms) => quote!(#rt::Duration::from_millis(#ms)),
        DurationArg::Expr(expr) => {
            quote_spanned!(expr.span()=> #rt::runtime_duration(#expr))
        }
    }
}

fn common(valid: &Validated<'_>) -> Common {
    let rt = runtime(valid);
    let args = valid.args;
    let fn_name = valid.item.sig.ident.to_string();
    let operation = match &args.name {
        Some((_, name)) => quote!(#name),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let mut spec = quote!(#rt::Spec::new());
    if let Some((_, ttl)) = &args.ttl {
        let ttl = duration(&rt, ttl);
        spec = quote!(#spec.ttl(#ttl));
    }
    if let Some((_, lease)) = &args.lease {
        let lease = duration(&rt, lease);
        spec = quote!(#spec.lease(#lease));
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
    let checks = valid
        .fingerprinted
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

/// A plain async fn: one call of `__private::run`, whose path carries the return type's span,
/// so a return type that cannot be stored is reported once, there.
fn plain(valid: &Validated<'_>, key: &syn::Expr) -> TokenStream {
    let rt = runtime(valid);
    let (item, ret) = (valid.item, valid.ret);
    let (attrs, vis, sig, body) = (&item.attrs, &item.vis, &item.sig, &item.body);
    let Common {
        operation,
        spec,
        scope,
        checks,
    } = common(valid);
    // Spanned at the return type, as the call's path: an unsatisfied `ResultCodec` bound is
    // reported at the generic arguments, so there.
    let rt_at_ret = runtime_at(valid, ret.span());
    let codec = if valid.args.cache_errors.is_some() {
        quote_spanned!(ret.span()=> #rt_at_ret::CacheErrors)
    } else {
        quote_spanned!(ret.span()=> #rt_at_ret::Plain)
    };
    let store = match &valid.args.store {
        Some((_, expr)) if valid.args.transaction.is_some() => quote_spanned! {expr.span()=>
            let __idempotent_store_handle = #rt::store_handle(&(#expr));
        },
        Some((_, expr)) => quote_spanned! {expr.span()=>
            let __idempotent_store_handle = #rt::store_handle(&(#expr));
            let __idempotent_store: &dyn #rt::IdempotencyStore = &__idempotent_store_handle;
        },
        None => {
            quote!(let __idempotent_store: &dyn #rt::IdempotencyStore = #rt::implicit_store(__idempotent_operation);)
        }
    };
    let fingerprint = fingerprint_call(valid, "fingerprint", &quote!(__idempotent_operation));
    let spec_item = options_item(valid, &quote!(__IDEMPOTENT_SPEC: #rt::Spec), &spec);
    let stored_key = stored_key_call(&rt, key);
    // The whole call and its `.await` carry the return type's span: the bound is checked at
    // the call and again where the future is awaited, and both then point at the return type.
    let run = if let Some((_, tx)) = &valid.args.transaction {
        quote_spanned! {ret.span()=>
            #rt_at_ret::run_transactional::<#ret, #codec, _, _, _>(
                &__idempotent_store_handle,
                &__IDEMPOTENT_SPEC,
                __idempotent_operation,
                __idempotent_key,
                __idempotent_fingerprint,
                #[allow(unused_mut)]
                move |mut __idempotent_tx| async move {
                    let __idempotent_value = #rt::typed::<#ret, _>(async {
                        let #tx = &mut __idempotent_tx;
                        #body
                    })
                    .await;
                    (__idempotent_tx, __idempotent_value)
                },
            )
            .await
        }
    } else {
        quote_spanned! {ret.span()=>
            #rt_at_ret::run::<#ret, #codec, _>(
                __idempotent_store,
                &__IDEMPOTENT_SPEC,
                __idempotent_operation,
                __idempotent_key,
                __idempotent_fingerprint,
                #rt::typed::<#ret, _>(async move #body),
            )
            .await
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            #spec_item
            static __IDEMPOTENT_KEY_PREFIX: #rt::KeyPrefix = #rt::KeyPrefix::new();
            let __idempotent_operation: &'static str = #operation;
            let __idempotent_key = {
                let __idempotent_scope = #scope;
                #stored_key
            };
            #checks
            let __idempotent_fingerprint = #fingerprint;
            #store
            #run
        }
    }
}

/// The call that hashes the key into its stored key, where it is read: the stored key is all
/// the protocol needs, so the client's key is never copied, and the borrow ends before the
/// body takes the arguments. Spanned at the key expression, so a wrong type is reported there.
fn stored_key_call(rt: &TokenStream, key: &syn::Expr) -> TokenStream {
    quote_spanned! {key.span()=>
        #rt::IntoKey::stored_key(
            &(#key),
            &__IDEMPOTENT_KEY_PREFIX,
            __idempotent_operation,
            ::core::option::Option::as_deref(&__idempotent_scope),
        )
    }
}

/// The call that fingerprints the arguments: `function(context, args)`, or
/// `function_with(&strategy, context, args)` for `fingerprint_strategy = …`, spanned at the
/// strategy so a wrong type is reported there.
fn fingerprint_call(valid: &Validated<'_>, function: &str, context: &TokenStream) -> TokenStream {
    let rt = runtime(valid);
    let fingerprinted = &valid.fingerprinted;
    let args = quote!(#context, &(#(&#fingerprinted,)*));
    match &valid.args.fingerprint_strategy {
        None => {
            let function = quote::format_ident!("{function}");
            quote!(#rt::#function(#args))
        }
        Some((_, strategy)) => {
            let function = quote::format_ident!("{function}_with");
            quote_spanned! {strategy.span()=> #rt::#function(&(#strategy), #args) }
        }
    }
}

/// An axum handler: a hidden `RequestHead` extractor goes first, the return type becomes
/// `Response`, and the body runs detached under `__private::execute_http`.
fn http(valid: &Validated<'_>, header: &HeaderKey) -> TokenStream {
    let rt = runtime(valid);
    let item = valid.item;
    let (attrs, vis) = (&item.attrs, &item.vis);
    let Common {
        operation,
        spec,
        scope,
        checks,
    } = common(valid);
    let fingerprint = fingerprint_call(
        valid,
        "fingerprint_http",
        &quote!(&__IDEMPOTENT_HTTP, &__idempotent_head),
    );
    let header_name = match &header.name {
        Some(name) => quote!(#name),
        None => quote!(#rt::IDEMPOTENCY_KEY_HEADER),
    };
    let mut options = quote!(#rt::HttpOptions::new(#operation, #header_name).spec(#spec));
    if header.optional {
        options = quote!(#options.optional());
    }
    if valid.args.cache_errors.is_some() {
        options = quote!(#options.cache_errors());
    }
    let store = match &valid.args.store {
        Some((_, expr)) => quote_spanned!(expr.span()=> #rt::store_handle(&(#expr))),
        None => quote!(#rt::implicit_store(#operation)),
    };
    let options_item = options_item(
        valid,
        &quote!(__IDEMPOTENT_HTTP: #rt::HttpOptions),
        &options,
    );
    let (witness, call) = http_call(valid);
    let mut sig = item.sig.clone();
    // The key is read by the extractor from `Idempotency-Key`; a handler keyed by another
    // header keeps the request's headers (the extractor cannot see the options).
    let head = if header.name.is_some() {
        quote!(#rt::HeadWithHeaders)
    } else {
        quote!(#rt::RequestHead)
    };
    sig.inputs
        .insert(0, syn::parse_quote!(__idempotent_head: #head));
    sig.output = syn::parse_quote!(-> #rt::Response);
    quote! {
        #(#attrs)*
        #vis #sig {
            #options_item
            #witness
            #checks
            let __idempotent_head: #rt::RequestHead = ::core::convert::Into::into(__idempotent_head);
            let __idempotent_fingerprint = #fingerprint;
            let __idempotent_scope = #scope;
            let __idempotent_store = #store;
            #call
        }
    }
}

/// The witness of an `impl Trait` return type (empty otherwise), and the call that runs the
/// handler's body under the protocol: detached by `execute_http`, or — in transactional mode —
/// as a whole, spawned here where the handler's type is known.
fn http_call(valid: &Validated<'_>) -> (TokenStream, TokenStream) {
    let rt = runtime(valid);
    let (ret, body) = (valid.ret, &valid.item.body);
    // The block gets the declared type (so `?` infers), unless it is `impl Trait`, which
    // cannot be named there; then a never-called witness fn keeps the user's return type (and
    // the imports it names) in use and checks that it is a response type.
    let (typed_block, witness) = if contains_impl_trait(ret) {
        let witness = quote! {
            #[allow(dead_code)]
            fn __idempotent_return_type(response: #rt::Response) -> #ret {
                response
            }
        };
        (quote!(async move #body), witness)
    } else {
        (
            quote!(#rt::typed::<#ret, _>(async move #body)),
            TokenStream::new(),
        )
    };
    // Spanned at the return type: "not a response" points there.
    let rt_at_ret = runtime_at(valid, ret.span());
    let into_response = quote_spanned! {ret.span()=>
        #rt_at_ret::into_response(__idempotent_value)
    };
    // In transactional mode the body borrows the transaction as `tx`, in a block of its own so
    // that a `return` in it returns the handler's value.
    let typed_tx_block = match &valid.args.transaction {
        Some((_, tx)) if contains_impl_trait(ret) => quote!(async {
            let #tx = &mut __idempotent_tx;
            #body
        }),
        Some((_, tx)) => quote!(#rt::typed::<#ret, _>(async {
            let #tx = &mut __idempotent_tx;
            #body
        })),
        None => TokenStream::new(),
    };
    // The `static` by reference; options built at this call move into the detached task.
    let options_arg = if runs_time_options(valid) {
        quote!(__IDEMPOTENT_HTTP)
    } else {
        quote!(&__IDEMPOTENT_HTTP)
    };
    let call = match &valid.args.transaction {
        // The whole protocol runs detached, spawned here, where the handler's type is known.
        Some(_) => quote! {
            #rt::detach(#rt::execute_http_transactional(
                __idempotent_store,
                #options_arg,
                __idempotent_head,
                __idempotent_scope,
                __idempotent_fingerprint,
                move |mut __idempotent_tx| async move {
                    let __idempotent_value = #typed_tx_block.await;
                    (__idempotent_tx, #into_response)
                },
            ))
            .await
        },
        None => quote! {
            let __idempotent_body = async move {
                let __idempotent_value = #typed_block.await;
                #into_response
            };
            #rt::execute_http(
                __idempotent_store,
                #options_arg,
                __idempotent_head,
                __idempotent_scope,
                __idempotent_fingerprint,
                __idempotent_body,
            )
            .await
        },
    };
    (witness, call)
}

/// `static NAME: TYPE = VALUE;` when every option is a literal; a `let`, built at each call,
/// when one is an expression evaluated at run time.
fn options_item(
    valid: &Validated<'_>,
    name_and_type: &TokenStream,
    value: &TokenStream,
) -> TokenStream {
    if runs_time_options(valid) {
        quote!(#[allow(non_snake_case)] let #name_and_type = #value;)
    } else {
        quote!(static #name_and_type = #value;)
    }
}

/// Whether `ttl` or `lease` is an expression evaluated at run time.
fn runs_time_options(valid: &Validated<'_>) -> bool {
    [&valid.args.ttl, &valid.args.lease]
        .into_iter()
        .any(|option| matches!(option, Some((_, DurationArg::Expr(_)))))
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
