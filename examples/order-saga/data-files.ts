import { readFile } from 'node:fs/promises';
import { parse } from 'csv-parse/sync';

export interface Product {
  sku: string;
  name: string;
  priceCents: number;
  stock: number;
}

export interface Account {
  accountId: string;
  email: string;
  balanceCents: number;
}

export interface OrderLine {
  orderId: string;
  accountId: string;
  sku: string;
  quantity: number;
}

/** Reads a CSV file with a header row; every listed column must be present in every row. */
async function readCsv(path: string, columns: readonly string[]): Promise<Array<Record<string, string>>> {
  const rows: Array<Record<string, string>> = parse(await readFile(path, 'utf8'), { columns: true, skip_empty_lines: true, trim: true });
  rows.forEach((row, index) => {
    for (const column of columns) {
      if (row[column] === undefined || row[column] === '') throw new Error(`${path}: row ${index + 2} has no ${column}`);
    }
  });
  return rows;
}

function integer(path: string, row: number, column: string, text: string, min: number): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min) throw new Error(`${path}: row ${row} column ${column} must be an integer >= ${min}, got '${text}'`);
  return value;
}

export async function readProducts(path: string): Promise<Product[]> {
  const rows = await readCsv(path, ['sku', 'name', 'price_cents', 'stock']);
  return rows.map((row, i) => ({
    sku: row.sku!,
    name: row.name!,
    priceCents: integer(path, i + 2, 'price_cents', row.price_cents!, 0),
    stock: integer(path, i + 2, 'stock', row.stock!, 0),
  }));
}

export async function readAccounts(path: string): Promise<Account[]> {
  const rows = await readCsv(path, ['account_id', 'email', 'balance_cents']);
  return rows.map((row, i) => ({
    accountId: row.account_id!,
    email: row.email!,
    balanceCents: integer(path, i + 2, 'balance_cents', row.balance_cents!, 0),
  }));
}

export async function readOrders(path: string): Promise<OrderLine[]> {
  const rows = await readCsv(path, ['order_id', 'account_id', 'sku', 'quantity']);
  return rows.map((row, i) => ({
    orderId: row.order_id!,
    accountId: row.account_id!,
    sku: row.sku!,
    quantity: integer(path, i + 2, 'quantity', row.quantity!, 1),
  }));
}
