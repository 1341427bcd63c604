// Baseline for `make bench`: the usual Express + jsonwebtoken tutorial server, serving the same
// protected routes from memory. HS256, rotating refresh tokens kept in a Map.
const crypto = require('node:crypto');
const fs = require('node:fs');
const express = require('express');
const jwt = require('jsonwebtoken');

const secret = process.env.JWT_SECRET;
const port = Number(process.env.PORT);
const jobs = fs.readFileSync(process.env.JOBS_FILE);
const user = JSON.parse(fs.readFileSync(process.env.USER_FILE));
const refreshTokens = new Map();

function issue() {
  const accessToken = jwt.sign({ sub: user.id, user: { id: user.id, email: user.email, username: user.username } },
    secret, { expiresIn: '15m' });
  const refreshToken = jwt.sign({ sub: user.id, jti: crypto.randomUUID() }, secret, { expiresIn: '30d' });
  refreshTokens.set(refreshToken, user.id);
  return { accessToken, refreshToken, expiresIn: 900, tokenType: 'Bearer' };
}

function authenticate(req, res, next) {
  const header = req.headers.authorization ?? '';
  try {
    req.claims = jwt.verify(header.replace(/^Bearer /, ''), secret, { algorithms: ['HS256'] });
    next();
  } catch {
    res.status(401).json({ title: 'Unauthorized' });
  }
}

const app = express();
app.use(express.json());
app.post('/api/login', (req, res) => {
  if (req.body?.username !== user.username || req.body?.password !== 'password') {
    return res.status(400).json({ title: 'Bad Request' });
  }
  res.json({ user, ...issue() });
});
app.post('/api/refresh-token', (req, res) => {
  const token = req.body?.refreshToken;
  try {
    jwt.verify(token, secret, { algorithms: ['HS256'] });
  } catch {
    return res.status(403).json({ title: 'Forbidden' });
  }
  if (!refreshTokens.delete(token)) return res.status(403).json({ title: 'Forbidden' });
  res.json(issue());
});
app.get('/api/job-list', authenticate, (req, res) => res.type('application/json').send(jobs));
app.get('/api/current-user', authenticate, (req, res) => res.json(user));
app.listen(port, '127.0.0.1');
