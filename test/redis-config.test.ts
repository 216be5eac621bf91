import { describeConfig } from '../src/config/describe.js';
import { loadConfig } from '../src/config/load.js';
import { configProblems as problems, validEnv } from './support/config-env.js';

const { BFF_REDIS_URL: _standalone, ...base } = validEnv;
const SENTINELS = 'redis://:sentinel-pw@10.0.0.1:26379,redis://:sentinel-pw@10.0.0.2:26379';
const SEEDS = 'redis://10.0.1.1:6379, redis://10.0.1.2:6379';

describe('exactly one Redis topology when BFF_SESSION_STORE=redis', () => {
  test('none set is an absence, listed with the other problems', () => {
    const list = problems({ ...base, BFF_CLIENT_ID: undefined });
    expect(list).toContain(
      'BFF_REDIS_URL: is required unless BFF_SESSION_STORE=memory; set exactly one of BFF_REDIS_URL, BFF_REDIS_SENTINEL_CONNECTION_URLS, BFF_REDIS_CLUSTER_CONNECTION_URLS',
    );
    expect(list).toContain('BFF_CLIENT_ID: is required');
  });

  test('two or three set is a conflict naming them', () => {
    expect(
      problems({ ...base, BFF_REDIS_URL: 'redis://r:6379', BFF_REDIS_CLUSTER_CONNECTION_URLS: SEEDS }),
    ).toEqual([
      'BFF_REDIS_URL, BFF_REDIS_CLUSTER_CONNECTION_URLS: conflict; set exactly one of BFF_REDIS_URL, BFF_REDIS_SENTINEL_CONNECTION_URLS, BFF_REDIS_CLUSTER_CONNECTION_URLS',
    ]);
    const all = problems({
      ...base,
      BFF_REDIS_URL: 'redis://r:6379',
      BFF_REDIS_SENTINEL_CONNECTION_URLS: SENTINELS,
      BFF_REDIS_SENTINEL_MASTER_NAME: 'mymaster',
      BFF_REDIS_CLUSTER_CONNECTION_URLS: SEEDS,
      BFF_PORT: 'x',
    });
    expect(all).toContain(
      'BFF_REDIS_URL, BFF_REDIS_SENTINEL_CONNECTION_URLS, BFF_REDIS_CLUSTER_CONNECTION_URLS: conflict; set exactly one of BFF_REDIS_URL, BFF_REDIS_SENTINEL_CONNECTION_URLS, BFF_REDIS_CLUSTER_CONNECTION_URLS',
    );
    expect(all.some((p) => p.startsWith('BFF_PORT:'))).toBe(true);
  });

  test('the memory store needs none', () => {
    expect(problems({ ...base, BFF_SESSION_STORE: 'memory' })).toEqual([]);
  });

  test('sentinel URLs need the master name, and the master name needs sentinel URLs', () => {
    expect(problems({ ...base, BFF_REDIS_SENTINEL_CONNECTION_URLS: SENTINELS })).toEqual([
      'BFF_REDIS_SENTINEL_MASTER_NAME: is required with BFF_REDIS_SENTINEL_CONNECTION_URLS',
    ]);
    expect(
      problems({ ...base, BFF_REDIS_URL: 'redis://r:6379', BFF_REDIS_SENTINEL_MASTER_NAME: 'mymaster' }),
    ).toEqual(['BFF_REDIS_SENTINEL_MASTER_NAME: applies only with BFF_REDIS_SENTINEL_CONNECTION_URLS']);
  });

  test('a Sentinel topology: sentinel URLs, master name, data-node credentials', () => {
    const c = loadConfig({
      ...base,
      BFF_REDIS_SENTINEL_CONNECTION_URLS: SENTINELS,
      BFF_REDIS_SENTINEL_MASTER_NAME: 'mymaster',
      BFF_REDIS_USERNAME: 'coatcheck',
      BFF_REDIS_PASSWORD: 'data-pw',
    });
    expect(c.store).toMatchObject({
      kind: 'redis',
      topology: 'sentinel',
      sentinelUrls: SENTINELS.split(','),
      masterName: 'mymaster',
      username: 'coatcheck',
      password: 'data-pw',
      keyPrefix: 'coatcheck:',
      waitTimeoutMs: 100,
    });
    // The start-up log names the topology without any password.
    const described = JSON.stringify(describeConfig(c));
    expect(described).toContain('redis sentinel master mymaster via redis://10.0.0.1:26379');
    expect(described).not.toMatch(/sentinel-pw|data-pw/);
  });

  test('a Cluster topology: seed URLs, trimmed', () => {
    const c = loadConfig({
      ...base,
      BFF_REDIS_CLUSTER_CONNECTION_URLS: SEEDS,
      BFF_REDIS_KEY_PREFIX: 'shop:',
      BFF_REDIS_WAIT_TIMEOUT: '0.25',
    });
    expect(c.store).toMatchObject({
      topology: 'cluster',
      clusterUrls: ['redis://10.0.1.1:6379', 'redis://10.0.1.2:6379'],
      keyPrefix: 'shop:',
      waitTimeoutMs: 250,
    });
  });

  test.each([
    [
      { BFF_REDIS_CLUSTER_CONNECTION_URLS: 'http://x:1' },
      'BFF_REDIS_CLUSTER_CONNECTION_URLS: must be a comma-separated list of redis:// or rediss:// URLs',
    ],
    [
      { BFF_REDIS_CLUSTER_CONNECTION_URLS: 'redis://a:1,rediss://b:1' },
      'BFF_REDIS_CLUSTER_CONNECTION_URLS: must use one scheme for every URL',
    ],
    [
      { BFF_REDIS_CLUSTER_CONNECTION_URLS: 'redis://u:p@a:1' },
      'BFF_REDIS_CLUSTER_CONNECTION_URLS: must not carry credentials',
    ],
    [
      { BFF_REDIS_URL: 'redis://a:1', BFF_REDIS_PASSWORD: 'p' },
      'BFF_REDIS_PASSWORD: applies to the Sentinel and Cluster topologies',
    ],
    [
      { BFF_REDIS_URL: 'redis://a:1', BFF_REDIS_CA_FILE: 'package.json' },
      'BFF_REDIS_CA_FILE: applies only to rediss:// URLs',
    ],
    [
      { BFF_REDIS_URL: 'rediss://a:1', BFF_REDIS_CA_FILE: '/no/such/ca.pem' },
      'BFF_REDIS_CA_FILE: no such file',
    ],
    [
      { BFF_REDIS_URL: 'redis://a:1', BFF_REDIS_KEY_PREFIX: '{app}:' },
      'BFF_REDIS_KEY_PREFIX: must not contain "{" or "}"',
    ],
    [
      { BFF_REDIS_URL: 'redis://a:1', BFF_REDIS_WAIT_TIMEOUT: '100' },
      'BFF_REDIS_WAIT_TIMEOUT: must be a number of seconds from 0 (off) to 10',
    ],
    [
      {
        BFF_REDIS_SENTINEL_CONNECTION_URLS: 'redis://:a@s1:1,redis://:b@s2:1',
        BFF_REDIS_SENTINEL_MASTER_NAME: 'm',
      },
      'BFF_REDIS_SENTINEL_CONNECTION_URLS: every sentinel URL must carry the same credentials',
    ],
  ])('%j is refused', (env, message) => {
    expect(problems({ ...base, ...env }).join('\n')).toContain(message);
  });

  test('rediss:// with a CA file is accepted; 0 turns WAIT off', () => {
    const c = loadConfig({
      ...base,
      BFF_REDIS_URL: 'rediss://a:1',
      BFF_REDIS_CA_FILE: 'package.json',
      BFF_REDIS_WAIT_TIMEOUT: '0',
    });
    expect(c.store).toMatchObject({ topology: 'standalone', waitTimeoutMs: 0 });
    expect((c.store as { caFile: string }).caFile).toMatch(/^\/.*package\.json$/);
  });
});
