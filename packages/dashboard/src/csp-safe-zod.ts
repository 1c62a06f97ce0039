import { z } from 'zod';

// WARNING: imported first by main.tsx, before any schema parses. Zod compiles fast object parsers with
// `new Function` unless told not to; under the server's CSP (no 'unsafe-eval') that attempt is refused and reported
// as a CSP violation even though zod catches it. Jitless parsing is fast enough for API answers.
z.config({ jitless: true });
