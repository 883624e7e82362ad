import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Each service of the example owns a schema: `orders`, `inventory`,
 * `payment`. They live in one database here for convenience; nothing in a
 * service reads another service's schema (the demo's checks do, at the end).
 */
export class OrderSagaSchema1795200000001 implements MigrationInterface {
  name = 'OrderSagaSchema1795200000001';

  async up(runner: QueryRunner): Promise<void> {
    await runner.query(`CREATE SCHEMA orders`);
    await runner.query(`
      CREATE TABLE orders.orders (
        order_id     text PRIMARY KEY,
        account_id   text        NOT NULL,
        sku          text        NOT NULL,
        quantity     integer     NOT NULL CHECK (quantity > 0),
        amount_cents bigint      NOT NULL CHECK (amount_cents >= 0),
        status       text        NOT NULL,
        global_tx_id uuid,
        reason       text,
        created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
        completed_at timestamptz
      )`);
    await runner.query(`CREATE TABLE orders.prices (sku text PRIMARY KEY, price_cents bigint NOT NULL)`);

    await runner.query(`CREATE SCHEMA inventory`);
    await runner.query(`
      CREATE TABLE inventory.products (
        sku           text PRIMARY KEY,
        name          text    NOT NULL,
        initial_stock integer NOT NULL,
        available     integer NOT NULL CHECK (available >= 0),
        reserved      integer NOT NULL CHECK (reserved >= 0),
        sold          integer NOT NULL CHECK (sold >= 0)
      )`);
    await runner.query(`
      CREATE TABLE inventory.deductions (
        order_id     text    NOT NULL,
        global_tx_id uuid    NOT NULL,
        sku          text    NOT NULL,
        quantity     integer NOT NULL,
        deducted_at  timestamptz NOT NULL DEFAULT now()
      )`);

    await runner.query(`CREATE SCHEMA payment`);
    await runner.query(`
      CREATE TABLE payment.accounts (
        account_id      text PRIMARY KEY,
        email           text   NOT NULL,
        initial_balance bigint NOT NULL,
        balance         bigint NOT NULL CHECK (balance >= 0),
        held            bigint NOT NULL CHECK (held >= 0),
        captured        bigint NOT NULL CHECK (captured >= 0)
      )`);
    await runner.query(`
      CREATE TABLE payment.captures (
        order_id     text   NOT NULL,
        global_tx_id uuid   NOT NULL,
        account_id   text   NOT NULL,
        amount_cents bigint NOT NULL,
        captured_at  timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(runner: QueryRunner): Promise<void> {
    await runner.query(`DROP SCHEMA payment CASCADE`);
    await runner.query(`DROP SCHEMA inventory CASCADE`);
    await runner.query(`DROP SCHEMA orders CASCADE`);
  }
}
