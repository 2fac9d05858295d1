// DOM-free modules, bundled for the node unit tests.
export * from './redact';
export * from './ring';
export * from './uuid';
export * from './capture';
export * from './payload';
export * from './deliver';
export * from './queue';
export * from './strings';
export * from './context';
