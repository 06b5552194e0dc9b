// panva's jose (createRemoteJWKSet) against `host-issuer serve` across a two-phase key
// rotation, driven through the CLI as an operator would:
//   generate-keys (max-cache-age 3 s) -> serve -> rotate --publish-next -> wait max-age
//   -> rotate --activate
// A verifier that honours the served Cache-Control max-age never refuses a token: it has
// the new key before the key signs. For contrast, a one-step `rotate` right after a
// default-configured jose fetched the set: jose refuses the new key's token (its 30 s
// cooldown blocks the refetch) -- the window the two-phase rotation removes.
// env: HOST_ISSUER_BIN (the binary), WORK_DIR (a scratch directory).
// stdout: one JSON line per check; exit 1 when any check differs from its expectation.
import { execFileSync, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { createRemoteJWKSet, customFetch, jwtVerify, decodeProtectedHeader } from "jose";

const BIN = process.env.HOST_ISSUER_BIN;
const DIR = process.env.WORK_DIR;
if (!BIN || !DIR) {
  console.error("set HOST_ISSUER_BIN and WORK_DIR");
  process.exit(2);
}
const KEYS = `${DIR}/keys.json`;
const ISS = "https://host.example";
const AUD = "https://svc.example";
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cli = (...args) => execFileSync(BIN, args, { encoding: "utf8" }).trim();
const mint = (sub) => cli("mint", "--keys", KEYS, "--iss", ISS, "--aud", AUD, "--sub", sub);

cli("generate-keys", "--out", KEYS, "--kid", "one", "--max-cache-age", "3", "--force");
const server = spawn(BIN, ["serve", "--keys", KEYS, "--port", "0", "--reload-interval-ms", "50"], {
  stdio: ["ignore", "pipe", "inherit"],
  env: { ...process.env, HANDOFF_ENV: "", NODE_ENV: "" },
});
const firstLine = await new Promise((resolve, reject) => {
  createInterface({ input: server.stdout }).once("line", resolve);
  server.once("exit", (c) => reject(new Error(`serve exited with ${c}`)));
});
const jwksUrl = new URL(firstLine.replace("serving the JWKS at ", "").trim());
const base = `${jwksUrl.protocol}//${jwksUrl.host}`;

async function waitFor(pred, what) {
  for (let i = 0; i < 200; i++) {
    const h = await (await fetch(`${base}/healthz`)).json();
    if (pred(h)) return h;
    await sleep(50);
  }
  throw new Error(`server never showed ${what}`);
}

let bad = 0;
function report(step, expect, got, extra = {}) {
  if (expect !== got) bad++;
  console.log(JSON.stringify({ step, expect, got, ...extra }));
}

async function check(step, keys, token, expect, counter) {
  const before = counter?.n;
  let got, detail;
  try {
    const { protectedHeader } = await jwtVerify(token, keys, {
      issuer: ISS,
      audience: AUD,
      typ: "host+jwt",
      algorithms: ["EdDSA"],
    });
    got = "ok";
    detail = { kid: protectedHeader.kid };
  } catch (e) {
    got = "fail";
    detail = { kid: decodeProtectedHeader(token).kid, code: e.code };
  }
  report(step, expect, got, { ...detail, fetches: counter ? counter.n - before : undefined });
}

function counted() {
  const counter = { n: 0 };
  const fetchImpl = (...args) => {
    counter.n++;
    return fetch(...args);
  };
  return { counter, fetchImpl };
}

try {
  // The verifier caches the set as long as the server's Cache-Control says.
  const first = await fetch(jwksUrl);
  const maxAge = Number(/max-age=(\d+)/.exec(first.headers.get("cache-control"))[1]);
  report("served max-age is the keyring's", 3, maxAge);
  const { counter, fetchImpl } = counted();
  const keys = createRemoteJWKSet(jwksUrl, { cacheMaxAge: maxAge * 1000, [customFetch]: fetchImpl });

  const t1 = mint("before");
  await check("token of kid one", keys, t1, "ok", counter);

  // Phase 1: publish "two"; it does not sign yet.
  report("publish-next prints the kid", "two", cli("rotate", "--keys", KEYS, "--publish-next", "--kid", "two"));
  await waitFor((h) => h.published_kids.includes("two"), "kid two published");
  report("tokens still signed by one", "one", decodeProtectedHeader(mint("x")).kid);
  report("activate before max-age is refused", "refused", (() => {
    try { cli("rotate", "--keys", KEYS, "--activate"); return "activated"; } catch { return "refused"; }
  })());

  // Wait the max-age: the verifier's cache expires and its next verification refetches
  // the set, which now holds both keys.
  await sleep(maxAge * 1000 + 300);
  await check("token of kid one after max-age (refetch)", keys, t1, "ok", counter);

  // Phase 2: activate "two"; its first token verifies from the verifier's cache.
  report("activate prints the kid", "two", cli("rotate", "--keys", KEYS, "--activate"));
  await waitFor((h) => h.active_kid === "two", "kid two active");
  const t2 = mint("after");
  report("new tokens signed by two", "two", decodeProtectedHeader(t2).kid);
  await check("token of kid two right after activation", keys, t2, "ok", counter);
  await check("old token of kid one still verifies", keys, t1, "ok", counter);
  // A verifier that started fresh sees both keys too.
  await check("fresh verifier, kid two", createRemoteJWKSet(jwksUrl), t2, "ok");
  await check("fresh verifier, kid one (retiring, published)", createRemoteJWKSet(jwksUrl), t1, "ok");

  // Contrast: a one-step rotation right after a default jose fetched the set.
  const eager = createRemoteJWKSet(jwksUrl); // cacheMaxAge 10 min, cooldown 30 s
  await check("default jose, kid two", eager, t2, "ok");
  const oneStep = cli("rotate", "--keys", KEYS, "--kid", "three");
  report("one-step rotate prints the kid", "three", oneStep);
  await waitFor((h) => h.active_kid === "three", "kid three active");
  const t3 = mint("one-step");
  await check("one-step rotation: default jose refuses the new kid (cooldown)", eager, t3, "fail");
  await check("one-step rotation: a fresh verifier accepts it", createRemoteJWKSet(jwksUrl), t3, "ok");
} catch (e) {
  bad++;
  console.log(JSON.stringify({ step: "script", error: String(e) }));
} finally {
  server.kill("SIGTERM");
  const code = await new Promise((r) => server.once("exit", (c, s) => r(c ?? s)));
  report("serve exits cleanly on SIGTERM", 0, code);
}
process.exit(bad === 0 ? 0 : 1);
