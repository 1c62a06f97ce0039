/**
 * `512 B`, `1.5 KiB`, `20.0 MiB`: binary units, one decimal past bytes. One spelling of a size for every client (the
 * CLI's tables and the dashboard's pages show the same figure for the same image).
 */
export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
