import { randomBytes } from 'node:crypto';
import { newSessionId, open, seal, storageId } from './crypto.js';
import type { TokenSet } from '../oidc/token-set.js';
import type { SessionStore } from './store.js';

export interface SessionData {
  readonly sub: string;
  /** The IdP's session id (OIDC `sid` claim), used by back-channel logout. */
  readonly sid?: string;
  /** Random, per session: the value the logout URL must carry, so a cross-site page cannot log a user out. */
  readonly logoutId: string;
  readonly claims: Readonly<Record<string, unknown>>;
}

export interface Session {
  readonly id: string;
  readonly key: string;
  readonly createdAt: number;
  readonly absoluteExpiresAt: number;
  /** The earlier of the idle and absolute expiry, as of this request. */
  readonly expiresAt: number;
  readonly version: number;
  readonly tokens: TokenSet;
  data(): SessionData;
}

export interface VersionedTokens {
  readonly tokens: TokenSet;
  readonly version: number;
}

export function newLogoutId(): string {
  return randomBytes(16).toString('base64url');
}

/** Sessions on top of a store: ids, sealing, and the session lifetimes. */
export class Sessions {
  constructor(
    readonly store: SessionStore,
    private readonly lifetimes: { readonly idleMs: number; readonly absoluteMs: number },
  ) {}

  async create(
    data: SessionData,
    tokens: TokenSet,
    now: number,
  ): Promise<{ id: string; expiresAt: number; absoluteExpiresAt: number }> {
    const id = newSessionId();
    const absoluteExpiresAt = now + this.lifetimes.absoluteMs;
    await this.store.create(storageId(id), {
      createdAt: now,
      absoluteExpiresAt,
      idleMs: this.lifetimes.idleMs,
      data: seal(id, 'data', JSON.stringify(data)),
      tokens: seal(id, 'tokens', JSON.stringify(tokens)),
      sub: data.sub,
      sid: data.sid,
    });
    return { id, absoluteExpiresAt, expiresAt: Math.min(now + this.lifetimes.idleMs, absoluteExpiresAt) };
  }

  async load(id: string, now: number): Promise<Session | undefined> {
    const key = storageId(id);
    const record = await this.store.load(key, now);
    if (!record) return undefined;
    const tokensJson = open(id, 'tokens', record.tokens);
    // A record that does not open with this id was not made for it: treat as no session.
    if (tokensJson === undefined) return undefined;
    let data: SessionData | undefined;
    return {
      id,
      key,
      createdAt: record.createdAt,
      absoluteExpiresAt: record.absoluteExpiresAt,
      expiresAt: record.expiresAt,
      version: record.version,
      tokens: JSON.parse(tokensJson) as TokenSet,
      data: () => (data ??= JSON.parse(open(id, 'data', record.data) ?? 'null') as SessionData),
    };
  }

  async readTokens(session: Pick<Session, 'id' | 'key'>): Promise<VersionedTokens | undefined> {
    const record = await this.store.readTokens(session.key);
    if (!record) return undefined;
    const json = open(session.id, 'tokens', record.tokens);
    return json === undefined ? undefined : { tokens: JSON.parse(json) as TokenSet, version: record.version };
  }

  writeTokens(
    session: Pick<Session, 'id' | 'key'>,
    expectedVersion: number,
    tokens: TokenSet,
  ): Promise<boolean> {
    return this.store.writeTokens(
      session.key,
      expectedVersion,
      seal(session.id, 'tokens', JSON.stringify(tokens)),
    );
  }

  destroy(session: Pick<Session, 'key'>): Promise<boolean> {
    return this.store.destroy(session.key);
  }
}
