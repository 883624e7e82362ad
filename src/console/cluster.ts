import { EmbeddedLogAdmin, KafkaLogAdmin, type LogAdmin } from '../admin/index.js';
import { EmbeddedTransport, KafkaTransport, type Transport } from '../transport/index.js';

/**
 * The topics-and-groups admin for a console inside an app: over the app's
 * own open log for the embedded transport (the directory's lock keeps other
 * processes out while the app runs), or a kafkajs admin client on the
 * transport's bootstrap brokers (plain connections: a cluster that needs
 * SASL or TLS is reached with `concordat console --bootstrap` and its
 * settings instead). Undefined for any other transport.
 *
 * @returns the admin, and whether the console owns it (closes it on close).
 */
export async function adminForTransport(transport: Transport): Promise<{ admin: LogAdmin; owned: boolean } | undefined> {
  if (transport instanceof EmbeddedTransport) {
    const logManager = transport.openedLog;
    return logManager === null ? undefined : { admin: EmbeddedLogAdmin.over(logManager), owned: false };
  }
  if (transport instanceof KafkaTransport) return { admin: await KafkaLogAdmin.connect({ brokers: transport.brokers }), owned: true };
  return undefined;
}
