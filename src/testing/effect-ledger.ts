import type { DataSource, EntityManager } from 'typeorm';

/** One effect a handler recorded. */
export interface Effect {
  /** Who had the effect: a consumer group, a handler name. */
  consumer: string;
  /** The partition key whose order is checked. */
  key: string;
  /** Position of the message within its key, from 1 (the producer numbers them). */
  seq: number;
}

/** What {@link EffectLedger.verify} found. */
export interface LedgerReport {
  /** Expected effects that never happened. */
  missing: Effect[];
  /** Effects that happened more than once, with how often. */
  duplicated: Array<Effect & { times: number }>;
  /** Keys whose effects happened out of order, with the order they happened in. */
  outOfOrder: Array<{ consumer: string; key: string; seqs: number[] }>;
  /** Effects nobody expected (a seq beyond the expected count). */
  unexpected: Effect[];
  /** Effects recorded in all. */
  total: number;
}

/**
 * A table of handler effects, to prove exactly-once and per-key order under
 * faults. The handler under test records one row per message **in its own
 * transaction** (`ledger.record(ctx.manager, ...)`), so the row exists if and
 * only if the handler's effect committed. The table has no unique
 * constraint on purpose: a second effect is recorded, not refused, and
 * {@link verify} reports it.
 *
 * Order: rows are numbered by a sequence at insert; for each key the seqs
 * must appear in increasing order (1, 2, 3, ...).
 */
export class EffectLedger {
  /** The table, schema-qualified, as given. */
  readonly table: string;

  /** @param table a table name Concordat may create and drop (letters, digits, `_`, one optional `schema.`). */
  constructor(
    private readonly dataSource: DataSource,
    table = 'concordat_test_effects',
  ) {
    if (!/^([a-z_][a-z0-9_]*\.)?[a-z_][a-z0-9_]*$/i.test(table)) throw new Error(`EffectLedger: '${table}' is not a plain table name`);
    this.table = table;
  }

  /** Creates the table (emptied if it exists). */
  async install(): Promise<void> {
    await this.dataSource.query(`DROP TABLE IF EXISTS ${this.table}`);
    await this.dataSource.query(
      `CREATE TABLE ${this.table} (n bigserial PRIMARY KEY, consumer text NOT NULL, key text NOT NULL, seq integer NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())`,
    );
  }

  /** Records an effect through the handler's own EntityManager (inside its transaction). */
  async record(manager: EntityManager, effect: Effect): Promise<void> {
    await manager.query(`INSERT INTO ${this.table} (consumer, key, seq) VALUES ($1, $2, $3)`, [effect.consumer, effect.key, effect.seq]);
  }

  /** Effects recorded so far. */
  async count(consumer?: string): Promise<number> {
    const rows: Array<{ n: string }> =
      consumer === undefined
        ? await this.dataSource.query(`SELECT count(*) AS n FROM ${this.table}`)
        : await this.dataSource.query(`SELECT count(*) AS n FROM ${this.table} WHERE consumer = $1`, [consumer]);
    return Number(rows[0]?.n ?? 0);
  }

  /**
   * Compares what happened with what should have: for each consumer, each
   * key of `expected` must have seqs 1..count, each exactly once, in order.
   * @param expected consumer → key → number of messages sent for that key
   */
  async verify(expected: Record<string, Record<string, number>>): Promise<LedgerReport> {
    const rows: Array<{ consumer: string; key: string; seq: number }> = await this.dataSource.query(`SELECT consumer, key, seq FROM ${this.table} ORDER BY n`);
    const seen = new Map<string, number[]>();
    for (const row of rows) {
      const id = `${row.consumer}\u0000${row.key}`;
      let list = seen.get(id);
      if (list === undefined) seen.set(id, (list = []));
      list.push(row.seq);
    }
    const report: LedgerReport = { missing: [], duplicated: [], outOfOrder: [], unexpected: [], total: rows.length };
    for (const [consumer, keys] of Object.entries(expected)) {
      for (const [key, count] of Object.entries(keys)) {
        const seqs = seen.get(`${consumer}\u0000${key}`) ?? [];
        seen.delete(`${consumer}\u0000${key}`);
        checkKey(report, consumer, key, count, seqs);
      }
    }
    for (const [id, seqs] of seen) {
      const [consumer, key] = id.split('\u0000') as [string, string];
      for (const seq of seqs) report.unexpected.push({ consumer, key, seq });
    }
    return report;
  }

  /**
   * {@link verify}, throwing when anything is off.
   * @throws Error listing the missing, duplicated, out-of-order and unexpected effects (the first 20 of each).
   */
  async assertExactlyOnceInOrder(expected: Record<string, Record<string, number>>): Promise<LedgerReport> {
    const report = await this.verify(expected);
    const problems = describe(report);
    if (problems.length > 0) throw new Error(`effects are not exactly once in order:\n- ${problems.join('\n- ')}`);
    return report;
  }
}

function checkKey(report: LedgerReport, consumer: string, key: string, count: number, seqs: number[]): void {
  const times = new Map<number, number>();
  for (const seq of seqs) times.set(seq, (times.get(seq) ?? 0) + 1);
  for (let seq = 1; seq <= count; seq++) {
    const n = times.get(seq) ?? 0;
    if (n === 0) report.missing.push({ consumer, key, seq });
    if (n > 1) report.duplicated.push({ consumer, key, seq, times: n });
  }
  for (const seq of times.keys()) if (seq < 1 || seq > count) report.unexpected.push({ consumer, key, seq });
  // Order of first occurrences (a duplicate is reported above, not as a reordering).
  const first = seqs.filter((seq, i) => seqs.indexOf(seq) === i);
  if (first.some((seq, i) => i > 0 && seq < first[i - 1]!)) report.outOfOrder.push({ consumer, key, seqs: first });
}

function describe(report: LedgerReport): string[] {
  const problems: string[] = [];
  const list = <T>(items: T[], show: (item: T) => string): string =>
    items.slice(0, 20).map(show).join(', ') + (items.length > 20 ? `, ... (${items.length} in all)` : '');
  if (report.missing.length > 0) problems.push(`missing: ${list(report.missing, (e) => `${e.consumer}/${e.key}#${e.seq}`)}`);
  if (report.duplicated.length > 0) problems.push(`duplicated: ${list(report.duplicated, (e) => `${e.consumer}/${e.key}#${e.seq} ×${e.times}`)}`);
  if (report.outOfOrder.length > 0) problems.push(`out of order: ${list(report.outOfOrder, (e) => `${e.consumer}/${e.key} [${e.seqs.join(',')}]`)}`);
  if (report.unexpected.length > 0) problems.push(`unexpected: ${list(report.unexpected, (e) => `${e.consumer}/${e.key}#${e.seq}`)}`);
  return problems;
}
