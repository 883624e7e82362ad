import { TransactionCoordinator } from '../../src/transactions/index.js';
import { InventorySagaService } from './services/inventory.saga.js';
import { InventoryService } from './services/inventory.service.js';
import { InventoryTwoPhaseService } from './services/inventory.two-phase.js';
import { Mode } from './services/modes.js';
import { orderServiceFor, type OrderServiceOptions } from './services/order.modes.js';
import { PaymentSagaService } from './services/payment.saga.js';
import { PaymentService } from './services/payment.service.js';
import { PaymentTwoPhaseService } from './services/payment.two-phase.js';

export { Mode } from './services/modes.js';

export const MODES: readonly Mode[] = [Mode.TCC, Mode.TWO_PHASE, Mode.SAGA];

/** `tcc`, `2pc` or `saga`, checked. @throws Error naming the modes */
export function parseMode(text: string): Mode {
  const mode = MODES.find((m) => m === text.toLowerCase());
  if (mode === undefined) throw new Error(`mode must be one of ${MODES.join(', ')}; got '${text}'`);
  return mode;
}

/** How inventory and payment take part in each mode (services/modes.ts explains the three). */
const PARTICIPANTS: Record<Mode, { inventory: Function; payment: Function }> = {
  [Mode.TCC]: { inventory: InventoryService, payment: PaymentService },
  [Mode.TWO_PHASE]: { inventory: InventoryTwoPhaseService, payment: PaymentTwoPhaseService },
  [Mode.SAGA]: { inventory: InventorySagaService, payment: PaymentSagaService },
};

export interface DeploymentUnit {
  services: Function[];
  relay: boolean;
}

/**
 * How the example's services are split into deployment units when each runs
 * as its own OS process (`npm start -- --processes`), in `mode`. The
 * transaction coordinator lives with the orders service, which begins the
 * global transactions and consumes their outcomes.
 *
 * Every unit runs an outbox relay. The units share one database here, hence
 * one outbox table; the relays split its shards through leases and keep the
 * order of each key (src/outbox/relay.ts), and the shards of a killed unit's
 * relay pass to the others when its leases expire. Set a unit's `relay` to
 * false to leave its rows to the others.
 *
 * Call it once per app: `orderServiceFor` makes a new class each time.
 * `orders` configures the order service (its payment deadline).
 */
export function deploymentUnits(mode: Mode, orders: OrderServiceOptions = {}): Record<UnitName, DeploymentUnit> {
  const { inventory, payment } = PARTICIPANTS[mode];
  return {
    orders: { services: [orderServiceFor(mode, orders), TransactionCoordinator], relay: true },
    inventory: { services: [inventory], relay: true },
    payment: { services: [payment], relay: true },
  };
}

/** Every service of `mode` and the coordinator, for the demo in one process; `orders` configures the order service. */
export function allServices(mode: Mode, orders: OrderServiceOptions = {}): Function[] {
  const { inventory, payment } = PARTICIPANTS[mode];
  return [orderServiceFor(mode, orders), inventory, payment, TransactionCoordinator];
}

export const UNIT_NAMES = ['orders', 'inventory', 'payment'] as const;

export type UnitName = (typeof UNIT_NAMES)[number];

/** The line a service process prints on stdout once it runs. */
export const READY_LINE = /^order-saga unit (\w+) ready \(pid (\d+), ([\w]+)\)$/;
