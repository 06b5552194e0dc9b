//! Regenerates the checked-in seed corpus `fuzz/corpus/<target>/`:
//! `cargo run --manifest-path fuzz/Cargo.toml -p fuzz-entries --example write_seeds`.
//!
//! Seeds are valid inputs (tokens signed by the fuzz keys, key sets, proofs, handshake
//! messages, refresh tokens) plus a few near-misses, so that mutations start deep inside
//! each parser. The RFC 9449 proofs are copied from identity-core's test data.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use handoff_core::jws::{self, SignHeader};
use handoff_core::{Jwks, b64};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

fn main() {
    let mut rng = rand_free::Counter(1);
    let keys = fuzz_entries::signing_keys();
    let now = 1_562_262_618u64;

    // JWS: one valid token per algorithm, with and without kid/crit/typ variations.
    for k in &keys {
        let alg = k.algorithm();
        let claims = format!(
            r#"{{"iss":"https://issuer.example","sub":"user-1","aud":"api","exp":{},"iat":{now},"jti":"j-{alg}"}}"#,
            now + 3600
        );
        let t = jws::sign(
            k,
            &SignHeader {
                typ: Some("JWT"),
                kid: None,
                jwk: None,
            },
            claims.as_bytes(),
            &mut rng,
        )
        .unwrap();
        write("jws_decode_verify", &format!("valid-{alg}"), t.as_bytes());
        let t = jws::sign(
            k,
            &SignHeader {
                typ: Some("at+jwt"),
                kid: Some("k-1"),
                jwk: None,
            },
            b"{}",
            &mut rng,
        )
        .unwrap();
        write("jws_decode_verify", &format!("kid-{alg}"), t.as_bytes());
    }
    let h = |json: &str| b64::encode(json.as_bytes());
    let p = b64::encode(br#"{"sub":"x"}"#);
    for (name, header) in [
        ("none", r#"{"alg":"none"}"#),
        ("crit", r#"{"alg":"EdDSA","crit":["exp"],"exp":1}"#),
        ("dup-alg", r#"{"alg":"EdDSA","alg":"HS256"}"#),
        (
            "jku",
            r#"{"alg":"ES256","jku":"https://attacker.example/jwks"}"#,
        ),
    ] {
        write(
            "jws_decode_verify",
            name,
            format!("{}.{p}.c2ln", h(header)).as_bytes(),
        );
    }

    // JWKS: the public keys, a set with skipped members, and near-misses.
    let public = Jwks::from_keys(
        keys.iter()
            .filter(|k| k.algorithm().is_asymmetric())
            .enumerate()
            .map(|(i, k)| k.verifying_key().with_kid(format!("k-{i}")).unwrap()),
    )
    .unwrap();
    write("jwks_parse", "public", public.to_json().as_bytes());
    let private: Vec<_> = keys
        .iter()
        .filter(|k| k.algorithm().is_asymmetric())
        .map(|k| serde_json::to_value(k.to_private_jwk()).unwrap())
        .collect();
    write(
        "jwks_parse",
        "private-and-oct",
        serde_json::to_string(&serde_json::json!({"keys": [
            private[0],
            {"kty": "oct", "k": "AAAA", "kid": "sym"},
            {"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "use": "enc"}
        ]}))
        .unwrap()
        .as_bytes(),
    );
    write("jwks_parse", "empty", br#"{"keys":[]}"#);
    write(
        "jwks_parse",
        "not-a-set",
        br#"{"kty":"OKP","crv":"Ed25519","x":"AA"}"#,
    );

    // DPoP: the RFC 9449 examples, plus proofs for the request fuzz_verify builds.
    let rfc: serde_json::Value = serde_json::from_str(include_str!(
        "../../../identity-core/tests/data/rfc9449-dpop.json"
    ))
    .unwrap();
    for proof in rfc["proofs"].as_array().unwrap() {
        write(
            "dpop_verify",
            proof["name"].as_str().unwrap(),
            proof["proof"].as_str().unwrap().as_bytes(),
        );
    }
    for k in keys.iter().filter(|k| k.algorithm().is_asymmetric()) {
        let jwk = k.verifying_key().to_public_jwk().unwrap();
        let claims = format!(
            r#"{{"jti":"p-{alg}","htm":"GET","htu":"https://rs.example/resource","iat":{now},"ath":"{ath}"}}"#,
            alg = k.algorithm(),
            ath = handoff_dpop::ath("token")
        );
        let t = jws::sign(
            k,
            &SignHeader {
                typ: Some("dpop+jwt"),
                kid: None,
                jwk: Some(&jwk),
            },
            claims.as_bytes(),
            &mut rng,
        )
        .unwrap();
        write(
            "dpop_verify",
            &format!("resource-{}", k.algorithm()),
            t.as_bytes(),
        );
        write(
            "dpop_verify",
            &format!("method-uri-{}", k.algorithm()),
            b"GET https://rs.example/resource?x=1#f",
        );
    }

    // Device handshake: dvh1.<device>.<key>.<ts>.<nonce>.<body hash>.<mac>.
    let nonce = b64::encode(&[7u8; 16]);
    let body = b64::encode(&[9u8; 32]);
    let mac = b64::encode(&[3u8; 32]);
    write(
        "device_handshake_parse",
        "valid-shape",
        format!("dvh1.device-1.key-1.{now}.{nonce}.{body}.{mac}").as_bytes(),
    );
    write(
        "device_handshake_parse",
        "long-ids",
        format!("dvh1.{}.k:2_x.0.{nonce}.{body}.{mac}", "d".repeat(64)).as_bytes(),
    );
    write(
        "device_handshake_parse",
        "session-token-like",
        b"dvs1.AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBB",
    );

    // Refresh tokens: rf1.<base64url of 80 bytes>.
    let payload: Vec<u8> = (0u8..80).collect();
    write(
        "refresh_token_parse",
        "valid-shape",
        format!("rf1.{}", b64::encode(&payload)).as_bytes(),
    );
    write(
        "refresh_token_parse",
        "zeros",
        format!("rf1.{}", b64::encode(&[0u8; 80])).as_bytes(),
    );
    write("refresh_token_parse", "short", b"rf1.AAAA");
    login_seeds(&mut rng);
    encrypted_seeds(&keys);
    audit_log_seeds();
    stores_row_seeds();
    edge_seeds(&keys, &mut rng);
    println!("seed corpus written");
}

fn with_prefix(prefix: u8, bytes: &[u8]) -> Vec<u8> {
    let mut v = vec![prefix];
    v.extend_from_slice(bytes);
    v
}

const METADATA: &str = r#"{"issuer":"https://issuer.example","authorization_endpoint":"https://issuer.example/authorize","token_endpoint":"https://issuer.example/token","jwks_uri":"https://issuer.example/jwks","response_types_supported":["code","id_token"],"code_challenge_methods_supported":["S256"],"token_endpoint_auth_methods_supported":["client_secret_basic","client_secret_post","none"],"id_token_signing_alg_values_supported":["RS256","ES256"],"authorization_response_iss_parameter_supported":true}"#;

fn login_seeds(rng: &mut rand_free::Counter) {
    use handoff_login::{AppContext, ClientAuth, ClientConfig, PendingLogin, ProviderMetadata};

    let t = "login_metadata_parse";
    write(t, "full", METADATA.as_bytes());
    write(
        t,
        "loopback-minimal",
        br#"{"issuer":"http://127.0.0.1:8080","authorization_endpoint":"http://127.0.0.1:8080/a","token_endpoint":"http://localhost:8080/t","jwks_uri":"http://[::1]:8080/k","response_types_supported":["code"]}"#,
    );
    write(
        t,
        "plain-http-no-pkce",
        br#"{"issuer":"https://issuer.example","authorization_endpoint":"http://issuer.example/a","token_endpoint":"https://u:p@issuer.example/t#f","jwks_uri":"https://issuer.example/k","response_types_supported":["token"],"code_challenge_methods_supported":["plain"]}"#,
    );
    write(t, "issuer-only", b"https://issuer.example/");

    let t = "login_token_response_parse";
    write(
        t,
        "ok-bearer",
        &with_prefix(
            0,
            br#"{"access_token":"at-1","token_type":"Bearer","id_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln","expires_in":3600,"refresh_token":"rt-1","scope":"openid email"}"#,
        ),
    );
    write(
        t,
        "ok-dpop-dup",
        &with_prefix(
            1,
            br#"{"access_token":"at","token_type":"DPoP","id_token":"x","access_token":"again"}"#,
        ),
    );
    write(
        t,
        "error",
        &with_prefix(
            2,
            br#"{"error":"invalid_grant","error_description":"the code expired"}"#,
        ),
    );
    write(t, "html", &with_prefix(3, b"<html>502 Bad Gateway</html>"));

    let t = "login_callback_parse";
    write(
        t,
        "code",
        b"code=abc&state=state-1&iss=https%3A%2F%2Fissuer.example",
    );
    write(
        t,
        "url",
        b"https://app.example.com/callback?code=a%20b+c&state=state-1&iss=https://issuer.example&x=1",
    );
    write(
        t,
        "error",
        b"error=access_denied&error_description=user+said+no&state=state-1&iss=https%3A%2F%2Fissuer.example",
    );
    write(t, "repeated", b"code=a&code=b&state=");

    let t = "login_redirect_check";
    for (name, url) in [
        ("app", "https://app.example.com/done?x=1"),
        ("localhost", "http://localhost:3000/"),
        ("ipv6", "https://[::1]:8443/a/b"),
        ("idn", "https://bücher.example/"),
        ("userinfo", "https://evil.example@app.example.com/"),
        ("suffix", "https://app.example.com.evil.example/"),
        ("scheme-relative", "//app.example.com/x"),
        ("encoded", "https://app.example.com%2f@evil.example/"),
        ("default-port", "https://APP.example.com:443/x"),
    ] {
        write(t, name, url.as_bytes());
    }

    let t = "login_pending_open";
    let md = ProviderMetadata::parse(METADATA.as_bytes(), "https://issuer.example").unwrap();
    let client = ClientConfig::new(
        "client-1",
        "https://app.example.com/callback",
        ClientAuth::None,
    )
    .unwrap();
    let start = handoff_login::authorize(
        &md,
        &client,
        b"browser",
        AppContext::new(
            Some("https://app.example.com/done".into()),
            Some("admin".into()),
        ),
        handoff_core::UnixTime::from_secs(1_000),
        rng,
    )
    .unwrap();
    let sealed = start.pending.seal(&fuzz_entries::SEALING_KEY, rng).unwrap();
    write(t, "sealed", &with_prefix(0, sealed.as_bytes()));
    let json = start.pending.to_json();
    write(t, "json", &with_prefix(1, json.as_bytes()));
    assert!(PendingLogin::from_json(&json).is_ok());
    write(
        t,
        "sealed-short",
        &with_prefix(0, b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    );
}

fn encrypted_seeds(keys: &[handoff_core::SigningKey]) {
    use handoff_core::encrypted::{self, Passphrase};
    use pkcs8::pkcs5::{pbes2, scrypt};
    use pkcs8::{LineEnding, PrivateKeyInfoRef, der::Decode};

    let t = "encrypted_key_read";
    let pass = Passphrase::new("fuzz").unwrap();
    let mut rng = rand_free::Counter(7);
    let mut pems = Vec::new();
    for k in keys.iter().filter(|k| k.algorithm().is_asymmetric()) {
        pems.push((
            k.algorithm().to_string(),
            encrypted::encrypt_signing_key(k, &pass, &mut rng).unwrap(),
        ));
    }
    let hmac = handoff_core::HmacSecret::new(vec![5u8; 32]).unwrap();
    pems.push((
        "hmac".into(),
        encrypted::encrypt_hmac_secret(&hmac, &pass, &mut rng).unwrap(),
    ));
    for (name, pem) in &pems {
        // As written (default cost: parsed and cost-checked only).
        write(
            t,
            &format!("pem-default-{name}"),
            &with_prefix(0, pem.as_bytes()),
        );
        let der = encrypted::decrypt_pkcs8_der(pem, &pass).unwrap();
        write(t, &format!("der-{name}"), &with_prefix(1, der.as_bytes()));
        let info = PrivateKeyInfoRef::from_der(der.as_bytes()).unwrap();
        // Cheap scrypt and cheap PBKDF2: the fuzzer reaches decryption and what follows.
        let cheap = [
            pbes2::Parameters::generate_scrypt_aes256cbc(
                scrypt::Params::new(2, 8, 1).unwrap(),
                &[1u8; 16],
                [2u8; 16],
            )
            .unwrap(),
            pbes2::Parameters::generate_pbkdf2_sha256_aes128cbc(10, &[3u8; 16], [4u8; 16]).unwrap(),
        ];
        for (i, params) in cheap.into_iter().enumerate() {
            let doc = info.encrypt_with_params(params, b"fuzz").unwrap();
            let pem = doc
                .to_pem(encrypted::ENCRYPTED_PEM_LABEL, LineEnding::LF)
                .unwrap();
            write(
                t,
                &format!("pem-cheap{i}-{name}"),
                &with_prefix(0, pem.as_bytes()),
            );
        }
    }
}

fn audit_log_seeds() {
    let t = "audit_log_read";
    let lines = concat!(
        r#"{"event":"pairing_requested","device_id":"dev-1","key_id":"key-1","at":100,"expires_at":400}"#,
        "\n",
        r#"{"event":"approved","device_id":"dev-1","by":"op:alice","at":120}"#,
        "\n",
        r#"{"event":"key_rotated","device_id":"dev-1","new_key_id":"key-2","old_key_id":"key-1","old_key_until":900,"at":300}"#,
        "\n",
        r#"{"event":"handshake_failed","device_id":null,"key_id":"key-2","reason":"bad_mac","at":301}"#,
        "\n",
        r#"{"event":"session_issued","device_id":"dev-1","session_ref":"AAAAAAAAAAAAAAAA","expires_at":1000,"at":302}"#,
        "\n",
    );
    let read =
        handoff_device::audit_log::read_audit_lines(lines.as_bytes(), Path::new("seed")).unwrap();
    assert_eq!(read.events.len(), 5);
    write(t, "events", lines.as_bytes());
    let mut torn = lines.as_bytes().to_vec();
    torn.extend_from_slice(br#"{"event":"revoked","device_id":"de"#);
    write(t, "torn-tail", &torn);
    write(t, "corrupt", b"{\"event\":\"approved\"}\nnot json\n");
}

fn stores_row_seeds() {
    let t = "stores_row_decode";
    let seeds = handoff_stores::fuzz_seed_rows();
    assert_eq!(seeds.len(), 25);
    for (name, bytes) in &seeds {
        write(t, name, bytes);
    }
    // Near-misses: a family one byte short, a token whose state is unknown.
    let (_, family) = &seeds[0];
    write(t, "family-truncated", &family[..family.len() - 1]);
    let (_, token) = &seeds[6];
    let mut bad = token.clone();
    if let Some(i) = bad.windows(6).position(|w| w == b"active") {
        bad[i] = b'A';
    }
    write(t, "token-unknown-state", &bad);
}

/// Seeds of the edge targets: HTTP messages (`name: value` lines, an empty line, the
/// body) carrying real tokens and proofs of the fuzz keys at `handoff_edge::fuzz::FUZZ_NOW`.
fn edge_seeds(keys: &[handoff_core::SigningKey], rng: &mut rand_free::Counter) {
    use handoff_edge::fuzz as ef;
    use handoff_verify::{AccessClaims, ServiceClaims, mint_access_token, mint_service_token};
    let now = handoff_core::UnixTime::from_secs(ef::FUZZ_NOW);
    let ed = keys
        .iter()
        .find(|k| k.algorithm() == handoff_core::Algorithm::EdDSA)
        .unwrap();
    // Proofs signed with the Ed25519 fuzz key: its signature check is the cheapest, and
    // `dpop_verify` covers the other algorithms.
    let (alg, pem) = fuzz_entries::PRIVATE_PEMS[0];
    let proof_key = handoff_core::SigningKey::from_pem(pem, alg).unwrap();
    let dpop_key = handoff_dpop::DpopKey::from_signing_key(proof_key).unwrap();
    let resource = format!("{}{}", ef::FUZZ_ORIGIN, ef::FUZZ_PATH);

    // edge_auth_headers: a DPoP-bound access token with its proof, an unbound one as
    // Bearer, a host token, a service token, and the usual malformations.
    let t = "edge_auth_headers";
    let state = ef::FuzzAuth::new(&ed.verifying_key()).unwrap();
    let claims = AccessClaims::new(
        ef::FUZZ_ISSUER,
        "tenant-1/user-1",
        ef::FUZZ_AUDIENCE,
        "web-app",
    );
    let bound = mint_access_token(
        &claims.clone().bound_to(dpop_key.thumbprint()),
        ed,
        now,
        rng,
    )
    .unwrap();
    let bound = bound.as_str();
    let unbound = mint_access_token(&claims, ed, now, rng).unwrap();
    let unbound = unbound.as_str();
    let proof = dpop_key
        .proof("GET", &resource, now, rng, None, Some(bound))
        .unwrap();
    let other_proof = dpop_key
        .proof("GET", &resource, now, rng, None, Some(bound))
        .unwrap();
    let host_claims = format!(
        r#"{{"iss":"{iss}","aud":"{aud}","sub":"user-1","host_tenant_id":"tenant-1","iat":{now},"exp":{exp},"jti":"host-jti-1"}}"#,
        iss = ef::FUZZ_ISSUER,
        aud = ef::FUZZ_AUDIENCE,
        now = ef::FUZZ_NOW,
        exp = ef::FUZZ_NOW + 300
    );
    let host = jws::sign(
        ed,
        &SignHeader {
            typ: Some(handoff_verify::HOST_TOKEN_TYP),
            kid: None,
            jwk: None,
        },
        host_claims.as_bytes(),
        rng,
    )
    .unwrap();
    let service = mint_service_token(
        &ServiceClaims::new(
            ef::FUZZ_ISSUER,
            "billing",
            ef::FUZZ_AUDIENCE,
            ["orders:read"],
        ),
        ed,
        now,
        rng,
    )
    .unwrap();
    let service = service.as_str();
    for (name, text) in [
        (
            "dpop-bound",
            format!("Authorization: DPoP {bound}\nDPoP: {proof}\n"),
        ),
        (
            "dpop-lowercase-crlf",
            format!("authorization: dpop {bound}\r\ndpop: {proof}\r\n\r\n"),
        ),
        (
            "dpop-two-proofs",
            format!("Authorization: DPoP {bound}\nDPoP: {proof}\nDPoP: {other_proof}\n"),
        ),
        ("dpop-no-proof", format!("Authorization: DPoP {bound}\n")),
        (
            "dpop-as-bearer",
            format!("Authorization: Bearer {bound}\nDPoP: {proof}\n"),
        ),
        (
            "bearer-unbound",
            format!("Authorization: Bearer {unbound}\n"),
        ),
        ("bearer-host", format!("Authorization: Bearer {host}\n")),
        (
            "bearer-service",
            format!("Authorization: Bearer {service}\n"),
        ),
        (
            "two-authorizations",
            format!("Authorization: Bearer {unbound}\nAuthorization: DPoP {bound}\n"),
        ),
        ("basic", "Authorization: Basic dXNlcjpwYXNz\n".to_owned()),
        (
            "scheme-only",
            "Authorization: DPoP\nDPoP: x.y.z\n".to_owned(),
        ),
        (
            "spaces",
            format!("Authorization: Bearer  {unbound}  extra\n"),
        ),
        ("none", "Accept: */*\n".to_owned()),
    ] {
        write(t, name, text.as_bytes());
        let accepted = handoff_edge::fuzz::fuzz_auth_headers(text.as_bytes(), &state);
        // The valid presentations reach acceptance: DPoP by verify_access and
        // verify_dpop; Bearer by verify_access with Bearer allowed, or as host/service.
        let expected = match name {
            "dpop-bound" | "dpop-lowercase-crlf" => 2,
            "bearer-unbound" | "bearer-host" | "bearer-service" => 1,
            _ => 0,
        };
        assert_eq!(accepted, expected, "{t}/{name}");
    }
    let mut non_ascii = b"Authorization: Bearer caf\xc3\xa9\nDPoP: \xff\xfe\n".to_vec();
    non_ascii.extend_from_slice(b"X-Other: 1\n");
    write(t, "non-ascii", &non_ascii);

    // edge_token_form: jwt-bearer and refresh grants, with a proof carrying the
    // target's nonce, without it, and malformed forms.
    let t = "edge_token_form";
    let nonce = ef::fuzz_nonce_issuer().issue(now);
    let token_proof = dpop_key
        .proof(
            "POST",
            ef::FUZZ_TOKEN_ENDPOINT,
            now,
            rng,
            Some(&nonce),
            None,
        )
        .unwrap();
    let token_proof_no_nonce = dpop_key
        .proof("POST", ef::FUZZ_TOKEN_ENDPOINT, now, rng, None, None)
        .unwrap();
    let form = "Content-Type: application/x-www-form-urlencoded\n";
    let jwt_bearer = format!(
        "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={host}&client_id={}",
        ef::FUZZ_CLIENT_ID
    );
    let refresh = "grant_type=refresh_token&refresh_token=rf1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&scope=api";
    for (name, text) in [
        (
            "jwt-bearer-dpop",
            format!("{form}DPoP: {token_proof}\n\n{jwt_bearer}"),
        ),
        (
            "jwt-bearer-no-nonce",
            format!("{form}DPoP: {token_proof_no_nonce}\n\n{jwt_bearer}"),
        ),
        ("jwt-bearer-plain", format!("{form}\n{jwt_bearer}")),
        (
            "refresh-dpop",
            format!("{form}DPoP: {token_proof}\n\n{refresh}"),
        ),
        (
            "refresh-charset",
            format!("Content-Type: Application/X-WWW-Form-Urlencoded; charset=UTF-8\n\n{refresh}"),
        ),
        (
            "duplicate-grant",
            format!("{form}\ngrant_type=refresh_token&grant_type=refresh_token&refresh_token=x"),
        ),
        (
            "wrong-client",
            format!("{form}\ngrant_type=refresh_token&refresh_token=x&client_id=other"),
        ),
        (
            "unsupported-grant",
            format!("{form}\ngrant_type=password&username=u&password=p"),
        ),
        (
            "missing-assertion",
            format!("{form}\ngrant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"),
        ),
        (
            "json-body",
            "Content-Type: application/json\n\n{\"grant_type\":\"refresh_token\"}".to_owned(),
        ),
        ("two-content-types", format!("{form}{form}\n{refresh}")),
        (
            "two-proofs",
            format!("{form}DPoP: {token_proof}\nDPoP: {token_proof_no_nonce}\n\n{refresh}"),
        ),
        (
            "percent-plus",
            format!("{form}\ngrant_type=refresh%5Ftoken&refresh_token=a+b%20c%FF%zz"),
        ),
    ] {
        write(t, name, text.as_bytes());
        let reached = handoff_edge::fuzz::fuzz_token_request(text.as_bytes());
        let expected = [
            "jwt-bearer-dpop",
            "jwt-bearer-plain",
            "refresh-dpop",
            "refresh-charset",
            "percent-plus",
        ];
        assert_eq!(reached, expected.contains(&name), "{t}/{name}");
    }

    // edge_jwks_response: a key set of every asymmetric fuzz key, with its caching
    // headers, a 304, errors, and size and header oddities.
    let t = "edge_jwks_response";
    let jwks = Jwks::from_keys(
        keys.iter()
            .filter(|k| k.algorithm().is_asymmetric())
            .map(|k| k.verifying_key()),
    )
    .unwrap()
    .to_json();
    let ok = "200\nContent-Type: application/jwk-set+json\n";
    for (name, text) in [
        (
            "ok",
            format!("{ok}Cache-Control: public, max-age=300\nETag: \"v2\"\n\n{jwks}"),
        ),
        (
            "ok-crlf-length",
            format!(
                "200\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{jwks}",
                jwks.len()
            ),
        ),
        (
            "ok-two-cache-control",
            format!("{ok}Cache-Control: max-age=86400\nCache-Control: no-store\n\n{jwks}"),
        ),
        (
            "ok-expires",
            format!(
                "{ok}Expires: Thu, 01 Jan 2026 00:00:00 GMT\nCache-Control: max-age=\"60\", must-revalidate\n\n{jwks}"
            ),
        ),
        (
            "ok-declared-too-large",
            format!("{ok}Content-Length: 999999\n\n{jwks}"),
        ),
        ("ok-empty-set", format!("{ok}\n{{\"keys\":[]}}")),
        ("ok-not-json", format!("{ok}\n<html>")),
        (
            "not-modified",
            "304\nETag: \"v1\"\nCache-Control: max-age=120\n\n".to_owned(),
        ),
        (
            "unavailable",
            "503\nRetry-After: 120\nContent-Type: text/plain\n\nbusy".to_owned(),
        ),
        ("not-found", "404\n\n".to_owned()),
    ] {
        write(t, name, text.as_bytes());
        let replaced = handoff_edge::fuzz::fuzz_jwks_response(text.as_bytes());
        let expected = [
            "ok",
            "ok-crlf-length",
            "ok-two-cache-control",
            "ok-expires",
            "ok-empty-set",
        ];
        assert_eq!(replaced, expected.contains(&name), "{t}/{name}");
    }
    let mut big = ok.as_bytes().to_vec();
    big.extend_from_slice(b"\n{\"keys\":[");
    while big.len() < ef::FUZZ_JWKS_MAX_BODY + 100 {
        big.extend_from_slice(jwks.as_bytes());
        big.push(b',');
    }
    write(t, "ok-body-too-large", &big);
    write(
        t,
        "non-ascii-cache-control",
        b"200\nCache-Control: max-age=\xff\nETag: \"\xc3\xa9\"\n\n{\"keys\":[]}",
    );
}

/// A deterministic stand-in RNG: RS256 signing blinds with it, nothing else reads it.
mod rand_free {
    pub(crate) struct Counter(pub(crate) u64);
    impl rand_core::TryRng for Counter {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            Ok((self.0 >> 32) as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok((u64::from(self.try_next_u32()?) << 32) | u64::from(self.try_next_u32()?))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for b in dst {
                *b = self.try_next_u32()? as u8;
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Counter {}
}
