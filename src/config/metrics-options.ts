import { Registry } from 'prom-client';
import { z } from 'zod';
import { compileOptions } from './compile.js';

/**
 * Where a process serves `/metrics` (Prometheus text format), `/healthz`
 * and `/readyz` (`observability/metrics-server.ts`): the `metrics` option
 * of `ConcordatApp.create` and of `startBroker` (`concordat broker
 * --metrics-port`).
 */
export interface MetricsOptions {
  /** TCP port; 0 picks a free one (read it back from `app.metricsAddress` / `broker.metricsAddress`). Range 0..65535. @default 9464 */
  port?: number;
  /**
   * Address to listen on. The endpoints are read-only and carry no secrets
   * besides names (topics, groups, global transaction modes), but keep them
   * off public networks. @default '127.0.0.1'
   */
  host?: string;
  /** prom-client registry served on `/metrics`; Concordat's components register on the default one. @default prom-client's default registry */
  registry?: Registry;
  /** Longest a `/readyz` check (such as the database round trip) may take before it counts as not ready, in ms. Range 10..60000. @default 2000 */
  readyTimeoutMs?: number;
}

const schema = z.strictObject({
  port: z.number().int().min(0).max(65_535).default(9464),
  host: z.string().min(1).default('127.0.0.1'),
  registry: z.custom<Registry>((value) => value instanceof Registry, "must be a prom-client Registry (import { Registry } from 'prom-client')").optional(),
  readyTimeoutMs: z.number().int().min(10).max(60_000).default(2000),
});

/** {@link MetricsOptions} with every field present and checked (durations in ms, sizes in bytes). */
export type CompiledMetricsOptions = z.output<typeof schema>;

/** Validates and fills in {@link MetricsOptions}. @throws ConcordatError CONFIG_INVALID naming the option, e.g. `metrics.port` */
export function compileMetricsOptions(options: MetricsOptions = {}, scope = 'metrics'): CompiledMetricsOptions {
  return compileOptions(schema, options, scope);
}
