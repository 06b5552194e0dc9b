// Makes DPoP proofs with panva's `dpop` package (an independent RFC 9449 client) and
// prints them as JSON for dpop/tests/interop.rs to verify.
import { generateKeyPair, generateProof, calculateThumbprint } from 'dpop';

const accessToken = 'interop-access-token.' + 'x'.repeat(20);
const out = { now: Math.floor(Date.now() / 1000), proofs: [] };
for (const alg of ['ES256', 'RS256', 'PS256', 'Ed25519']) {
  const keypair = await generateKeyPair(alg);
  const jkt = await calculateThumbprint(keypair.publicKey);
  const cases = [
    { htm: 'POST', htu: 'https://as.example.com/token', nonce: undefined, at: undefined },
    { htm: 'GET', htu: 'https://RS.Example.com:443/api/items?page=2&sort=asc#frag', nonce: 'srv-nonce_1', at: accessToken },
  ];
  for (const c of cases) {
    const proof = await generateProof(keypair, c.htu, c.htm, c.nonce, c.at);
    out.proofs.push({ alg, jkt, proof, htm: c.htm, htu: c.htu, nonce: c.nonce ?? null, access_token: c.at ?? null });
  }
}
process.stdout.write(JSON.stringify(out));
