//! Open-redirect defence: a table of hostile return URLs against an allow-list.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use handoff_login::{LoginError, OAuthErrorCode, RedirectAllowList};

fn list() -> RedirectAllowList {
    RedirectAllowList::new()
        .allow("https://app.example.com")
        .unwrap()
        .allow("http://127.0.0.1:5173")
        .unwrap()
}

#[test]
fn hostile_redirects_are_refused() {
    let hostile = [
        // scheme-relative and path tricks
        "//evil.com",
        "//evil.com/https://app.example.com",
        "/\\evil.com",
        "\\\\evil.com",
        "/",
        "/dashboard",
        "https:evil.com",
        "https:/evil.com",
        "https:app.example.com",
        "https:\\\\app.example.com",
        "https://app.example.com\\@evil.com",
        // userinfo
        "https://app.example.com@evil.com",
        "https://user:pass@app.example.com/",
        "https://app.example.com:443@evil.com/",
        "https://evil.com#@app.example.com",
        "https://evil.com?@app.example.com",
        // suffix / prefix hosts
        "https://app.example.com.evil.com/",
        "https://evilapp.example.com/",
        "https://app.example.co/",
        "https://xapp.example.com/",
        // trailing dot without the allow-list having it
        "https://app.example.com./",
        // scheme and port
        "http://app.example.com/",
        "https://app.example.com:8443/",
        "http://127.0.0.1:5174/",
        "https://127.0.0.1:5173/",
        "http://localhost:5173/",
        "ftp://app.example.com/",
        // script and data schemes
        "javascript:alert(1)",
        "JavaScript://app.example.com/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        // percent-encoded separators and controls
        "https://app.example.com%2f@evil.com/",
        "https://app.example.com%2F%2Fevil.com",
        "https://evil.com%5c@app.example.com/",
        "https://app.example.com/%2e%2e/",
        "https://app%2Eexample.com/",
        "https://app.example.com%00.evil.com/",
        "https://app.example.com/%0d%0aSet-Cookie:x=1",
        // control characters and whitespace
        "https://app.example.com/\n",
        "https://app.example.com/\tx",
        " https://app.example.com/",
        "https://app.example.com/ x",
        "\u{0}https://app.example.com/",
        // a fragment (the login writes its own)
        "https://app.example.com/#session_token=planted",
        // IP spellings of other hosts and unicode look-alikes
        "https://0x7f.0.0.1:5173/",
        "https://аpp.example.com/",
        // empty and oversize
        "",
    ];
    let l = list();
    for h in hostile {
        match l.check(h) {
            Err(LoginError::Redirect(_)) => {}
            other => panic!("{h:?} was not refused: {other:?}"),
        }
    }
    let long = format!("https://app.example.com/{}", "a".repeat(3000));
    assert!(l.check(&long).is_err());
}

#[test]
fn allowed_redirects_pass_and_get_a_fragment() {
    let l = list();
    for ok in [
        "https://app.example.com",
        "https://app.example.com/",
        "https://APP.Example.com/after?x=1",
        "https://app.example.com:443/deep/path",
        "http://127.0.0.1:5173/cb",
    ] {
        let a = l
            .check(ok)
            .unwrap_or_else(|e| panic!("{ok:?} refused: {e}"));
        let r = a.with_session_token("tok.en+/=");
        assert!(
            r.location().contains("#session_token=tok.en%2B%2F%3D"),
            "{}",
            r.location()
        );
    }
    let a = l.check("https://app.example.com/x").unwrap();
    let r = a.with_error(
        OAuthErrorCode::AccessDenied,
        Some("role \"admin\" denied\n\u{7f}é"),
    );
    assert_eq!(
        r.location(),
        "https://app.example.com/x#oauth_error=access_denied&oauth_error_description=role+admin+denied"
    );
    // A trailing-dot origin is allowed only when listed as such.
    let dotted = RedirectAllowList::new()
        .allow("https://app.example.com.")
        .unwrap();
    assert!(dotted.check("https://app.example.com./x").is_ok());
    assert!(dotted.check("https://app.example.com/x").is_err());
}

#[test]
fn allow_list_entries_must_be_bare_origins() {
    for bad in [
        "https://app.example.com/path",
        "https://user@app.example.com",
        "https://app.example.com?x",
        "javascript:x",
        "//app.example.com",
        "app.example.com",
    ] {
        assert!(RedirectAllowList::new().allow(bad).is_err(), "{bad}");
    }
    assert_eq!(
        OAuthErrorCode::from_provider("weird").as_str(),
        "server_error"
    );
    assert_eq!(
        OAuthErrorCode::from_provider("invalid_scope").as_str(),
        "invalid_scope"
    );
}
