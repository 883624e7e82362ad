import { z } from 'zod';
import { compileOptions } from './compile.js';

/** Where Concordat keeps its tables. */
export interface DatabaseOptions {
  /**
   * PostgreSQL connection URL (`postgres://user:pass@host:port/db`).
   * @default process.env.DATABASE_URL; when that is unset too, an embedded
   *   PostgreSQL under `<dataDir>/postgres`, database `concordat`.
   */
  url?: string;
  /** Directory for the embedded PostgreSQL (and the embedded log). @default './.concordat' */
  dataDir?: string;
  /** Connections in the pool. Range 1..1000. @default 20 */
  poolSize?: number;
  /** How long a connection attempt may take, in ms. Range 100..600000. @default 10000 */
  connectTimeoutMs?: number;
  /** Application entity classes to register with TypeORM. @default [] */
  entities?: Function[];
  /** Application migration classes, run after Concordat's own. @default [] */
  migrations?: Function[];
  /** Run pending migrations when opening. @default true */
  runMigrations?: boolean;
}

const schema = z.strictObject({
  url: z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional(),
  dataDir: z.string().min(1).default('./.concordat'),
  poolSize: z.number().int().min(1).max(1000).default(20),
  connectTimeoutMs: z.number().int().min(100).max(600_000).default(10_000),
  entities: z.array(z.custom<Function>((value) => typeof value === 'function', 'must be a class')).default([]),
  migrations: z.array(z.custom<Function>((value) => typeof value === 'function', 'must be a class')).default([]),
  runMigrations: z.boolean().default(true),
});

export type CompiledDatabaseOptions = z.output<typeof schema>;

/** Validates and fills in {@link DatabaseOptions}. @throws ConcordatError CONFIG_INVALID */
export function compileDatabaseOptions(options: DatabaseOptions = {}): CompiledDatabaseOptions {
  const withEnv = { ...options, url: options.url ?? (process.env.DATABASE_URL || undefined) };
  return compileOptions(schema, withEnv, 'database');
}
