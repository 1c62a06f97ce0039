import { useState } from 'react';
import { NavLink, Outlet, useNavigate } from 'react-router';
import { describeError } from '../api/dashboard-api.js';
import { useSession } from '../auth/session.js';

/** The frame of every signed-in page: a skip link, the navigation, who is signed in, and the page itself. */
export function Layout() {
  const { user, signOut } = useSession();
  const navigate = useNavigate();
  const [error, setError] = useState<string | null>(null);
  const leave = async () => {
    try {
      await signOut();
      navigate('/sign-in', { replace: true });
    } catch (e) {
      setError(describeError(e));
    }
  };
  return (
    <>
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="top-bar">
        <span className="brand">Flotilla</span>
        <nav aria-label="Main">
          <NavLink to="/fleets">Fleets</NavLink>
          <NavLink to="/os-releases">OS releases</NavLink>
          <NavLink to="/organizations">Organizations</NavLink>
        </nav>
        <span className="who">
          <span className="username">{user?.username}</span>
          <button type="button" onClick={leave}>
            Sign out
          </button>
        </span>
      </header>
      {error && (
        <p className="error banner" role="alert">
          {error}
        </p>
      )}
      <main id="main" tabIndex={-1}>
        <Outlet />
      </main>
    </>
  );
}
