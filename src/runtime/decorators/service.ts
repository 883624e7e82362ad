import { injectable } from 'inversify';
import { SERVICE_METADATA, type ServiceMetadata } from '../metadata.js';
import { legacyClassDecorator } from './legacy.js';

/** Options of `@Service(name, options)`. */
export interface ServiceOptions {
  /** Consumer group of the service's handlers. @default the service name */
  group?: string;
}

/**
 * Declares a Concordat service: a class whose methods handle messages. The
 * name is the CloudEvents `source` of the messages it publishes and the
 * default consumer group of its handlers, so keep it stable across releases.
 *
 * Also marks the class `@injectable()` for inversify (do not add both).
 *
 * @example
 * ```ts
 * @Service('inventory')
 * class InventoryService {
 *   constructor(@inject(Clock) private clock: Clock) {}
 *   @OnMessage('orders.placed')
 *   async reserve(ctx: MessageContext<OrderPlaced>) { ... }
 * }
 * ```
 */
export function Service(name: string, options: ServiceOptions = {}): ClassDecorator {
  return legacyClassDecorator('@Service', (target) => {
    const metadata: ServiceMetadata = { name, group: options.group ?? name };
    Reflect.defineMetadata(SERVICE_METADATA, metadata, target);
    injectable()(target);
  });
}
