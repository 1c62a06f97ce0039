// WARNING: first import: every <style> element made from here on must carry the page's CSP nonce (see the module).
import './csp-nonce.js';
// WARNING: next import: zod must be told not to try `new Function` before any schema parses (see the module).
import './csp-safe-zod.js';
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { BrowserRouter } from 'react-router';
import { App } from './app.js';
import { SessionProvider } from './auth/session.js';
import './styles.css';

const root = document.getElementById('root');
if (!root) throw new Error('index.html has no #root');
createRoot(root).render(
  <StrictMode>
    <BrowserRouter>
      <SessionProvider>
        <App />
      </SessionProvider>
    </BrowserRouter>
  </StrictMode>,
);
