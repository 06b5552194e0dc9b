// Verifies DPoP proofs made by the Rust `dpop` crate with panva's `jose` (jwtVerify with
// EmbeddedJWK and typ 'dpop+jwt'), then checks htm/htu/ath/jkt as an RFC 9449 server would.
// Input on stdin: {"cases":[{"proof","htm","htu","access_token"|null,"jkt","now"}]}.
// Output: {"results":[{"ok":bool,"error":string|null}]}.
import { jwtVerify, EmbeddedJWK, calculateJwkThumbprint, base64url } from 'jose';
import { createHash } from 'node:crypto';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'));
const results = [];
for (const c of input.cases) {
  try {
    const { payload, protectedHeader } = await jwtVerify(c.proof, EmbeddedJWK, {
      typ: 'dpop+jwt',
      algorithms: ['ES256', 'EdDSA', 'RS256', 'PS256'],
      currentDate: new Date(c.now * 1000),
      maxTokenAge: 60,
    });
    if (payload.htm !== c.htm) throw new Error(`htm ${payload.htm} != ${c.htm}`);
    if (payload.htu !== c.htu) throw new Error(`htu ${payload.htu} != ${c.htu}`);
    if (typeof payload.jti !== 'string' || base64url.decode(payload.jti).length < 12)
      throw new Error('jti shorter than 96 bits');
    if (c.access_token !== null) {
      const ath = base64url.encode(createHash('sha256').update(c.access_token).digest());
      if (payload.ath !== ath) throw new Error('ath mismatch');
    } else if (payload.ath !== undefined) throw new Error('unexpected ath');
    const jwk = protectedHeader.jwk;
    for (const m of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'])
      if (m in jwk) throw new Error(`private member ${m} in jwk`);
    const jkt = await calculateJwkThumbprint(jwk, 'sha256');
    if (jkt !== c.jkt) throw new Error(`jkt ${jkt} != ${c.jkt}`);
    results.push({ ok: true, error: null, alg: protectedHeader.alg });
  } catch (e) {
    results.push({ ok: false, error: String(e && e.message ? e.message : e) });
  }
}
process.stdout.write(JSON.stringify({ results }));
