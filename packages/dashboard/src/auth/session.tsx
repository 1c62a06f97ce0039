import { USER_ROUTES, type User } from '@flotilla/protocol';
import { type ReactNode, createContext, useCallback, useContext, useEffect, useMemo, useState } from 'react';
import { type DashboardApi, createDashboardApi } from '../api/dashboard-api.js';

export type SessionPhase = 'checking' | 'signed-out' | 'signed-in';

interface SessionState {
  phase: SessionPhase;
  user: User | null;
  /** The session ended under the user (expired, revoked): the sign-in page says so. */
  expired: boolean;
}

export interface Session extends SessionState {
  api: DashboardApi;
  signIn(username: string, password: string): Promise<void>;
  signOut(): Promise<void>;
}

const SessionContext = createContext<Session | null>(null);

/**
 * The browser's cookie session. After a reload the cookie may still be valid: `GET /auth/csrf` tells, and gives the
 * CSRF token the page lost with its memory.
 */
export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ phase: 'checking', user: null, expired: false });
  const api = useMemo(
    () =>
      createDashboardApi({
        baseUrl: window.location.origin,
        fetch: (url, init) => window.fetch(url, init),
        onUnauthenticated: () =>
          setState((s) => ({ phase: 'signed-out', user: null, expired: s.phase === 'signed-in' || s.expired })),
      }),
    [],
  );

  useEffect(() => {
    let current = true;
    (async () => {
      try {
        const { csrfToken } = await api.call(USER_ROUTES.csrfToken);
        api.setCsrfToken(csrfToken);
        const { user } = await api.call(USER_ROUTES.whoami);
        if (current) setState({ phase: 'signed-in', user, expired: false });
      } catch {
        // No session (401), or no server: either way the sign-in form is where to go; it reports the reason.
        if (current) setState((s) => ({ ...s, phase: 'signed-out', user: null }));
      }
    })();
    return () => {
      current = false;
    };
  }, [api]);

  const signIn = useCallback(
    async (username: string, password: string) => {
      const answer = await api.call(USER_ROUTES.browserLogin, { body: { username, password } });
      api.setCsrfToken(answer.csrfToken);
      setState({ phase: 'signed-in', user: answer.user, expired: false });
    },
    [api],
  );
  const signOut = useCallback(async () => {
    try {
      await api.call(USER_ROUTES.logout);
    } finally {
      api.setCsrfToken(null);
      setState({ phase: 'signed-out', user: null, expired: false });
    }
  }, [api]);

  const value = useMemo(() => ({ ...state, api, signIn, signOut }), [state, api, signIn, signOut]);
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error('useSession outside SessionProvider');
  return session;
}

/** The API client of the signed-in session. */
export function useApi(): DashboardApi {
  return useSession().api;
}
