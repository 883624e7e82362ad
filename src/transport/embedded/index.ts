export { EmbeddedTransport, type EmbeddedTransportOptions } from './transport.js';
