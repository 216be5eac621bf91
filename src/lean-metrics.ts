import type { Metric, Registry } from 'prom-client';

/** What a registry reads from a metric when it renders it (prom-client's MetricObjectWithValues). */
interface Rendered {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly aggregator: string;
  readonly values: { value: number; labels: Record<string, string | number>; metricName?: string }[];
}

/**
 * Counters and histograms for the proxy's per-request series, exposed through a prom-client
 * registry like the others. prom-client's bound children still build and hash their label set on
 * every call; these count into a series bound once, which is all the hot path needs. Only series
 * with a count are exposed, as prom-client does.
 */
interface Series {
  readonly labels: Record<string, string>;
  /** Per bucket, not cumulative; the last is +Inf. Unused by counters. */
  readonly buckets: number[];
  sum: number;
  count: number;
}

abstract class LeanMetric {
  private readonly series = new Map<string, Series>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    registry: Registry,
    private readonly bucketCount = 0,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  protected bound(values: readonly string[]): Series {
    const key = values.join('\u0000');
    let s = this.series.get(key);
    if (!s) {
      const labels = Object.fromEntries(this.labelNames.map((n, i) => [n, values[i]!]));
      s = { labels, buckets: new Array<number>(this.bucketCount).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    return s;
  }

  protected live(): Series[] {
    return [...this.series.values()].filter((s) => s.count > 0);
  }

  reset(): void {
    for (const s of this.series.values()) {
      s.buckets.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}

export class LeanCounter extends LeanMetric {
  readonly type = 'counter';
  readonly aggregator = 'sum';

  labels(...values: string[]): { inc(value?: number): void } {
    const s = this.bound(values);
    return {
      inc(value = 1) {
        // As prom-client: a counter only goes up. Nothing on the hot path passes a value.
        if (value >= 0) {
          s.sum += value;
          s.count++;
        }
      },
    };
  }

  async get(): Promise<Rendered> {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.live().map((s) => ({ value: s.sum, labels: s.labels })),
    };
  }
}

export class LeanHistogram extends LeanMetric {
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly upperBounds: readonly number[],
    registry: Registry,
  ) {
    super(name, help, labelNames, registry, upperBounds.length + 1);
  }

  labels(...values: string[]): { observe(value: number): void } {
    const s = this.bound(values);
    const bounds = this.upperBounds;
    return {
      observe(value) {
        if (!Number.isFinite(value)) return;
        let i = 0;
        while (i < bounds.length && value > bounds[i]!) i++;
        s.buckets[i]!++;
        s.sum += value;
        s.count++;
      },
    };
  }

  async get(): Promise<Rendered> {
    const values: Rendered['values'] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.live()) {
      let cumulative = 0;
      this.upperBounds.forEach((le, i) => {
        cumulative += s.buckets[i]!;
        values.push({ value: cumulative, labels: { ...s.labels, le }, metricName: bucket });
      });
      values.push({ value: s.count, labels: { ...s.labels, le: '+Inf' }, metricName: bucket });
      values.push({ value: s.sum, labels: s.labels, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: s.labels, metricName: `${this.name}_count` });
    }
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values,
    };
  }
}
