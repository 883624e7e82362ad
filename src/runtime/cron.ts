import { CronExpressionParser } from 'cron-parser';
import { ConcordatError, ErrorCode } from '../errors.js';

/**
 * A cron expression read in a time zone, parsed by `cron-parser`: five
 * fields (minute hour day-of-month month day-of-week) or six with seconds
 * first, as in Vixie cron's crontab(5), plus `cron-parser`'s extensions
 * (`L`, `#`, `?`, predefined `@hourly` ...).
 */
export class CronSchedule {
  private constructor(
    readonly expression: string,
    readonly timezone: string,
  ) {}

  /**
   * Parses `expression` in `timezone` (an IANA name such as `Europe/Berlin`).
   * @throws ConcordatError CONFIG_INVALID naming the expression and what is wrong with it.
   */
  static parse(expression: string, timezone = 'UTC'): CronSchedule {
    const schedule = new CronSchedule(expression, timezone);
    try {
      new Intl.DateTimeFormat('en', { timeZone: timezone });
    } catch {
      throw new ConcordatError(`invalid cron schedule '${expression}': unknown time zone '${timezone}' (use an IANA name such as 'Europe/Berlin')`, {
        code: ErrorCode.CONFIG_INVALID,
        context: { expression, timezone },
      });
    }
    try {
      schedule.nextAfter(new Date(0));
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new ConcordatError(`invalid cron schedule '${expression}' (time zone '${timezone}'): ${why}`, {
        code: ErrorCode.CONFIG_INVALID,
        context: { expression, timezone },
      });
    }
    return schedule;
  }

  /** The first tick strictly after `instant`. */
  nextAfter(instant: Date): Date {
    return CronExpressionParser.parse(this.expression, { currentDate: instant, tz: this.timezone, strict: false }).next().toDate();
  }
}
