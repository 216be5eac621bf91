import { ConfigError } from '../config/load.js';
import type { Logger } from '../log.js';
import type { TracingSettings } from './settings.js';
import type { Tracer } from './tracer.js';

/** The endpoint as it may be logged: without credentials, should the URL carry any. */
function safeEndpoint(endpoint: string): string {
  const url = new URL(endpoint);
  url.username = '';
  url.password = '';
  return url.href;
}

/**
 * Starts the OpenTelemetry SDK: spans batched to an OTLP/HTTP endpoint. The SDK packages are
 * imported here and only here, when tracing is configured, so coatcheck without tracing never
 * loads them. Building the provider and the exporter reads the SDK's other standard variables
 * (OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_EXPORTER_OTLP_HEADERS, …_TIMEOUT, …_COMPRESSION,
 * …_CERTIFICATE) from the environment, once, now at start-up.
 */
export async function startTracing(settings: TracingSettings, log: Logger): Promise<Tracer> {
  const [sdk, resources, core, exporters, api, { OtelTracer }] = await Promise.all([
    import('@opentelemetry/sdk-trace-base'),
    import('@opentelemetry/resources'),
    import('@opentelemetry/core'),
    settings.protocol === 'http/json'
      ? import('@opentelemetry/exporter-trace-otlp-http')
      : import('@opentelemetry/exporter-trace-otlp-proto'),
    import('@opentelemetry/api'),
    import('./otel-tracer.js'),
  ]).catch((err: unknown) => {
    if ((err as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw err;
    throw new ConfigError([
      `OTEL_EXPORTER_OTLP_ENDPOINT: tracing is configured, but the OpenTelemetry SDK packages are not installed (${(err as Error).message})`,
    ]);
  });

  // Export failures reach the SDK's diagnostic logger, a no-op unless set. It is process-wide.
  const diag = log.child({ component: 'opentelemetry' });
  api.diag.setLogger(
    {
      error: (message) => diag.warn(message),
      warn: (message) => diag.warn(message),
      info: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
    },
    api.DiagLogLevel.WARN,
  );

  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({
      ...settings.resourceAttributes,
      'service.name': settings.serviceName,
    }),
    spanProcessors: [new sdk.BatchSpanProcessor(new exporters.OTLPTraceExporter({ url: settings.endpoint }))],
  });
  log.info(
    {
      endpoint: safeEndpoint(settings.endpoint),
      protocol: settings.protocol,
      serviceName: settings.serviceName,
    },
    'tracing on: spans are exported over OTLP',
  );
  return new OtelTracer(provider.getTracer('coatcheck'), new core.W3CTraceContextPropagator(), provider);
}
