// identity-core interop with panva's jose, an independent JOSE implementation.
// argv[2] = "mint":   stdout: [{alg, jwk (public, or the oct secret), token, thumbprint}]
//                     tokens signed by jose, for the Rust side to verify.
// argv[2] = "verify": stdin:  {now, iss, aud, typ, cases: [{alg, jwk, token, thumbprint}]}
//                     verifies Rust-signed tokens and Rust thumbprints with jose;
//                     stdout: one JSON line per case; exit 1 on any failure.
import {
  SignJWT, jwtVerify, generateKeyPair, generateSecret, exportJWK, importJWK,
  calculateJwkThumbprint,
} from "jose";

const NOW = 1_700_000_000;
const ISS = "https://issuer.example";
const AUD = "https://api.example";
const TYP = "at+jwt";

async function readStdin() {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return JSON.parse(Buffer.concat(chunks).toString("utf8"));
}

if (process.argv[2] === "mint") {
  const out = [];
  for (const alg of ["EdDSA", "ES256", "RS256", "PS256", "HS256"]) {
    let signKey, jwk;
    if (alg === "HS256") {
      signKey = await generateSecret("HS256", { extractable: true });
      jwk = await exportJWK(signKey);
    } else {
      const opts = alg === "EdDSA" ? { crv: "Ed25519", extractable: true } : { extractable: true };
      const pair = await generateKeyPair(alg, opts);
      signKey = pair.privateKey;
      jwk = await exportJWK(pair.publicKey);
    }
    jwk.kid = `jose-${alg}`;
    jwk.alg = alg;
    const token = await new SignJWT({ scope: "read", sub: "user-1", jti: `j-${alg}` })
      .setProtectedHeader({ alg, typ: TYP, kid: jwk.kid })
      .setIssuer(ISS)
      .setAudience([AUD, "https://other.example"])
      .setIssuedAt(NOW)
      .setExpirationTime(NOW + 300)
      .sign(signKey);
    const thumbprint = alg === "HS256" ? null : await calculateJwkThumbprint(jwk, "sha256");
    out.push({ alg, jwk, token, thumbprint });
  }
  console.log(JSON.stringify(out));
} else if (process.argv[2] === "verify") {
  const input = await readStdin();
  let bad = 0;
  for (const c of input.cases) {
    const result = { alg: c.alg };
    try {
      const key = await importJWK(c.jwk, c.alg);
      const { payload, protectedHeader } = await jwtVerify(c.token, key, {
        issuer: input.iss,
        audience: input.aud,
        typ: input.typ,
        algorithms: [c.alg],
        currentDate: new Date(input.now * 1000),
      });
      result.verified = protectedHeader.alg === c.alg && payload.sub === "user-1";
      if (c.thumbprint !== null) {
        result.thumbprint = (await calculateJwkThumbprint(c.jwk, "sha256")) === c.thumbprint;
      } else {
        result.thumbprint = true;
      }
    } catch (e) {
      result.verified = false;
      result.error = `${e.code}: ${e.message}`;
    }
    if (!result.verified || !result.thumbprint) bad++;
    console.log(JSON.stringify(result));
  }
  process.exit(bad === 0 ? 0 : 1);
} else {
  console.error("usage: node core_jose.mjs mint|verify");
  process.exit(2);
}
