export { KafkaTransport } from './transport.js';
