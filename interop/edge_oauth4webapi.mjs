// Drives the handoff-edge reference token service and API with panva's oauth4webapi, an
// independent, standards-conformant OAuth client (RFC 8414 discovery, RFC 7523 jwt-bearer
// grant, RFC 9449 DPoP with the use_dpop_nonce retry, refresh_token grant).
// stdin: {"issuer": "http://127.0.0.1:PORT", "assertion": "<host JWT>"}
// stdout: one JSON line per step; exit 1 when any step differs from the expectation.
import * as oauth from "oauth4webapi";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const insecure = { [oauth.allowInsecureRequests]: true }; // loopback HTTP in the test
const issuer = new URL(input.issuer);
let failed = 0;
const step = (name, ok, detail = {}) => {
  if (!ok) failed++;
  console.log(JSON.stringify({ step: name, ok, ...detail }));
};

const as = await oauth.processDiscoveryResponse(
  issuer,
  await oauth.discoveryRequest(issuer, { ...insecure, algorithm: "oauth2" }),
);
step("discovery", as.token_endpoint === `${input.issuer}/token`, {
  token_endpoint: as.token_endpoint,
  dpop_algs: as.dpop_signing_alg_values_supported,
});

const client = { client_id: "web-app" };
const clientAuth = oauth.None();
const keyPair = await oauth.generateKeyPair("ES256");
const DPoP = oauth.DPoP(client, keyPair);
const opts = { ...insecure, DPoP };

// RFC 9449 section 8: the first attempt meets use_dpop_nonce; retry once with the nonce
// the DPoP handle remembered from the DPoP-Nonce header.
let nonceRetries = 0;
async function withNonceRetry(call) {
  try {
    return await call();
  } catch (e) {
    if (oauth.isDPoPNonceError(e)) {
      nonceRetries++;
      return await call();
    }
    throw e;
  }
}

const jwtBearer = () =>
  withNonceRetry(async () =>
    oauth.processGenericTokenEndpointResponse(
      as,
      client,
      await oauth.genericTokenEndpointRequest(
        as,
        client,
        clientAuth,
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        { assertion: input.assertion },
        opts,
      ),
    ),
  );
const refresh = (rt) =>
  withNonceRetry(async () =>
    oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, clientAuth, rt, opts),
    ),
  );
const me = (at) =>
  withNonceRetry(async () => {
    const r = await oauth.protectedResourceRequest(
      at,
      "GET",
      new URL(`${input.issuer}/api/me`),
      new Headers(),
      null,
      opts,
    );
    return { status: r.status, body: await r.json() };
  });

const expectError = async (name, fn, code) => {
  try {
    await fn();
    step(name, false, { got: "success" });
  } catch (e) {
    const got =
      e instanceof oauth.ResponseBodyError
        ? e.error
        : e instanceof oauth.WWWAuthenticateChallengeError
          ? e.cause.map((c) => `${c.scheme}:${c.parameters.error}`).join(",")
          : `${e.name}: ${e.message}`;
    step(name, got.includes(code), { got, status: e.status });
  }
};

const t1 = await jwtBearer();
step("jwt-bearer grant", t1.token_type === "dpop" && !!t1.refresh_token, {
  token_type: t1.token_type,
  nonce_retries: nonceRetries,
});
step("use_dpop_nonce retry happened", nonceRetries >= 1, { nonce_retries: nonceRetries });

const r1 = await me(t1.access_token);
step("api", r1.status === 200 && r1.body.sub === input.expect_sub && r1.body.tenant === input.expect_tenant, r1);

await expectError("handoff replay refused", jwtBearer, "invalid_grant");

const t2 = await refresh(t1.refresh_token);
step("refresh rotates", t2.refresh_token !== t1.refresh_token && t2.token_type === "dpop");
const r2 = await me(t2.access_token);
step("api after refresh", r2.status === 200, r2);

await expectError("old refresh token replayed", () => refresh(t1.refresh_token), "invalid_grant");
await expectError("family access token revoked", () => me(t2.access_token), "dpop:invalid_token");
await expectError("family refresh token revoked", () => refresh(t2.refresh_token), "invalid_grant");

process.exit(failed === 0 ? 0 : 1);
