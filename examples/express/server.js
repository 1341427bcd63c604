// A resource server protected by Tollgate: GET /api/hello answers only to a valid access token
// of a session that was not revoked.
//
// Settings (environment): TOLLGATE_URL (default http://localhost:8000), TOLLGATE_ISSUER and
// TOLLGATE_AUDIENCE when Tollgate does not use its defaults, PORT (default 3001).
import express from 'express';
import { tollgate } from 'tollgate-verify';

const auth = tollgate({
  url: process.env.TOLLGATE_URL ?? 'http://localhost:8000',
  issuer: process.env.TOLLGATE_ISSUER,
  audience: process.env.TOLLGATE_AUDIENCE,
});

const app = express();

app.get('/api/hello', auth, (request, response) => {
  const { user, sub, sid, roles } = request.auth;
  response.json({ message: `Hello, ${user.username}!`, sub, sid, roles });
});

app.get('/healthz', (request, response) => {
  response.json({ revocationsStalenessMs: auth.verifier.revocationStaleness() });
});

const server = app.listen(Number(process.env.PORT ?? 3001), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});
