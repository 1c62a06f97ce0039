export * from './exec.js';
export * from './wait.js';
export * from './net.js';
export * from './apt-mirror.js';
export * from './base-images.js';
export * from './databases.js';
export * from './errors.js';
export * from './os-image-pair.js';
