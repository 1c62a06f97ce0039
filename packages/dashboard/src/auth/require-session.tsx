import type { ReactNode } from 'react';
import { Navigate, useLocation } from 'react-router';
import { useSession } from './session.js';

/** Shows its children to a signed-in user; anyone else goes to the sign-in page, which brings them back here. */
export function RequireSession({ children }: { children: ReactNode }) {
  const { phase } = useSession();
  const location = useLocation();
  if (phase === 'checking') return <p className="page-status">Checking your session…</p>;
  if (phase === 'signed-out') {
    const next = encodeURIComponent(location.pathname + location.search);
    return <Navigate to={`/sign-in?next=${next}`} replace />;
  }
  return <>{children}</>;
}
