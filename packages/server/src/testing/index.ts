/** Test helpers for this package's tests and for other packages' integration tests (`@flotilla/server/testing`). */
export * from './clients.js';
export * from './harness.js';
export * from './live-server.js';
export * from './attacks.js';
export * from './registry-client.js';
export * from './tenants.js';
export * from './stream-device.js';
export * from './seed-devices.js';
export * from './simulated-device.js';
export * from './answer-data.js';
