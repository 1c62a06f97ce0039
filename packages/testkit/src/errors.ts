/** The `code` of what `fn` throws (a FlotillaError's stable code), or 'no error': for table tests of validation. */
export function thrownCode(fn: () => unknown): string | undefined {
  try {
    fn();
    return 'no error';
  } catch (error) {
    return (error as { code?: string }).code;
  }
}
