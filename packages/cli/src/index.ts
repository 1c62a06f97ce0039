export { loadProject } from './compose/load-project.js';
export type { Project, ProjectService } from './compose/load-project.js';
export { readCredentials, writeCredentials, removeCredentials, credentialsPath } from './credentials/credentials.js';
export { ApiClient } from './api-client/api-client.js';
