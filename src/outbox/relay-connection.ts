import pg from 'pg';

/** Longest wait for a relay connection to open, in ms (a failed attempt is retried with the relay's backoff). */
const RELAY_CONNECT_TIMEOUT_MS = 10_000;

/**
 * A relay's own PostgreSQL connection (one per lane, one for the scheduler),
 * opened outside the app's pool, which it would otherwise hold a slot of for
 * good and keep from closing.
 *
 * It commits asynchronously (`synchronous_commit = off`, set when it
 * connects): the relay's only writes are deletes of rows the log has
 * acknowledged and moves of due scheduled rows into the outbox; losing one
 * in a crash of PostgreSQL means publishing those rows again or moving them
 * again (a duplicate, never a loss), while waiting for its WAL flush would
 * put an fsync on every message's path.
 *
 * Opened on the first {@link query}. A connection that failed (a statement's
 * error, or an error while idle) is closed and forgotten; the next call
 * opens a new one. Not for concurrent use: its owner runs one statement at
 * a time.
 */
export class RelayConnection {
  private client: pg.Client | undefined;

  /** @param host where the URL of the database is read, at each connect */
  constructor(private readonly host: { readonly databaseUrl: string }) {}

  /**
   * Runs the named prepared statement `name` (parsed and planned once per
   * connection). @throws the connection's or the statement's error, after
   * closing the connection
   */
  async query<R>(name: string, text: string, values: unknown[]): Promise<pg.QueryResult<R & pg.QueryResultRow>> {
    const client = await this.connection();
    try {
      return await client.query<R & pg.QueryResultRow>({ name, text, values });
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** Closes the connection, if open; never throws. */
  async close(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private async connection(): Promise<pg.Client> {
    if (this.client !== undefined) return this.client;
    const client = new pg.Client({
      connectionString: this.host.databaseUrl,
      options: '-c synchronous_commit=off',
      connectionTimeoutMillis: RELAY_CONNECT_TIMEOUT_MS,
      keepAlive: true,
    });
    // A connection lost while idle: forget it (the next call opens another).
    client.on('error', () => {
      if (this.client === client) this.client = undefined;
      client.end().catch(() => undefined);
    });
    try {
      await client.connect();
    } catch (error) {
      client.end().catch(() => undefined);
      throw error;
    }
    this.client = client;
    return client;
  }
}
