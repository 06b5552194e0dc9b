// A real, certified OpenID Provider (panva's oidc-provider) on loopback for the login tests.
// stdin: {"clients": [{client_id, client_secret?, token_endpoint_auth_method, redirect_uris,
//         code_ttl?}], "account": {sub, email, email_verified}}
// Listens on 127.0.0.1 with an ephemeral port, prints one line `READY <issuer>` on stdout,
// and serves until stdin closes or it is killed. Login and consent are automated: the
// interaction route logs the configured account in and grants what the client asked for.
import http from "node:http";
import crypto from "node:crypto";
import { generateKeyPair, exportJWK } from "jose";
import Provider from "oidc-provider";

const chunks = [];
for await (const c of process.stdin) {
  chunks.push(c);
  if (Buffer.concat(chunks).includes(10)) break; // one JSON line
}
const input = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const account = input.account;

const server = http.createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = server.address().port;
const issuer = `http://127.0.0.1:${port}`;

const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), kid: crypto.randomUUID(), alg: "RS256", use: "sig" };

const codeTtl = Object.fromEntries(input.clients.map((c) => [c.client_id, c.code_ttl ?? 60]));
const clients = input.clients.map(({ code_ttl, ...c }) => ({
  grant_types: ["authorization_code"],
  response_types: ["code"],
  ...c,
}));

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString("hex")] },
  claims: { openid: ["sub"], email: ["email", "email_verified"] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: false } },
  pkce: { required: () => true },
  ttl: {
    AuthorizationCode: (ctx, token, client) => codeTtl[client.clientId] ?? 60,
  },
  findAccount: async (ctx, sub) =>
    sub === account.sub
      ? { accountId: sub, claims: async () => ({ ...account }) }
      : undefined,
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
});
provider.on("server_error", (ctx, err) => console.error("server_error", err));

const callback = provider.callback();
server.on("request", async (req, res) => {
  const m = req.url.match(/^\/interaction\/([^/?]+)/);
  if (!m) return callback(req, res);
  try {
    const details = await provider.interactionDetails(req, res);
    const { prompt, params, session, grantId } = details;
    let result;
    if (prompt.name === "login") {
      result = { login: { accountId: account.sub } };
    } else if (prompt.name === "consent") {
      const grant = grantId
        ? await provider.Grant.find(grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(" "));
      if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      if (prompt.details.missingResourceScopes) {
        for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes)) {
          grant.addResourceScope(indicator, scopes.join(" "));
        }
      }
      result = { consent: { grantId: await grant.save() } };
    } else {
      result = { error: "access_denied", error_description: `unexpected prompt ${prompt.name}` };
    }
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  } catch (e) {
    console.error("interaction failed", e);
    res.statusCode = 500;
    res.end(String(e));
  }
});

process.stdout.write(`READY ${issuer}\n`);
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
