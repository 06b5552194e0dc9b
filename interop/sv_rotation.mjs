// Interop peer for session-verify: panva's jose generates EdDSA, ES256 and RS256 key
// pairs, publishes a JWKS, signs host+jwt and at+jwt tokens before and after a key
// rotation, and prints everything as JSON for the Rust test to verify.
import {
  SignJWT,
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
} from 'jose';

const ISS = 'https://host.example';
const AUD = 'https://session.example';
const now = Math.floor(Date.now() / 1000);

async function keyPair(alg, kid) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  jwk.kid = kid;
  jwk.use = 'sig';
  return { alg, kid, privateKey, jwk };
}

async function sign(k, typ, claims) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: k.alg, kid: k.kid, typ })
    .setIssuer(ISS)
    .setAudience(AUD)
    .setIssuedAt(now)
    .setExpirationTime(now + 120)
    .setJti(crypto.randomUUID())
    .setSubject('user-42')
    .sign(k.privateKey);
}

async function generation(suffix) {
  const keys = [
    await keyPair('EdDSA', `ed-${suffix}`),
    await keyPair('ES256', `es-${suffix}`),
    await keyPair('RS256', `rs-${suffix}`),
  ];
  const tokens = [];
  for (const k of keys) {
    tokens.push({
      alg: k.alg,
      kid: k.kid,
      typ: 'at+jwt',
      token: await sign(k, 'at+jwt', { client_id: 'web-app', scope: 'read write' }),
    });
    if (k.alg === 'EdDSA') {
      tokens.push({
        alg: k.alg,
        kid: k.kid,
        typ: 'host+jwt',
        token: await sign(k, 'host+jwt', { host_tenant_id: 'tenant-7' }),
      });
    }
  }
  return { jwks: { keys: keys.map((k) => k.jwk) }, tokens, keys };
}

const before = await generation('1');
const after = await generation('2');

// A DPoP-bound access token: the client's key thumbprint computed by jose.
const dpop = await generateKeyPair('ES256', { extractable: true });
const dpopJwk = await exportJWK(dpop.publicKey);
const jkt = await calculateJwkThumbprint(dpopJwk, 'sha256');
const bound = await sign(after.keys[0], 'at+jwt', { client_id: 'web-app', cnf: { jkt } });

console.log(
  JSON.stringify({
    now,
    iss: ISS,
    aud: AUD,
    before: { jwks: before.jwks, tokens: before.tokens },
    after: { jwks: after.jwks, tokens: after.tokens },
    bound: { token: bound, dpop_jwk: dpopJwk, jkt },
  }),
);
