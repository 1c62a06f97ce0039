import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';

/** What the server needs to speak HTTPS itself. */
export interface ServerTls {
  /** PEM certificate chain the server presents. */
  cert: string;
  /** PEM private key of that certificate. */
  key: string;
  /**
   * PEM CA devices and CLIs must trust to verify `cert`, when it is not one the world's trust stores know: put in
   * the config.json the server builds as `balenaRootCA`. Absent for a certificate from a public CA.
   */
  ca?: string;
}

/** Reads `--tls-cert`, `--tls-key` (and `--tls-ca`) files; a file that is not PEM fails with a clear message. */
export function readTlsFiles(certFile: string, keyFile: string, caFile?: string): ServerTls {
  const cert = readFileSync(certFile, 'utf8');
  const key = readFileSync(keyFile, 'utf8');
  assertCertificate(cert, certFile);
  if (!/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(key)) throw new Error(`${keyFile} holds no PEM private key`);
  if (caFile === undefined) return { cert, key };
  const ca = readFileSync(caFile, 'utf8');
  assertCertificate(ca, caFile);
  return { cert, key, ca };
}

function assertCertificate(pem: string, file: string): void {
  try {
    new X509Certificate(pem);
  } catch {
    throw new Error(`${file} holds no PEM certificate`);
  }
}
