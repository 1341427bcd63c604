import { inject, Injectable, InjectionToken } from '@angular/core';

const DATABASE = 'tollgate-angular-dpop';
const STORE = 'keys';
const KEY_NAME = 'dpop';
/** One tab creates the key; the others wait and load it. */
const LOCK_NAME = 'tollgate-dpop-key';
/** The longest wait for IndexedDB before going on without a kept key. */
const STORAGE_TIMEOUT_MS = 5_000;

/**
 * Where the key is kept: IndexedDB (the default). Resolves to null where no key can be kept.
 * Unit tests, which run without IndexedDB, provide a key of their own.
 */
export const DPOP_KEY_STORE = new InjectionToken<() => Promise<CryptoKeyPair | null>>('DPOP_KEY_STORE', {
  providedIn: 'root',
  factory: () => loadOrCreate,
});

/** A signed proof, and the server nonce it carries. */
export interface SignedProof {
  proof: string;
  nonce: string | undefined;
}

/**
 * The browser's DPoP key (RFC 9449) and the proofs it signs. The key is ECDSA P-256 (ES256),
 * made non-extractable: script can ask the browser to sign with it, never read it. It is kept in
 * IndexedDB, so one browser profile has one key across reloads and tabs. Where it cannot be kept
 * (IndexedDB blocked or broken), `usable()` says so and sessions are not bound: a key that a
 * reload would lose would sign the user out.
 */
@Injectable({ providedIn: 'root' })
export class DpopKey {
  private readonly store = inject(DPOP_KEY_STORE);
  private pair: Promise<CryptoKeyPair | null> | null = null;
  private publicJwk: Promise<JsonWebKey> | null = null;
  /** The last server nonce (`DPoP-Nonce`) of each origin, for the next proof there. */
  private readonly nonces = new Map<string, string>();
  /** Server time minus ours (ms), from the `Date` of the API's answers: `iat` is the server's. */
  private clockOffsetMs = 0;

  /** Whether this browser keeps a key, so that sessions may be bound to it. */
  async usable(): Promise<boolean> {
    return (await this.keyPair()) !== null;
  }

  /** A proof for `method` on `url`, with the hash of the access token that goes with it. */
  async proof(method: string, url: string, accessToken?: string): Promise<SignedProof> {
    const pair = await this.keyPair();
    if (pair === null) {
      throw new Error('tollgate-angular: no DPoP key could be kept in this browser');
    }
    const jwk = await this.jwk(pair);
    const target = new URL(url, document.baseURI);
    const nonce = this.nonces.get(target.origin);
    const claims = {
      jti: crypto.randomUUID(),
      htm: method,
      htu: target.origin + target.pathname,
      iat: Math.floor((Date.now() + this.clockOffsetMs) / 1000),
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
    return { proof: `${input}.${base64url(new Uint8Array(signature))}`, nonce };
  }

  /**
   * What an answer from `url` says: its nonce for the next proof there, and its `Date`. True
   * when it brought a nonce other than `used` (the one the refused proof carried), so that the
   * request is worth signing again, once.
   */
  learn(url: string, headers: { get(name: string): string | null } | undefined, used?: string): boolean {
    const date = Date.parse(headers?.get('Date') ?? '');
    if (Number.isFinite(date)) {
      this.clockOffsetMs = date - Date.now();
    }
    const nonce = headers?.get('DPoP-Nonce');
    if (!nonce) {
      return false;
    }
    this.nonces.set(new URL(url, document.baseURI).origin, nonce);
    return nonce !== used;
  }

  /** The kept key; a failure is forgotten, so that the next call tries again. */
  private keyPair(): Promise<CryptoKeyPair | null> {
    this.pair ??= this.store().catch(() => {
      this.pair = null;
      return null;
    });
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

/** The key kept in IndexedDB, made there by the first tab that needs it; null without one. */
async function loadOrCreate(): Promise<CryptoKeyPair | null> {
  if (typeof indexedDB === 'undefined' || !globalThis.crypto?.subtle) {
    return null;
  }
  const task = () => withTimeout(keptKey(), STORAGE_TIMEOUT_MS);
  const locks = typeof navigator === 'undefined' ? undefined : navigator.locks;
  // `request` settles with what the task settles with.
  return locks ? await locks.request(LOCK_NAME, task) : task();
}

async function keptKey(): Promise<CryptoKeyPair> {
  const database = await open();
  try {
    const stored = await request<unknown>(database.transaction(STORE).objectStore(STORE).get(KEY_NAME));
    if (isSigningPair(stored)) {
      return stored;
    }
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign', 'verify']);
    const writing = database.transaction(STORE, 'readwrite');
    writing.objectStore(STORE).put(pair, KEY_NAME);
    // Kept only once the transaction commits: a session must not be bound to a key that is not.
    await new Promise<void>((resolve, reject) => {
      writing.oncomplete = () => resolve();
      writing.onerror = () => reject(writing.error);
      writing.onabort = () => reject(writing.error);
    });
    return pair;
  } finally {
    database.close();
  }
}

/** What a usable stored key looks like: a non-extractable ECDSA P-256 key pair that signs. */
function isSigningPair(value: unknown): value is CryptoKeyPair {
  const pair = value as Partial<CryptoKeyPair> | undefined;
  const privateKey = pair?.privateKey;
  const algorithm = privateKey?.algorithm as EcKeyAlgorithm | undefined;
  return (
    privateKey instanceof CryptoKey &&
    pair?.publicKey instanceof CryptoKey &&
    algorithm?.name === 'ECDSA' &&
    algorithm.namedCurve === 'P-256' &&
    !privateKey.extractable &&
    privateKey.usages.includes('sign')
  );
}

function open(): Promise<IDBDatabase> {
  const opening = indexedDB.open(DATABASE, 1);
  opening.onupgradeneeded = () => opening.result.createObjectStore(STORE);
  opening.onblocked = () => opening.transaction?.abort();
  return request(opening);
}

function request<T>(pending: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    pending.onsuccess = () => resolve(pending.result);
    pending.onerror = () => reject(pending.error);
  });
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('IndexedDB did not answer')), ms);
    work.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
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
