//! Humane durations parsed at compile time: `"500ms"`, `"30s"`, `"15m"`, `"24h"`, `"7d"`.

use syn::LitStr;

/// Milliseconds of a duration literal, or an error spanned at the literal.
pub(crate) fn parse(lit: &LitStr) -> syn::Result<u64> {
    let text = lit.value();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    if number.is_empty() {
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "expected a duration like `\"30s\"`, found `\"{text}\"`; write a number then one of `ms`, `s`, `m`, `h`, `d`"
            ),
        ));
    }
    let value: u64 = number
        .parse()
        .map_err(|_| syn::Error::new(lit.span(), format!("duration `{number}` is too large")))?;
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "" => {
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "duration `\"{text}\"` has no unit; expected one of `ms`, `s`, `m`, `h`, `d`, as in `\"{text}s\"`"
                ),
            ));
        }
        other => {
            return Err(syn::Error::new(
                lit.span(),
                format!(
                    "unknown duration unit `{other}`; expected one of `ms`, `s`, `m`, `h`, `d`"
                ),
            ));
        }
    };
    let millis = value.checked_mul(scale).ok_or_else(|| {
        syn::Error::new(lit.span(), format!("duration `\"{text}\"` is too large"))
    })?;
    if millis == 0 {
        return Err(syn::Error::new(
            lit.span(),
            "duration must be greater than zero",
        ));
    }
    if millis > 365 * 86_400_000 {
        return Err(syn::Error::new(
            lit.span(),
            format!("duration `\"{text}\"` is longer than the maximum of `\"365d\"`"),
        ));
    }
    Ok(millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> LitStr {
        LitStr::new(s, proc_macro2::Span::call_site())
    }

    #[test]
    fn parses_every_unit() {
        let cases = [
            ("500ms", 500),
            ("30s", 30_000),
            ("15m", 900_000),
            ("24h", 86_400_000),
            ("7d", 604_800_000),
            // The largest accepted: the runtime's `MAX_DURATION` (365 days); "366d" is refused.
            ("365d", 31_536_000_000),
        ];
        for (text, millis) in cases {
            assert_eq!(parse(&lit(text)).ok(), Some(millis), "{text}");
        }
    }

    #[test]
    fn refuses_bad_durations_with_a_reason() {
        let cases = [
            ("10x", "unknown duration unit `x`"),
            ("10", "has no unit"),
            ("s", "expected a duration like"),
            ("0s", "greater than zero"),
            ("366d", "longer than the maximum"),
            ("99999999999999999999s", "too large"),
        ];
        for (text, message) in cases {
            let error = parse(&lit(text))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains(message), "{text}: {error}");
        }
    }
}
