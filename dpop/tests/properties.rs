//! Properties: URI normalisation is idempotent and total; verification never panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use handoff_dpop::normalize_htu;
use proptest::prelude::*;

proptest! {
    #[test]
    fn normalisation_is_idempotent(
        scheme in "(?i)https?",
        host in "[a-zA-Z0-9.-]{1,20}",
        port in proptest::option::of(0u32..70_000),
        path in "(/([a-zA-Z0-9._~!$&'()*+,;=:@-]|%[0-9a-fA-F]{2}|\\.|\\.\\.){0,6}){0,6}",
        tail in "(\\?[ -~]{0,10})?(#[ -~]{0,10})?",
    ) {
        let uri = match port {
            Some(p) => format!("{scheme}://{host}:{p}{path}{tail}"),
            None => format!("{scheme}://{host}{path}{tail}"),
        };
        if let Ok(n) = normalize_htu(&uri) {
            prop_assert_eq!(normalize_htu(&n).unwrap(), n.clone());
            prop_assert!(!n.contains('?') && !n.contains('#'));
            // Dot segments are gone from the path (the authority may itself be ".").
            let after_scheme = &n[n.find("://").unwrap() + 3..];
            let path = &after_scheme[after_scheme.find('/').unwrap_or(after_scheme.len())..];
            prop_assert!(
                !path.contains("/./") && !path.contains("/../"),
                "dot segment left in {}", n
            );
            prop_assert!(!path.ends_with("/.") && !path.ends_with("/.."), "dot segment left in {}", n);
        }
    }

    #[test]
    fn normalisation_never_panics(s in "\\PC{0,64}") {
        let _ = normalize_htu(&s);
    }

    #[test]
    fn verification_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        handoff_dpop::fuzz_verify(&bytes);
    }

    #[test]
    fn verification_never_panics_on_jws_shaped_input(
        h in "[A-Za-z0-9_-]{0,80}", p in "[A-Za-z0-9_-]{0,80}", s in "[A-Za-z0-9_-]{0,90}",
    ) {
        handoff_dpop::fuzz_verify(format!("{h}.{p}.{s}").as_bytes());
        handoff_dpop::fuzz_verify(format!("eyJhbGciOiJFUzI1NiJ9.{p}.{s}").as_bytes());
    }
}
