// Verifies host tokens with panva's jose, independently of the Rust implementation.
// stdin: {"jwks": {...}} or {"jwks_url": "http://127.0.0.1:PORT/..."}, plus
//        "cases": [{"token", "iss", "aud", "expect": "ok" | "fail"}]
// stdout: one JSON line per case; exit 1 when any case differs from its expectation.
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, decodeProtectedHeader } from "jose";

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const keys = input.jwks_url
  ? createRemoteJWKSet(new URL(input.jwks_url), { cooldownDuration: 0, cacheMaxAge: 0 })
  : createLocalJWKSet(input.jwks);

let bad = 0;
for (const c of input.cases) {
  let got, detail;
  try {
    const { payload, protectedHeader } = await jwtVerify(c.token, keys, {
      issuer: c.iss,
      audience: c.aud,
      typ: "host+jwt",
      algorithms: ["EdDSA", "ES256", "RS256"],
      requiredClaims: ["iat", "exp", "jti", "sub", "host_tenant_id"],
    });
    got = "ok";
    detail = { alg: protectedHeader.alg, kid: protectedHeader.kid, sub: payload.sub };
  } catch (e) {
    got = "fail";
    detail = { code: e.code, message: e.message, kid: decodeProtectedHeader(c.token).kid };
  }
  if (got !== c.expect) bad++;
  console.log(JSON.stringify({ expect: c.expect, got, ...detail }));
}
process.exit(bad === 0 ? 0 : 1);
