import { randomUUID } from 'node:crypto';
import type { NewRecord, SessionStore } from '../../src/session/store.js';
import { waitFor } from './ports.js';

/** A store to check, as the app would use it. */
export interface StoreUnderTest {
  readonly store: SessionStore;
  /**
   * A second instance over the same storage, as another replica would hold it. Required for stores
   * with an invalidation feed: the feed's tests change a session on one and listen on the other.
   */
  readonly replica?: SessionStore;
  /** Closes both instances and whatever backs them. */
  close(): Promise<void>;
}

const IDLE_MS = 60_000;
const ABSOLUTE_MS = 180_000;
/** Short enough to lapse within a test; polled for, never slept on. */
const SHORT_TTL_MS = 50;

function record(sub: string, sid?: string, createdAt = Date.now()): NewRecord {
  return {
    createdAt,
    absoluteExpiresAt: createdAt + ABSOLUTE_MS,
    idleMs: IDLE_MS,
    data: 'sealed-data',
    tokens: 'sealed-tokens-1',
    sub,
    sid,
  };
}

/** Unique per test, so the tests share one store without seeing each other's records. */
const unique = (what: string): string => `${what}-${randomUUID()}`;

/**
 * The session store contract (src/session/store.ts), run against one implementation. Every store
 * proves itself here: a new backend (Sentinel, Cluster) calls this with its own factory. Times go
 * through load's `now`, so expiry is checked without waiting; TTLs that only real time can lapse
 * (locks, replay markers) are short and polled for.
 */
export function describeSessionStore(
  name: string,
  open: () => Promise<StoreUnderTest>,
  /** invalidation: the store has a feed (SessionStore.invalidations), so process caches may run on it. */
  features: { readonly invalidation: boolean },
): void {
  describe(`${name} store contract`, () => {
    let under: StoreUnderTest;
    let store: SessionStore;
    beforeAll(async () => {
      under = await open();
      store = under.store;
    });
    afterAll(async () => {
      await under?.close();
    });

    describe('records', () => {
      test('a created session loads with what was stored, at version 1', async () => {
        const key = unique('k');
        const r = record('alice', 'idp-1');
        await store.create(key, r);
        expect(await store.load(key, r.createdAt)).toEqual({
          createdAt: r.createdAt,
          absoluteExpiresAt: r.absoluteExpiresAt,
          expiresAt: r.createdAt + IDLE_MS,
          data: 'sealed-data',
          tokens: 'sealed-tokens-1',
          version: 1,
        });
        expect(await store.readTokens(key)).toEqual({ tokens: 'sealed-tokens-1', version: 1 });
      });

      test('an unknown key loads as nothing', async () => {
        const key = unique('missing');
        expect(await store.load(key, Date.now())).toBeUndefined();
        expect(await store.readTokens(key)).toBeUndefined();
      });

      test('destroy ends the session and says whether there was one', async () => {
        const key = unique('k');
        const r = record('alice');
        await store.create(key, r);
        expect(await store.destroy(key)).toBe(true);
        expect(await store.load(key, r.createdAt)).toBeUndefined();
        expect(await store.readTokens(key)).toBeUndefined();
        expect(await store.destroy(key)).toBe(false);
      });

      test('destroy counts the session, not its lock', async () => {
        const key = unique('k');
        expect(await store.acquireLock(key, 'a', 10_000)).toBe(true);
        expect(await store.destroy(key)).toBe(false);
        expect(await store.acquireLock(key, 'b', 10_000)).toBe(true);
        await store.releaseLock(key, 'b');
      });
    });

    describe('expiry', () => {
      test('a session unused for its idle timeout is gone', async () => {
        const key = unique('k');
        const r = record('alice');
        await store.create(key, r);
        expect(await store.load(key, r.createdAt + IDLE_MS)).toBeUndefined();
        // Gone for good, not only for that clock.
        expect(await store.load(key, r.createdAt)).toBeUndefined();
      });

      test('each load slides the idle timeout', async () => {
        const key = unique('k');
        const r = record('alice');
        await store.create(key, r);
        const later = r.createdAt + IDLE_MS - 1;
        expect((await store.load(key, later))?.expiresAt).toBe(later + IDLE_MS);
        // Past the first idle window, but within the slid one.
        expect(await store.load(key, later + IDLE_MS - 1)).toBeDefined();
      });

      test('the absolute timeout ends a session however recently it was used', async () => {
        const key = unique('k');
        const r = record('alice');
        await store.create(key, r);
        let at = r.createdAt;
        while (at + IDLE_MS - 1 < r.absoluteExpiresAt) {
          at += IDLE_MS - 1;
          const loaded = await store.load(key, at);
          expect(loaded?.expiresAt).toBe(Math.min(at + IDLE_MS, r.absoluteExpiresAt));
        }
        expect(await store.load(key, r.absoluteExpiresAt)).toBeUndefined();
      });
    });

    describe('compare-and-set on the token version', () => {
      test('a write with the current version succeeds and bumps it', async () => {
        const key = unique('k');
        const r = record('alice');
        await store.create(key, r);
        expect(await store.writeTokens(key, 1, 'sealed-tokens-2')).toBe(true);
        expect(await store.readTokens(key)).toEqual({ tokens: 'sealed-tokens-2', version: 2 });
        expect(await store.load(key, r.createdAt)).toMatchObject({ tokens: 'sealed-tokens-2', version: 2 });
      });

      test('a write with a stale version changes nothing', async () => {
        const key = unique('k');
        await store.create(key, record('alice'));
        expect(await store.writeTokens(key, 1, 'winner')).toBe(true);
        expect(await store.writeTokens(key, 1, 'loser')).toBe(false);
        expect(await store.readTokens(key)).toEqual({ tokens: 'winner', version: 2 });
      });

      test('a write to a session that is gone fails', async () => {
        const key = unique('k');
        await store.create(key, record('alice'));
        await store.destroy(key);
        expect(await store.writeTokens(key, 1, 'late')).toBe(false);
        expect(await store.readTokens(key)).toBeUndefined();
      });
    });

    describe('the refresh lock', () => {
      test('is held by one owner at a time, per session', async () => {
        const key = unique('k');
        expect(await store.acquireLock(key, 'a', 10_000)).toBe(true);
        expect(await store.acquireLock(key, 'b', 10_000)).toBe(false);
        expect(await store.acquireLock(key, 'a', 10_000)).toBe(false);
        expect(await store.acquireLock(unique('other'), 'b', 10_000)).toBe(true);
        await store.releaseLock(key, 'a');
      });

      test('only its owner renews or releases it', async () => {
        const key = unique('k');
        expect(await store.acquireLock(key, 'a', 10_000)).toBe(true);
        expect(await store.renewLock(key, 'b', 10_000)).toBe(false);
        await store.releaseLock(key, 'b');
        expect(await store.acquireLock(key, 'b', 10_000)).toBe(false);
        expect(await store.renewLock(key, 'a', 10_000)).toBe(true);
        await store.releaseLock(key, 'a');
        expect(await store.renewLock(key, 'a', 10_000)).toBe(false);
        expect(await store.acquireLock(key, 'b', 10_000)).toBe(true);
        await store.releaseLock(key, 'b');
      });

      test('lapses after its TTL, and its old owner can no longer renew it', async () => {
        const key = unique('k');
        expect(await store.acquireLock(key, 'a', SHORT_TTL_MS)).toBe(true);
        await waitFor(() => store.acquireLock(key, 'b', 10_000), 5000, 'the lock to lapse');
        expect(await store.renewLock(key, 'a', 10_000)).toBe(false);
        await store.releaseLock(key, 'a');
        expect(await store.acquireLock(key, 'c', 10_000)).toBe(false);
        await store.releaseLock(key, 'b');
      });

      test('goes with its session', async () => {
        const key = unique('k');
        await store.create(key, record('alice'));
        expect(await store.acquireLock(key, 'a', 10_000)).toBe(true);
        await store.destroy(key);
        expect(await store.acquireLock(key, 'b', 10_000)).toBe(true);
        await store.releaseLock(key, 'b');
      });
    });

    describe('indexes for back-channel logout', () => {
      test('destroying by sid ends only that IdP session, and by sub every session of the user', async () => {
        const sub = unique('user');
        const sid = unique('sid');
        const [one, two, three] = [unique('k'), unique('k'), unique('k')];
        await store.create(one, record(sub, sid));
        await store.create(two, record(sub, unique('sid')));
        await store.create(three, record(sub));
        expect(await store.destroyIndexed('sid', sid)).toBe(1);
        expect(await store.readTokens(one)).toBeUndefined();
        expect(await store.readTokens(two)).toBeDefined();
        expect(await store.destroyIndexed('sub', sub)).toBe(2);
        expect(await store.readTokens(two)).toBeUndefined();
        expect(await store.readTokens(three)).toBeUndefined();
        expect(await store.destroyIndexed('sub', sub)).toBe(0);
      });

      test('destroying by sid takes the session out of its sub index too', async () => {
        const sub = unique('user');
        const sid = unique('sid');
        await store.create(unique('k'), record(sub, sid));
        expect(await store.destroyIndexed('sid', sid)).toBe(1);
        expect(await store.destroyIndexed('sub', sub)).toBe(0);
      });

      test('stale entries are harmless: sessions already ended or expired are not counted', async () => {
        const sub = unique('user');
        const sid = unique('sid');
        const [ended, expired, live] = [unique('k'), unique('k'), unique('k')];
        const r = record(sub, sid);
        await store.create(ended, r);
        await store.create(expired, r);
        await store.create(live, record(sub));
        await store.destroy(ended);
        expect(await store.load(expired, r.absoluteExpiresAt)).toBeUndefined();
        expect(await store.destroyIndexed('sid', sid)).toBe(0);
        expect(await store.destroyIndexed('sub', sub)).toBe(1);
        expect(await store.readTokens(live)).toBeUndefined();
      });

      test('an unknown sid or sub ends nothing', async () => {
        expect(await store.destroyIndexed('sid', unique('sid'))).toBe(0);
        expect(await store.destroyIndexed('sub', unique('user'))).toBe(0);
      });
    });

    describe('replay markers', () => {
      test('an id is seen first once, until forgotten', async () => {
        const id = unique('jti');
        expect(await store.firstSeen(id, 10_000)).toBe(true);
        expect(await store.firstSeen(id, 10_000)).toBe(false);
        expect(await store.firstSeen(unique('jti'), 10_000)).toBe(true);
        await store.forget(id);
        expect(await store.firstSeen(id, 10_000)).toBe(true);
        expect(await store.firstSeen(id, 10_000)).toBe(false);
      });

      test('a marker lapses after its TTL', async () => {
        const id = unique('jti');
        expect(await store.firstSeen(id, SHORT_TTL_MS)).toBe(true);
        expect(await store.firstSeen(id, SHORT_TTL_MS)).toBe(false);
        await waitFor(() => store.firstSeen(id, 10_000), 5000, 'the marker to lapse');
        expect(await store.firstSeen(id, 10_000)).toBe(false);
      });
    });

    test('ping answers while the store is up', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    if (!features.invalidation) {
      test('has no invalidation feed, so no session cache runs on it', () => {
        expect(store.invalidations).toBeUndefined();
      });
      return;
    }

    describe('invalidation', () => {
      /** Collects what a feed announces, to wait for a given key. */
      function listen(instance: SessionStore): { saw(key: string): Promise<true> } {
        const seen = new Set<string>();
        instance.invalidations!.onInvalidate((key) => {
          if (key !== undefined) seen.add(key);
        });
        return {
          saw: (key) => waitFor(() => (seen.has(key) ? true : undefined), 5000, `the invalidation of ${key}`),
        };
      }

      test('a token write or a destroy on one instance reaches another instance’s feed', async () => {
        const replica = under.replica!;
        await replica.invalidations!.whenLive();
        const other = listen(replica);
        const [written, destroyed, indexed] = [unique('k'), unique('k'), unique('k')];
        const sid = unique('sid');
        await store.create(written, record('alice'));
        await store.create(destroyed, record('alice'));
        await store.create(indexed, record('alice', sid));
        await store.writeTokens(written, 1, 'next');
        await other.saw(written);
        await store.destroy(destroyed);
        await other.saw(destroyed);
        await store.destroyIndexed('sid', sid);
        await other.saw(indexed);
      });

      test('the instance that made a change tells its own feed by the time the call returns', async () => {
        const feed = store.invalidations!;
        await feed.whenLive();
        const seen: (string | undefined)[] = [];
        feed.onInvalidate((key) => seen.push(key));
        const key = unique('k');
        await store.create(key, record('alice'));
        await store.writeTokens(key, 1, 'next');
        expect(seen).toContain(key);
        seen.length = 0;
        await store.destroy(key);
        expect(seen).toContain(key);
      });
    });
  });
}
