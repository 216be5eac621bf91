import { ConfigError, loadConfig, type Config } from '../config/load.js';

/** OTLP over HTTP, in the encodings coatcheck ships exporters for. */
export type OtlpProtocol = 'http/protobuf' | 'http/json';

/** Tracing as the standard OTEL_* variables configure it, checked once at start-up. */
export interface TracingSettings {
  /** Where spans are POSTed: the traces endpoint as given, or the base endpoint plus `v1/traces`. */
  readonly endpoint: string;
  readonly protocol: OtlpProtocol;
  readonly serviceName: string;
  /** From OTEL_RESOURCE_ATTRIBUTES, service.name aside. */
  readonly resourceAttributes: Readonly<Record<string, string>>;
}

const PROTOCOLS: readonly string[] = ['http/protobuf', 'http/json'];

/**
 * Reads the OTEL_* variables coatcheck acts on. Tracing is on only when OTEL_SDK_DISABLED is not
 * `true`, OTEL_TRACES_EXPORTER is not `none` and an OTLP endpoint is set; otherwise the settings
 * are undefined and nothing else is checked. An empty variable counts as unset, as the spec says.
 * The SDK reads its other standard variables (sampler, batch processor, exporter headers, timeout,
 * compression, certificates) itself when it is built, at start-up.
 */
export function tracingSettings(rawEnv: Record<string, string | undefined>): {
  settings: TracingSettings | undefined;
  problems: string[];
} {
  const env = (name: string): string | undefined => rawEnv[name]?.trim() || undefined;
  const off = { settings: undefined, problems: [] };
  if (env('OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return off;
  const exporter = env('OTEL_TRACES_EXPORTER')?.toLowerCase() ?? 'otlp';
  if (exporter === 'none') return off;
  const tracesEndpoint = env('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const baseEndpoint = env('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (!tracesEndpoint && !baseEndpoint) return off;

  const problems: string[] = [];
  if (exporter !== 'otlp') {
    problems.push(`OTEL_TRACES_EXPORTER: must be otlp or none; coatcheck ships no "${exporter}" exporter`);
  }
  const endpointName = tracesEndpoint ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  const endpoint = tracesEndpoint ?? `${baseEndpoint!.replace(/\/+$/, '')}/v1/traces`;
  if (!URL.canParse(endpoint) || !/^https?:$/.test(new URL(endpoint).protocol)) {
    problems.push(`${endpointName}: must be an http:// or https:// URL`);
  }
  const protocolName = env('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL')
    ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL'
    : 'OTEL_EXPORTER_OTLP_PROTOCOL';
  const protocol = env(protocolName) ?? 'http/protobuf';
  if (!PROTOCOLS.includes(protocol)) {
    problems.push(`${protocolName}: must be http/protobuf or http/json (OTLP over gRPC is not supported)`);
  }
  const resource = resourceAttributes(env('OTEL_RESOURCE_ATTRIBUTES'));
  if (resource === undefined) {
    problems.push('OTEL_RESOURCE_ATTRIBUTES: must be a comma-separated list of key=value pairs');
  }
  if (problems.length) return { settings: undefined, problems };
  const { 'service.name': resourceServiceName, ...others } = resource!;
  return {
    settings: Object.freeze({
      endpoint,
      protocol: protocol as OtlpProtocol,
      // OTEL_SERVICE_NAME wins over a service.name in OTEL_RESOURCE_ATTRIBUTES, as the spec says.
      serviceName: env('OTEL_SERVICE_NAME') ?? resourceServiceName ?? 'coatcheck',
      resourceAttributes: Object.freeze(others),
    }),
    problems,
  };
}

/** The W3C Baggage-like list of OTEL_RESOURCE_ATTRIBUTES: `key=value,key=value`, values percent-encoded. */
function resourceAttributes(raw: string | undefined): Record<string, string> | undefined {
  const out: Record<string, string> = {};
  for (const pair of (raw ?? '').split(',')) {
    if (!pair.trim()) continue;
    const eq = pair.indexOf('=');
    const key = pair.slice(0, eq).trim();
    if (eq < 1 || !key) return undefined;
    try {
      out[key] = decodeURIComponent(pair.slice(eq + 1).trim());
    } catch {
      return undefined;
    }
  }
  return out;
}

/**
 * The BFF_* configuration and the tracing settings together, so that start-up lists the problems
 * of both at once. Only main.ts passes process.env here.
 */
export function loadConfigAndTracing(env: Record<string, string | undefined>): {
  config: Config;
  tracing: TracingSettings | undefined;
} {
  const tracing = tracingSettings(env);
  let config: Config;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError && tracing.problems.length) {
      throw new ConfigError([...err.problems, ...tracing.problems], err.warnings);
    }
    throw err;
  }
  if (tracing.problems.length) throw new ConfigError(tracing.problems, config.warnings);
  return { config, tracing: tracing.settings };
}
