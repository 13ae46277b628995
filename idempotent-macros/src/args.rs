//! The attribute's options, parsed with their spans.

use proc_macro2::{Span, TokenStream};
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::{Expr, Ident, LitStr, Token};

use crate::duration;
use crate::errors::Errors;

/// Where the key comes from.
pub(crate) enum KeySource {
    /// `key = header`, `header("X-Request-Id")`, `header(optional)`,
    /// `header("X-Request-Id", optional)`: HTTP mode.
    Header(HeaderKey),
    /// `key = <expr>`: plain mode.
    Expr(Expr),
}

/// Where an HTTP handler's key comes from.
pub(crate) struct HeaderKey {
    /// The span of `header`.
    pub(crate) span: Span,
    /// The header name, lowercase; `None` for `Idempotency-Key`.
    pub(crate) name: Option<String>,
    /// Whether a request without the header runs unprotected.
    pub(crate) optional: bool,
}

/// A `ttl` or `lease`: a literal checked here, or an expression of type `Duration` evaluated
/// at run time (configuration).
pub(crate) enum DurationArg {
    Millis(u64),
    Expr(Expr),
}

pub(crate) enum Concurrent {
    Reject,
    Wait(u64),
}

/// Every option, each with the span of its name so a duplicate can point at itself.
#[derive(Default)]
pub(crate) struct Args {
    pub(crate) key: Option<(Span, KeySource)>,
    /// `key = …` was given but could not be read (its error is already reported).
    pub(crate) key_invalid: bool,
    pub(crate) ttl: Option<(Span, DurationArg)>,
    pub(crate) lease: Option<(Span, DurationArg)>,
    pub(crate) store: Option<(Span, Expr)>,
    pub(crate) skip: Option<(Span, Vec<Ident>)>,
    pub(crate) fingerprint: Option<(Span, Vec<Expr>)>,
    /// `fingerprint_strategy = <expr>`: a `FingerprintStrategy` instead of the default.
    pub(crate) fingerprint_strategy: Option<(Span, Expr)>,
    pub(crate) scope: Option<(Span, Expr)>,
    pub(crate) name: Option<(Span, LitStr)>,
    pub(crate) concurrent: Option<(Span, Concurrent)>,
    pub(crate) cache_errors: Option<(Span, ())>,
    /// `transaction = tx`: transactional mode; the body gets the transaction as `tx`.
    pub(crate) transaction: Option<(Span, Ident)>,
    /// `crate = path`: where the runtime is (a renamed dependency, a re-export).
    pub(crate) krate: Option<(Span, syn::Path)>,
}

const OPTIONS: &str = "`key`, `ttl`, `lease`, `store`, `skip`, `fingerprint`, `fingerprint_strategy`, `scope`, `name`, `concurrent`, `cache_errors`, `transaction`, `crate`";

impl Args {
    /// Parses the attribute's arguments; errors are collected, not stopped at.
    pub(crate) fn parse(tokens: TokenStream, errors: &mut Errors) -> Self {
        let mut args = Self::default();
        let parser = syn::meta::parser(|meta| {
            if let Err(e) = args.option(&meta) {
                errors.push(e);
                skip_value(&meta)?;
            }
            Ok(())
        });
        if let Err(e) = syn::parse::Parser::parse2(parser, tokens) {
            errors.push(e);
        }
        args
    }

    fn option(&mut self, meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
        let Some(ident) = meta.path.get_ident() else {
            return Err(meta.error(format!("unknown option; expected one of {OPTIONS}")));
        };
        let span = ident.span();
        match ident.to_string().as_str() {
            "key" => {
                let expr: Expr = meta.value()?.parse()?;
                let source = key_source(expr).inspect_err(|_| self.key_invalid = true)?;
                set(&mut self.key, span, "key", source)
            }
            "ttl" => set(&mut self.ttl, span, "ttl", duration_value(meta, "ttl")?),
            "lease" => set(
                &mut self.lease,
                span,
                "lease",
                duration_value(meta, "lease")?,
            ),
            "store" => set(&mut self.store, span, "store", meta.value()?.parse()?),
            "crate" => set(&mut self.krate, span, "crate", crate_path(meta)?),
            "scope" => set(&mut self.scope, span, "scope", meta.value()?.parse()?),
            "fingerprint_strategy" => set(
                &mut self.fingerprint_strategy,
                span,
                "fingerprint_strategy",
                meta.value()?.parse()?,
            ),
            "name" => {
                let lit: LitStr = meta.value()?.parse()?;
                if lit.value().is_empty() {
                    return Err(syn::Error::new(lit.span(), "`name` must not be empty"));
                }
                set(&mut self.name, span, "name", lit)
            }
            "skip" => {
                let content;
                syn::parenthesized!(content in meta.input);
                let names = Punctuated::<Ident, Token![,]>::parse_terminated(&content)?;
                set(&mut self.skip, span, "skip", names.into_iter().collect())
            }
            "fingerprint" => {
                let content;
                syn::parenthesized!(content in meta.input);
                let fields = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
                if fields.is_empty() {
                    return Err(syn::Error::new(
                        span,
                        "`fingerprint(…)` names no field; list the arguments or fields to hash, as in `fingerprint(order.amount)`",
                    ));
                }
                set(
                    &mut self.fingerprint,
                    span,
                    "fingerprint",
                    fields.into_iter().collect(),
                )
            }
            "concurrent" => {
                let expr: Expr = meta.value()?.parse()?;
                set(&mut self.concurrent, span, "concurrent", concurrent(&expr)?)
            }
            "transaction" => {
                let name: Ident = meta.value()?.parse().map_err(|e| {
                    syn::Error::new(
                        e.span(),
                        "`transaction` names the binding the body gets the transaction as: `transaction = tx`",
                    )
                })?;
                set(&mut self.transaction, span, "transaction", name)
            }
            "cache_errors" => {
                if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                    return Err(meta.error("`cache_errors` takes no value; write `cache_errors`"));
                }
                set(&mut self.cache_errors, span, "cache_errors", ())
            }
            other => Err(syn::Error::new(
                span,
                format!("unknown option `{other}`; expected one of {OPTIONS}"),
            )),
        }
    }
}

fn set<T>(slot: &mut Option<(Span, T)>, span: Span, name: &str, value: T) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new(
            span,
            format!("duplicate option `{name}`; give it once"),
        ));
    }
    *slot = Some((span, value));
    Ok(())
}

/// `ttl = "24h"`: a string with a unit, checked here; any other literal (a bare number) gets a
/// hint; any other expression is a `Duration` evaluated at run time.
fn duration_value(meta: &ParseNestedMeta<'_>, option: &str) -> syn::Result<DurationArg> {
    let expr: Expr = meta.value()?.parse()?;
    match &expr {
        Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        }) => duration::parse(lit).map(DurationArg::Millis),
        Expr::Lit(_) => Err(syn::Error::new_spanned(
            &expr,
            format!(
                "`{option}` takes a duration string with a unit, `{option} = \"24h\"` (units: ms, s, m, h, d), or an expression of type `Duration` evaluated at run time"
            ),
        )),
        _ => Ok(DurationArg::Expr(expr)),
    }
}

/// `crate = "path"` (as serde and tokio spell it) or `crate = path`.
fn crate_path(meta: &ParseNestedMeta<'_>) -> syn::Result<syn::Path> {
    let value = meta.value()?;
    if value.peek(LitStr) {
        let lit: LitStr = value.parse()?;
        return lit.parse().map_err(|_| {
            syn::Error::new(
                lit.span(),
                "`crate` names the path of the runtime crate, as in `crate = \"my_company::idempotent\"`",
            )
        });
    }
    value.parse()
}

fn key_source(expr: Expr) -> syn::Result<KeySource> {
    match &expr {
        Expr::Path(path) if path.path.is_ident("header") => Ok(KeySource::Header(HeaderKey {
            span: path.path.segments[0].ident.span(),
            name: None,
            optional: false,
        })),
        Expr::Call(call) => match &*call.func {
            Expr::Path(path) if path.path.is_ident("header") => {
                let mut key = HeaderKey {
                    span: path.path.segments[0].ident.span(),
                    name: None,
                    optional: false,
                };
                for arg in &call.args {
                    match arg {
                        Expr::Lit(syn::ExprLit {
                            lit: syn::Lit::Str(lit),
                            ..
                        }) if key.name.is_none() && !key.optional => {
                            key.name = Some(header_name(lit)?);
                        }
                        Expr::Path(p) if p.path.is_ident("optional") && !key.optional => {
                            key.optional = true;
                        }
                        other => {
                            return Err(syn::Error::new_spanned(
                                other,
                                "expected `header`, `header(\"X-Request-Id\")`, `header(optional)` or `header(\"X-Request-Id\", optional)`",
                            ));
                        }
                    }
                }
                Ok(KeySource::Header(key))
            }
            _ => Ok(KeySource::Expr(expr)),
        },
        _ => Ok(KeySource::Expr(expr)),
    }
}

/// A header name: a non-empty HTTP token (RFC 9110), stored lowercase.
fn header_name(lit: &LitStr) -> syn::Result<String> {
    let name = lit.value();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`{name}` is not a valid header name; use letters, digits and `-`, as in `\"X-Request-Id\"`"
            ),
        ));
    }
    Ok(name.to_ascii_lowercase())
}

fn concurrent(expr: &Expr) -> syn::Result<Concurrent> {
    const EXPECTED: &str = "expected `concurrent = reject` or `concurrent = wait(\"5s\")`";
    match expr {
        Expr::Path(path) if path.path.is_ident("reject") => Ok(Concurrent::Reject),
        Expr::Call(call) => match (&*call.func, call.args.first(), call.args.len()) {
            (
                Expr::Path(path),
                Some(Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(lit),
                    ..
                })),
                1,
            ) if path.path.is_ident("wait") => Ok(Concurrent::Wait(duration::parse(lit)?)),
            _ => Err(syn::Error::new_spanned(expr, EXPECTED)),
        },
        _ => Err(syn::Error::new_spanned(expr, EXPECTED)),
    }
}

/// After a refused option, consumes what is left of it (`= value` or `(…)`), so the next
/// option parses and the refusal is the only error it causes.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let _: Expr = meta.value()?.parse()?;
    } else if meta.input.peek(syn::token::Paren) {
        let _content;
        syn::parenthesized!(_content in meta.input);
    }
    Ok(())
}
