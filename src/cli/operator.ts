import { hostname, userInfo } from 'node:os';

/** `user@host`: who a command's action is recorded as (a global transaction's timeline, a dead letter's `replayed_by`). */
export function operator(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? 'unknown';
  }
  return `${user}@${hostname()}`;
}
