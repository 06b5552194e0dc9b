//! Untrusted input never panics: every parser of the crate on arbitrary text and bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use handoff_core::{Algorithm, Jwks, SigningKey, UnixTime};
use handoff_login::{
    CallbackParams, IdTokenVerifier, PendingLogin, ProviderMetadata, RedirectAllowList, SealingKey,
    TokenResponse,
};
use handoff_verify::NoCustomClaims;
use proptest::prelude::*;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,300}",
        "[a-z_]{1,8}=[%0-9A-Za-z&=+/.:@\\\\#?-]{0,80}(&[a-z_]{1,8}=[%0-9A-Za-z&=+/.:@-]{0,40}){0,5}",
        "(https?|javascript|data)?:?[/\\\\]{0,3}[a-z0-9.@:%\\[\\]-]{0,40}[/?#]?.{0,20}",
    ]
}

proptest! {
    #[test]
    fn parsers_never_panic(s in text(), b in prop::collection::vec(any::<u8>(), 0..400), status in 100u16..600) {
        let _ = CallbackParams::from_query(&s);
        let _ = CallbackParams::from_url(&s);
        let _ = TokenResponse::parse(status, &b);
        let _ = TokenResponse::parse(200, s.as_bytes());
        let _ = ProviderMetadata::parse(&b, "https://idp.example.com");
        let _ = ProviderMetadata::parse(s.as_bytes(), "https://idp.example.com");
        let _ = PendingLogin::from_json(&s);
        let _ = PendingLogin::open(&SealingKey::from_bytes([1; 32]), &s);
        let list = RedirectAllowList::new().allow("https://app.example.com").unwrap();
        if let Ok(a) = list.check(&s) {
            // Whatever passed has exactly the allowed origin.
            prop_assert_eq!(a.url().host_str(), Some("app.example.com"));
            prop_assert_eq!(a.url().scheme(), "https");
            prop_assert_eq!(a.url().port_or_known_default(), Some(443));
            prop_assert!(a.url().username().is_empty() && a.url().password().is_none());
        }
        let _ = RedirectAllowList::new().allow(&s);
    }

    #[test]
    fn id_token_verifier_never_panics(s in ".{0,400}") {
        let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
        let k = SigningKey::generate(Algorithm::EdDSA, &mut rng).unwrap();
        let keys = Jwks::from_keys([k.verifying_key()]).unwrap();
        let v = IdTokenVerifier::builder("app").issuer("https://idp").algorithm(Algorithm::EdDSA).build().unwrap();
        let _ = v.verify::<NoCustomClaims, _>(&s, &keys, "n", UnixTime::from_secs(1));
    }
}
