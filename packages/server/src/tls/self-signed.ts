// @peculiar/x509 resolves its ASN.1 parsers through tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import { randomBytes, webcrypto } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { PRIVATE_FILE_MODE, makePrivateDir } from '../disk/private-files.js';
import type { ServerTls } from './server-tls.js';

// @peculiar/x509 signs through WebCrypto: Node's own.
x509.cryptoProvider.set(webcrypto as Parameters<typeof x509.cryptoProvider.set>[1]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 24 * 3600 * 1000;
/** A private CA outlives the devices it was flashed into: config.json carries it for years. */
const CA_DAYS = 20 * 365;
/** Below the 825 days clients accept for private server certificates; re-issued (same CA) well before it ends. */
const SERVER_DAYS = 800;
const RENEW_BEFORE_DAYS = 30;

export const TLS_FILES = { caCert: 'ca.crt', caKey: 'ca.key', cert: 'server.crt', key: 'server.key' } as const;

/**
 * The names the server certificate must carry: the public URL's host, and the loopback names so the server's own
 * clients on the machine (CLI, tests, health checks) can verify it too.
 */
export function serverNames(publicHost: string, extra: readonly string[] = []): string[] {
  const host = publicHost.replace(/^\[|\]$/g, '');
  return [...new Set([host, ...extra, 'localhost', '127.0.0.1', '::1'].filter((n) => n !== '' && n !== '0.0.0.0'))];
}

/**
 * The server's own CA and a server certificate it signed, kept in `dir` (0700, files 0600) and reused on every
 * start: devices flashed with this CA in their config.json must keep trusting the server. The server certificate is
 * issued again (same CA) when it lacks one of `names` or nears its end.
 */
export async function ensureSelfSignedTls(dir: string, names: readonly string[], now = new Date()): Promise<ServerTls> {
  makePrivateDir(dir);
  const file = (name: string) => join(dir, name);
  let ca: { cert: x509.X509Certificate; key: CryptoKey };
  if (existsSync(file(TLS_FILES.caCert)) && existsSync(file(TLS_FILES.caKey))) {
    ca = {
      cert: new x509.X509Certificate(readFileSync(file(TLS_FILES.caCert), 'utf8')),
      key: await importKey(readFileSync(file(TLS_FILES.caKey), 'utf8')),
    };
  } else {
    ca = await createCa(now);
    // Key first: a crash between the two writes leaves no CA certificate without its key.
    writePrivate(file(TLS_FILES.caKey), await exportKey(ca.key));
    writePrivate(file(TLS_FILES.caCert), ca.cert.toString('pem'));
  }
  const existing = existsSync(file(TLS_FILES.cert)) ? readFileSync(file(TLS_FILES.cert), 'utf8') : undefined;
  if (!existing || !existsSync(file(TLS_FILES.key)) || !stillGood(existing, ca.cert, names, now)) {
    const issued = await issueServerCert(ca, names, now);
    writePrivate(file(TLS_FILES.key), issued.key);
    writePrivate(file(TLS_FILES.cert), issued.cert);
  }
  return {
    cert: readFileSync(file(TLS_FILES.cert), 'utf8'),
    key: readFileSync(file(TLS_FILES.key), 'utf8'),
    ca: ca.cert.toString('pem'),
  };
}

async function createCa(now: Date): Promise<{ cert: x509.X509Certificate; key: CryptoKey }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=Flotilla CA ${randomBytes(4).toString('hex')}, O=Flotilla`,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + CA_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert, key: keys.privateKey };
}

async function issueServerCert(
  ca: { cert: x509.X509Certificate; key: CryptoKey },
  names: readonly string[],
  now: Date,
): Promise<{ cert: string; key: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names[0] ?? 'localhost'}, O=Flotilla`,
    issuer: ca.cert.subject,
    notBefore: new Date(now.getTime() - DAY_MS),
    notAfter: new Date(now.getTime() + SERVER_DAYS * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(names.map((n) => ({ type: isIP(n) ? 'ip' : 'dns', value: n }))),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { cert: cert.toString('pem'), key: await exportKey(keys.privateKey) };
}

/** The certificate was signed by this CA, names every one of `names`, and is not near its end. */
function stillGood(pem: string, ca: x509.X509Certificate, names: readonly string[], now: Date): boolean {
  try {
    const cert = new x509.X509Certificate(pem);
    if (cert.issuer !== ca.subject) return false;
    if (cert.notAfter.getTime() - now.getTime() < RENEW_BEFORE_DAYS * DAY_MS) return false;
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    const have = new Set(san?.names.items.map((n) => n.value.toLowerCase()) ?? []);
    return names.every((n) => have.has(n.toLowerCase()));
  } catch {
    return false;
  }
}

/** A positive 128-bit serial (the top bit clear keeps its DER integer positive). */
function serial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return bytes.toString('hex');
}

async function exportKey(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

async function importKey(pem: string): Promise<CryptoKey> {
  const der = x509.PemConverter.decode(pem)[0];
  if (!der) throw new Error('the CA key file holds no PEM block');
  return webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign']);
}

/** Written whole (temporary file, then rename) and 0600 from the start: a crash never leaves half a key. */
function writePrivate(path: string, content: string): void {
  const temporary = `${path}.tmp`;
  writeFileSync(temporary, content, { mode: PRIVATE_FILE_MODE });
  renameSync(temporary, path);
}
