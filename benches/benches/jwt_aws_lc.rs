//! `verify/<ALG>` and `sign/<ALG>`, function `jsonwebtoken-aws-lc`: jsonwebtoken on its
//! aws-lc-rs backend. A separate process from `jwt` because jsonwebtoken selects its
//! backend once per process.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use criterion::{Criterion, criterion_group, criterion_main};

fn peers_aws_lc(c: &mut Criterion) {
    jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
        .install_default()
        .expect("first provider of this process");
    let fixtures = common::fixtures();
    common::bench_jsonwebtoken(c, &fixtures, benches::report::JSONWEBTOKEN_AWS_LC);
}

criterion_group!(benches, peers_aws_lc);
criterion_main!(benches);
