/** The two databases Flotilla runs on; the same queries and tests serve both. */
export type Dialect = 'sqlite' | 'postgres';
