import { Injectable } from '@angular/core';

const DATABASE = 'tollgate';
const STORE = 'keys';
const KEY_NAME = 'dpop';
/** One tab creates the key; the others wait and load it. */
const LOCK_NAME = 'tollgate-dpop-key';

/**
 * The browser's DPoP key (RFC 9449) and the proofs it signs. The key is ECDSA P-256 (ES256),
 * made non-extractable: script can ask the browser to sign with it, never read it. It is kept in
 * IndexedDB, so one browser profile has one key across reloads and tabs.
 */
@Injectable({ providedIn: 'root' })
export class DpopKey {
  private pair: Promise<CryptoKeyPair> | null = null;
  private publicJwk: Promise<JsonWebKey> | null = null;
  /** The last server nonce (`DPoP-Nonce`) of each origin, for the next proof there. */
  private readonly nonces = new Map<string, string>();

  /** A proof for `method` on `url`, with the hash of the access token that goes with it. */
  async proof(method: string, url: string, accessToken?: string): Promise<string> {
    const pair = await this.keyPair();
    const jwk = await this.jwk(pair);
    const target = new URL(url, document.baseURI);
    const nonce = this.nonces.get(target.origin);
    const claims = {
      jti: crypto.randomUUID(),
      htm: method,
      htu: target.origin + target.pathname,
      iat: Math.floor(Date.now() / 1000),
      ...(accessToken === undefined ? {} : { ath: base64url(await sha256(accessToken)) }),
      ...(nonce === undefined ? {} : { nonce }),
    };
    const header = { typ: 'dpop+jwt', alg: 'ES256', jwk };
    const input = `${base64url(json(header))}.${base64url(json(claims))}`;
    // WebCrypto's ECDSA signature is r || s, exactly what a JWS wants.
    const signature = await crypto.subtle.sign(
      { name: 'ECDSA', hash: 'SHA-256' },
      pair.privateKey,
      new TextEncoder().encode(input),
    );
    return `${input}.${base64url(new Uint8Array(signature))}`;
  }

  /**
   * Keeps the nonce a response from `url` carries for the next proof there; true when it is
   * one the last proof did not have (so a refused request is worth signing again once).
   */
  rememberNonce(url: string, nonce: string | null): boolean {
    if (!nonce) {
      return false;
    }
    const origin = new URL(url, document.baseURI).origin;
    const fresh = this.nonces.get(origin) !== nonce;
    this.nonces.set(origin, nonce);
    return fresh;
  }

  private keyPair(): Promise<CryptoKeyPair> {
    this.pair ??= loadOrCreate();
    return this.pair;
  }

  /** The public key's members a thumbprint is made of, nothing else. */
  private jwk(pair: CryptoKeyPair): Promise<JsonWebKey> {
    this.publicJwk ??= crypto.subtle
      .exportKey('jwk', pair.publicKey)
      .then(({ kty, crv, x, y }) => ({ kty, crv, x, y }));
    return this.publicJwk;
  }
}

/** The key kept in IndexedDB, made there by the first tab that needs it. */
async function loadOrCreate(): Promise<CryptoKeyPair> {
  if (typeof indexedDB === 'undefined') {
    return generate();
  }
  const task = async () => {
    const database = await open();
    try {
      const stored = await request<CryptoKeyPair | undefined>(
        database.transaction(STORE).objectStore(STORE).get(KEY_NAME),
      );
      if (stored?.privateKey && stored.publicKey) {
        return stored;
      }
      const pair = await generate();
      await request(database.transaction(STORE, 'readwrite').objectStore(STORE).put(pair, KEY_NAME));
      return pair;
    } finally {
      database.close();
    }
  };
  const locks = typeof navigator === 'undefined' ? undefined : navigator.locks;
  // `request` settles with what the task settles with.
  return locks ? await locks.request(LOCK_NAME, task) : task();
}

function generate(): Promise<CryptoKeyPair> {
  return crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
}

function open(): Promise<IDBDatabase> {
  const opening = indexedDB.open(DATABASE, 1);
  opening.onupgradeneeded = () => opening.result.createObjectStore(STORE);
  return request(opening);
}

function request<T>(pending: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    pending.onsuccess = () => resolve(pending.result);
    pending.onerror = () => reject(pending.error);
  });
}

async function sha256(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

function json(value: object): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}

function base64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}
