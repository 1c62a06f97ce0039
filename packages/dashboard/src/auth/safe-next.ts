/**
 * Where to go after signing in: a path of this site only. INVARIANT: `//evil.example` and `https://…` are refused,
 * so a crafted sign-in link cannot send the user elsewhere.
 */
export function safeNext(next: string | null): string {
  if (next === null || !next.startsWith('/') || next.startsWith('//') || next.startsWith('/\\')) return '/fleets';
  return next;
}
