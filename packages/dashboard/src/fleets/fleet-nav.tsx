import { NavLink } from 'react-router';

/** The pages of one fleet. */
export function FleetNav({ slug }: { slug: string }) {
  const base = `/fleets/${encodeURIComponent(slug)}`;
  return (
    <nav className="sub-nav" aria-label="Fleet">
      <NavLink to={base} end>
        Devices
      </NavLink>
      <NavLink to={`${base}/releases`}>Releases</NavLink>
      <NavLink to={`${base}/rollout`}>Rollout</NavLink>
      <NavLink to={`${base}/variables`}>Variables</NavLink>
      <NavLink to={`${base}/configuration`}>Configuration</NavLink>
    </nav>
  );
}
