import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { ConfigError, loadConfig, type Config } from '../src/config/load.js';
import { envSchema } from '../src/config/schema.js';

/**
 * The Kubernetes manifests and the Dockerfile restate what the code decides: variable names, ports,
 * probe paths, the user the image runs as. Nothing here can run them (no cluster, no Docker engine),
 * so these checks read them and compare them with the code, which is where they would drift.
 */
const DIR = 'deploy/kubernetes';

interface Port {
  name?: string;
  containerPort?: number;
  port?: number;
  targetPort?: number | string;
}
interface Probe {
  httpGet?: { path?: string; port?: number | string };
}
interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type?: string };
  privileged?: boolean;
}
interface Container {
  name: string;
  ports?: Port[];
  env?: { name: string; value?: string; valueFrom?: unknown }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
}
interface Manifest {
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: {
    replicas?: number;
    minAvailable?: number;
    selector?: Record<string, string> & { matchLabels?: Record<string, string> };
    ports?: Port[];
    strategy?: { type?: string; rollingUpdate?: { maxUnavailable?: number; maxSurge?: number } };
    template?: {
      metadata: { labels: Record<string, string> };
      spec: {
        terminationGracePeriodSeconds?: number;
        securityContext?: SecurityContext;
        containers: Container[];
      };
    };
  };
}

const kustomization = parseAllDocuments(readFileSync(join(DIR, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as {
  resources: string[];
};
const manifests: Manifest[] = kustomization.resources.flatMap((file) =>
  parseAllDocuments(readFileSync(join(DIR, file), 'utf8')).map((doc) => {
    if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
    return doc.toJS() as Manifest;
  }),
);

function only(kind: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind);
  if (found.length !== 1) throw new Error(`expected one ${kind} in ${DIR}, found ${found.length}`);
  return found[0]!;
}

const deployment = only('Deployment');
const pod = deployment.spec!.template!;
const container = pod.spec.containers[0]!;
const configMap = only('ConfigMap');
const secret = only('Secret');
const services = manifests.filter((m) => m.kind === 'Service');

/** What the container's environment holds: its envFrom sources, then env, which wins in Kubernetes. */
function containerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const source = from.configMapRef
      ? manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === from.configMapRef!.name)
      : manifests.find((m) => m.kind === 'Secret' && m.metadata.name === from.secretRef?.name);
    if (!source)
      throw new Error(`envFrom names a ConfigMap or Secret that kustomization.yaml does not apply`);
    Object.assign(env, source.data, source.stringData);
  }
  for (const e of container.env ?? []) if (e.value !== undefined) env[e.name] = e.value;
  return env;
}

function containerPort(ref: number | string | undefined): number | undefined {
  return typeof ref === 'number'
    ? container.ports?.find((p) => p.containerPort === ref)?.containerPort
    : container.ports?.find((p) => p.name === ref)?.containerPort;
}

/** The example with its placeholders filled in, the way an operator would. */
function filledIn(env: Record<string, string>): Config {
  return loadConfig(
    Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v.replace(/change-me-/gi, '')])),
  );
}

const matches = (selector: Record<string, string> | undefined, labels: Record<string, string>): boolean =>
  !!selector &&
  Object.keys(selector).length > 0 &&
  Object.entries(selector).every(([k, v]) => labels[k] === v);

describe('the Kubernetes manifests', () => {
  test('kustomization.yaml applies every manifest in deploy/kubernetes, and nothing else', () => {
    const files = readdirSync(DIR).filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml');
    expect([...kustomization.resources].sort()).toEqual(files.sort());
  });

  test('every BFF_ variable they name exists in the configuration schema', () => {
    const named = new Set<string>();
    const walk = (node: unknown): void => {
      if (typeof node === 'string') for (const m of node.match(/\bBFF_[A-Z0-9_]+/g) ?? []) named.add(m);
      else if (Array.isArray(node)) node.forEach(walk);
      else if (node && typeof node === 'object') {
        for (const [k, v] of Object.entries(node)) {
          walk(k);
          walk(v);
        }
      }
    };
    manifests.forEach(walk);
    expect(named.size).toBeGreaterThan(5);
    const known = Object.keys(envSchema.shape);
    expect([...named].filter((n) => !known.includes(n))).toEqual([]);
  });

  test('the example Secret is refused as it stands, variable by variable', () => {
    const secretNames = Object.keys(secret.stringData ?? {}).sort();
    expect(secretNames).toEqual(['BFF_CLIENT_SECRET', 'BFF_REDIS_URL', 'BFF_SESSION_SECRET']);
    let problems: readonly string[] = [];
    try {
      loadConfig(containerEnv());
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems = err.problems;
    }
    for (const name of secretNames) {
      expect(problems).toContain(
        `${name}: still has the placeholder from the example configuration; set your own value`,
      );
    }
  });

  test('secrets are in the Secret, never in the ConfigMap or the Deployment', () => {
    const secrets = ['BFF_CLIENT_SECRET', 'BFF_CLIENT_PRIVATE_KEY', 'BFF_SESSION_SECRET', 'BFF_REDIS_URL'];
    expect(Object.keys(configMap.data ?? {}).filter((k) => secrets.includes(k))).toEqual([]);
    expect((container.env ?? []).map((e) => e.name).filter((k) => secrets.includes(k))).toEqual([]);
  });

  test('with the placeholders filled in, the configuration is valid and listens where the ports say', () => {
    const config = filledIn(containerEnv());
    expect(config.port).toBe(containerPort('http'));
    expect(config.metrics).toEqual({ port: containerPort('metrics'), host: '0.0.0.0' });
    expect(config.store.kind).toBe('redis');
  });

  test('the probes ask /healthz (liveness) and /readyz (readiness) on the port BFF_PORT sets', () => {
    const { port, basePath } = filledIn(containerEnv());
    expect(container.livenessProbe?.httpGet?.path).toBe(`${basePath}/healthz`);
    expect(container.readinessProbe?.httpGet?.path).toBe(`${basePath}/readyz`);
    expect(containerPort(container.livenessProbe?.httpGet?.port)).toBe(port);
    expect(containerPort(container.readinessProbe?.httpGet?.port)).toBe(port);
  });

  test('two replicas, upgraded one new pod at a time with none taken away first', () => {
    expect(deployment.spec!.replicas).toBe(2);
    expect(deployment.spec!.strategy).toEqual({
      type: 'RollingUpdate',
      rollingUpdate: { maxUnavailable: 0, maxSurge: 1 },
    });
    expect(pod.spec.terminationGracePeriodSeconds).toBe(30);
    expect(pod.spec.containers).toHaveLength(1);
  });

  test('the Deployment, the Services and the PodDisruptionBudget select the pods', () => {
    const labels = pod.metadata.labels;
    expect(matches(deployment.spec!.selector!.matchLabels, labels)).toBe(true);
    const pdb = only('PodDisruptionBudget');
    expect(pdb.spec!.minAvailable).toBe(1);
    expect(matches(pdb.spec!.selector!.matchLabels, labels)).toBe(true);
    expect(services.length).toBeGreaterThan(0);
    for (const service of services) expect(matches(service.spec!.selector, labels)).toBe(true);
  });

  test('every Service port targets a container port, and the metrics port never shares a Service with the app', () => {
    for (const service of services) {
      for (const port of service.spec!.ports!) {
        expect(typeof port.targetPort).toBe('string');
        expect(containerPort(port.targetPort)).toBeDefined();
      }
    }
    const targets = (s: Manifest): (number | string | undefined)[] => s.spec!.ports!.map((p) => p.targetPort);
    const app = services.filter((s) => targets(s).includes('http'));
    const metrics = services.filter((s) => targets(s).includes('metrics'));
    expect(app).toHaveLength(1);
    expect(metrics).toHaveLength(1);
    expect(targets(app[0]!)).toEqual(['http']);
    expect(metrics[0]!.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': String(containerPort('metrics')),
      'prometheus.io/path': '/metrics',
    });
  });

  test('the container runs as a non-root user, read-only, without privileges or capabilities', () => {
    const podContext = pod.spec.securityContext ?? {};
    const own = container.securityContext ?? {};
    // A container's own setting overrides the pod's.
    const effective: SecurityContext = { ...podContext, ...own };
    expect(effective.runAsNonRoot).toBe(true);
    expect(effective.runAsUser).not.toBe(0);
    expect(effective.readOnlyRootFilesystem).toBe(true);
    expect(effective.allowPrivilegeEscalation).toBe(false);
    expect(effective.privileged).not.toBe(true);
    expect(effective.capabilities?.drop).toEqual(['ALL']);
    expect(effective.capabilities?.add).toBeUndefined();
    expect(effective.seccompProfile).toEqual({ type: 'RuntimeDefault' });
  });

  test('the container requests CPU and memory, and has a memory limit', () => {
    expect(container.resources?.requests?.cpu).toBeDefined();
    expect(container.resources?.requests?.memory).toBeDefined();
    expect(container.resources?.limits?.memory).toBeDefined();
  });
});

describe('the Dockerfile', () => {
  const dockerfile = readFileSync('Dockerfile', 'utf8').replace(/\\\n/g, ' ');
  const instructions = dockerfile
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const args = (keyword: string): string[] =>
    instructions
      .filter((l) => l.toUpperCase().startsWith(`${keyword} `))
      .map((l) => l.slice(keyword.length + 1).trim());
  const runtimeStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));

  test('builds both stages on Node 24, bookworm-slim', () => {
    const from = args('FROM').map((a) => a.split(/\s+/)[0]);
    expect(from).toEqual(['node:24-bookworm-slim', 'node:24-bookworm-slim']);
  });

  test('runs as the non-root user the Deployment expects', () => {
    const users = args('USER');
    expect(users).toHaveLength(1);
    // Numeric, so that runAsNonRoot can verify it; a name would make the kubelet refuse the pod.
    const [uid] = users[0]!.split(':');
    expect(uid).toMatch(/^\d+$/);
    expect(Number(uid)).not.toBe(0);
    const runAsUser = container.securityContext?.runAsUser ?? pod.spec.securityContext?.runAsUser;
    if (runAsUser !== undefined) expect(runAsUser).toBe(Number(uid));
  });

  test('exposes the default BFF_PORT, which is the port the Deployment uses', () => {
    const exposed = args('EXPOSE')
      .flatMap((a) => a.split(/\s+/))
      .map((p) => Number(p.replace(/\/tcp$/, '')));
    expect(exposed).toEqual([envSchema.shape.BFF_PORT.parse(undefined)]);
    expect(exposed).toEqual([containerPort('http')]);
    expect(dockerfile).not.toMatch(/^ENV\s+BFF_PORT/m);
  });

  test('keeps its health check on /healthz', () => {
    expect(args('HEALTHCHECK').join(' ')).toContain('/healthz');
  });

  test('installs neither dev nor optional dependencies in the runtime image', () => {
    const install = /^RUN npm ci\b[^\n]*/m.exec(runtimeStage)?.[0] ?? '';
    expect(install).toContain('--omit=dev');
    expect(install).toContain('--omit=optional');
    expect(runtimeStage).toMatch(/^ENV NODE_ENV=production$/m);
  });
});

describe('the production code path', () => {
  const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as {
    dependencies: Record<string, string>;
    optionalDependencies?: Record<string, string>;
  };

  test('oidc-provider, which only demo mode embeds, is optional and stays out of the runtime image', () => {
    expect(pkg.dependencies['oidc-provider']).toBeUndefined();
    expect(pkg.optionalDependencies?.['oidc-provider']).toBeDefined();
  });

  test('what src/main.ts imports at start-up comes from the runtime dependencies only', () => {
    // Static imports only: demo mode is reached through a dynamic import(), and type-only imports vanish.
    const staticImport = /^\s*(?:import|export)\s+(?!type\s)(?:[^'";]*?\sfrom\s*)?['"]([^'"]+)['"]/gm;
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(staticImport)) {
        if (spec!.startsWith('.')) {
          const target = resolve(dirname(file), spec!.replace(/\.js$/, '.ts'));
          if (!existsSync(target)) throw new Error(`${file} imports ${spec}, which has no .ts source`);
          visit(target);
        } else if (!spec!.startsWith('node:') && !builtinModules.includes(spec!)) {
          packages.add(spec!.startsWith('@') ? spec!.split('/').slice(0, 2).join('/') : spec!.split('/')[0]!);
        }
      }
    };
    visit(resolve('src/main.ts'));
    expect(seen.size).toBeGreaterThan(10);
    expect([...seen].filter((f) => f.includes('/src/demo/'))).toEqual([]);
    expect([...packages].filter((p) => !(p in pkg.dependencies))).toEqual([]);
  });
});

describe('the metrics listener settings', () => {
  const base = {
    BFF_PUBLIC_URL: 'https://app.example.com',
    BFF_ISSUER: 'https://idp.example.com',
    BFF_CLIENT_ID: 'spa',
    BFF_CLIENT_SECRET: 'a-client-secret',
    BFF_SESSION_STORE: 'memory',
    BFF_SESSION_SECRET: 'x'.repeat(32),
    BFF_ROUTES: '[{"path":"/api","target":"http://127.0.0.1:5000"}]',
  };

  test('metrics are off unless BFF_METRICS_PORT is set', () => {
    expect(loadConfig(base).metrics).toBeUndefined();
    expect(loadConfig({ ...base, BFF_METRICS_PORT: '' }).metrics).toBeUndefined();
  });

  test('BFF_METRICS_HOST defaults to BFF_HOST', () => {
    expect(loadConfig({ ...base, BFF_METRICS_PORT: '9464', BFF_HOST: '10.1.2.3' }).metrics).toEqual({
      port: 9464,
      host: '10.1.2.3',
    });
    expect(loadConfig({ ...base, BFF_METRICS_PORT: '9464', BFF_METRICS_HOST: '127.0.0.1' }).metrics).toEqual({
      port: 9464,
      host: '127.0.0.1',
    });
  });

  test.each([[{ BFF_METRICS_PORT: '8080' }], [{ BFF_METRICS_PORT: '9000', BFF_PORT: '9000' }]])(
    'a metrics port equal to the public port is refused: %j',
    (vars) => {
      expect(() => loadConfig({ ...base, ...vars })).toThrow(
        'BFF_METRICS_PORT: must differ from BFF_PORT; metrics are never served on the public port',
      );
    },
  );

  test('a metrics port that is not a port is refused', () => {
    expect(() => loadConfig({ ...base, BFF_METRICS_PORT: '70000' })).toThrow(
      'BFF_METRICS_PORT: must be a port number from 0 to 65535',
    );
  });
});
