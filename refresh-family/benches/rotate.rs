//! decide + apply on the in-memory store, against the primitives underneath.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use handoff_core::{HmacSecret, UnixTime};
use handoff_refresh::{
    Decision, FamilyStore, InMemoryFamilyStore, Outcome, Policy, RefreshFamilies, RefreshToken,
    rotate, start,
};
use sha2::{Digest, Sha256};

const T0: UnixTime = UnixTime::from_secs(1_700_000_000);

fn setup(engine: &RefreshFamilies) -> (InMemoryFamilyStore, RefreshToken) {
    let store = InMemoryFamilyStore::new(16);
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let first = start(&store, engine, "alice", "web", T0, &mut rng)
        .unwrap()
        .token;
    (store, first)
}

fn bench(c: &mut Criterion) {
    let master = HmacSecret::new(vec![0x42; 32]).unwrap();
    let engine = RefreshFamilies::new(&master, Policy::default());
    let grace = RefreshFamilies::new(&master, Policy::builder().grace_window(30).build().unwrap());
    let mut rng = rand_core::UnwrapErr(getrandom::SysRng);
    let now = T0.saturating_add(60);

    let mut g = c.benchmark_group("refresh/rotate");
    g.bench_function("decide", |b| {
        let (store, first) = setup(&engine);
        let presented = engine.verify(first.expose_secret()).unwrap();
        let loaded = store.load(presented.family(), presented.id()).unwrap();
        b.iter(|| {
            let d = engine.decide(&presented, black_box(loaded.clone()), now, &mut rng);
            assert!(matches!(d, Decision::Rotate(_)));
            d
        });
    });
    g.bench_function("verify+load+decide+apply", |b| {
        b.iter_batched(
            || setup(&engine),
            |(store, first)| {
                let out = rotate(&store, &engine, first.expose_secret(), now, &mut rng).unwrap();
                assert!(matches!(out, Outcome::Issued(_)));
                (store, out)
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("grace-replay (idempotent successor)", |b| {
        // A fresh rotated family per batch: replays past the use cap are reuse.
        b.iter_batched(
            || {
                let (store, first) = setup(&grace);
                let mut setup_rng = rand_core::UnwrapErr(getrandom::SysRng);
                let _ = rotate(&store, &grace, first.expose_secret(), now, &mut setup_rng).unwrap();
                (store, first)
            },
            |(store, first)| {
                let out = rotate(&store, &grace, first.expose_secret(), now, &mut rng).unwrap();
                assert!(matches!(&out, Outcome::Issued(i) if i.grace));
                (store, out)
            },
            BatchSize::SmallInput,
        );
    });
    g.bench_function("primitives: 3x hmac-sha256 + 2x sha256", |b| {
        let secret = [7u8; 32];
        b.iter(|| {
            let a = master.mac(black_box(b"refresh-family/v1/id-tag"));
            let m = master.mac(black_box(&a));
            let s = master.mac(black_box(&m));
            let h1 = Sha256::digest(black_box(secret));
            let h2 = Sha256::digest(black_box(s));
            (h1, h2)
        });
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
