/**
 * Gives every `<style>` element this page creates the CSP nonce of its response, so the server's policy
 * (`style-src 'self' 'nonce-…'`, no 'unsafe-inline') lets it apply. xterm.js (the web terminal) makes its own style
 * elements for its theme and sizes; nothing else here does.
 *
 * The server puts a fresh nonce in `<meta name="csp-nonce">` of each index.html (packages/server/src/dashboard).
 * WARNING: imported first by main.tsx. The nonce must be set when the element is created, before it is inserted:
 * a style element inserted without it is refused and reported, and setting it afterwards does not revive it.
 */
export function installStyleNonce(doc: Document): string | undefined {
  const nonce = doc.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content;
  if (!nonce) return undefined;
  const create = doc.createElement;
  // The wrapper keeps createElement's own overloads; only the element it returns gains the attribute.
  doc.createElement = function createElement(this: Document, tagName: string, options?: ElementCreationOptions) {
    const element = create.call(this, tagName, options);
    if (element.localName === 'style') element.setAttribute('nonce', nonce);
    return element;
  } as Document['createElement'];
  return nonce;
}

installStyleNonce(document);
