/** Test helpers for this package's tests and for other packages' integration tests (`@flotilla/server/testing`). */
export * from './clients.js';
export * from './harness.js';
export * from './live-server.js';
