/**
 * Hands `value`, as JSON, to the browser as a file download: a Blob behind an object URL and a link with `download`,
 * clicked. No data: URL and no inline script, so the strict CSP has nothing to refuse.
 * WARNING: the value may hold a secret (a config.json's provisioning key): the object URL is revoked once the
 * download has started, and the caller keeps no copy of the text.
 */
export function downloadJson(fileName: string, value: unknown): void {
  const blob = new Blob([`${JSON.stringify(value, null, 2)}\n`], { type: 'application/json' });
  const url = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = url;
  link.download = fileName;
  link.hidden = true;
  document.body.append(link);
  try {
    link.click();
  } finally {
    link.remove();
    // The click starts the download from the URL at once; a moment later nothing needs it any more.
    setTimeout(() => URL.revokeObjectURL(url), 1_000);
  }
}
