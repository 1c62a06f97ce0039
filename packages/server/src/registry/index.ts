export { registryPlugin } from './plugin.js';
export type { RegistryOptions } from './plugin.js';
export type { RegistryAccess, RegistryAction } from './access.js';
export { flotillaRegistryAccess } from './flotilla-access.js';
export { registerFlotillaRegistry } from './register.js';
