// @otalink/mqtt: MQTT 3.1.1 and 5.0 without dependencies. The codec and topic modules are pure and run anywhere.

export * from './client/index.js';
export * from './codec/index.js';
export * from './session/index.js';
export * from './topic/index.js';
