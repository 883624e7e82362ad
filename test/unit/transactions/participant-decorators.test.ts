import 'reflect-metadata';
import { describe, expect, it } from 'vitest';
import { Service, exploreHandlers } from '../../../src/runtime/index.js';
import { Compensate, SagaParticipant, Step } from '../../../src/transactions/saga/index.js';
import { Cancel, Confirm, TccParticipant, Try } from '../../../src/transactions/tcc/index.js';
import { Prepare, XaParticipant } from '../../../src/transactions/two-phase/index.js';

/** The start-up checks the three participant decorators share (src/transactions/participant/decorator-kit.ts). */
describe('participant decorators: start-up checks', () => {
  it('refuses a role marked on two methods, naming both', () => {
    @Service('dup')
    @TccParticipant('dup.p')
    class Doubled {
      @Try()
      async a(): Promise<void> {}
      @Try()
      async b(): Promise<void> {}
      @Confirm()
      async c(): Promise<void> {}
      @Cancel()
      async d(): Promise<void> {}
    }
    expect(() => exploreHandlers([Doubled])).toThrow("Doubled: TCC participant 'dup.p': a and b are both @Try");
  });

  it('refuses role methods without the class decorator, naming it', () => {
    @Service('nameless')
    class Nameless {
      @Step()
      async step(): Promise<void> {}
      @Compensate()
      async undo(): Promise<void> {}
    }
    expect(() => exploreHandlers([Nameless])).toThrow("Nameless: @Step/@Compensate need @SagaParticipant('<name>') on the class");
  });

  it('refuses a participant without @Service', () => {
    @SagaParticipant('loose.p')
    class Loose {
      @Step()
      async step(): Promise<void> {}
      @Compensate()
      async undo(): Promise<void> {}
    }
    // The explorer says it first, for any class it is given; the participant's own check says it too (for a class reached otherwise).
    expect(() => exploreHandlers([Loose])).toThrow("Loose is not a Concordat service: decorate it with @Service('<name>')");
  });

  it("refuses a 2PC participant whose name would not fit the prepared transaction's gid", () => {
    const long = 'x'.repeat(101);
    @Service('long')
    @XaParticipant(long)
    class Long {
      @Prepare()
      async prepare(): Promise<void> {}
    }
    expect(() => exploreHandlers([Long])).toThrow(`2PC participant '${long}': the name must be at most 100 characters`);
  });

  it('accepts a complete participant of each mode', () => {
    @Service('inventory')
    @TccParticipant('inventory.p')
    class Inventory {
      @Try()
      async reserve(): Promise<void> {}
      @Confirm()
      async use(): Promise<void> {}
      @Cancel()
      async release(): Promise<void> {}
    }
    @Service('payment')
    @XaParticipant('payment.p')
    class Payment {
      @Prepare()
      async charge(): Promise<void> {}
    }
    const table = exploreHandlers([Inventory, Payment]);
    // A 2PC participant consumes its prepares and its decisions in two consumer groups.
    expect([...new Set(table.consumers.map((consumer) => consumer.serviceName))].sort()).toEqual(['inventory', 'payment']);
  });
});
