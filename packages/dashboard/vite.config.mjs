import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

// The server serves dist/app at / under `script-src 'self'; style-src 'self'`.
// INVARIANT: the build emits no inline script or style: CSS goes to files (the app's linked from index.html; a lazily
// loaded chunk's, such as the web terminal's xterm.css, linked when the chunk loads), and no asset is inlined as a
// data: URI (assetsInlineLimit 0) so no CSP source beyond 'self' is ever needed. (xterm.js itself makes <style>
// elements at run time; those carry the page's nonce: src/csp-nonce.ts.)
export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  plugins: [react()],
  build: {
    outDir: 'dist/app',
    emptyOutDir: true,
    assetsInlineLimit: 0,
    cssCodeSplit: true,
    sourcemap: true,
    target: 'es2022',
    reportCompressedSize: true,
    // The first load is one chunk of about 550 kB (160 kB gzipped): React, the router and the protocol's zod schemas,
    // which every page needs; the terminal (xterm) and the YAML view load apart when opened. bench/dashboard.mjs
    // measures what matters here, the table interactive (about 0.2 s with 10,000 devices), so the default 500 kB
    // warning would only be noise on every build.
    chunkSizeWarningLimit: 640,
    rolldownOptions: {
      onLog(level, log, handler) {
        // @flotilla/protocol's ids.js imports node:crypto for key generation, which only the server and agent call;
        // the bundle tree-shakes those functions away, so the browser stand-in Vite puts there is never reached.
        if (level === 'warn' && log.message.includes('"node:crypto" has been externalized')) return;
        handler(level, log);
      },
    },
  },
});
