export * from './coordinator/index.js';
export * from './participant/index.js';
export * from './saga/index.js';
export * from './tcc/index.js';
export * from './two-phase/index.js';
