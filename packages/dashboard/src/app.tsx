import { Navigate, Route, Routes } from 'react-router';
import { RequireSession } from './auth/require-session.js';
import { SignInPage } from './auth/sign-in-page.js';
import { DevicePage } from './devices/device-page.js';
import { FleetDevicesPage } from './devices/fleet-devices-page.js';
import { FleetsPage } from './fleets/fleets-page.js';
import { OrganizationsPage } from './orgs/organizations-page.js';
import { OsReleasesPage } from './os/os-releases-page.js';
import { FleetReleasesPage } from './releases/fleet-releases-page.js';
import { ReleasePage } from './releases/release-page.js';
import { FleetRolloutPage } from './rollouts/fleet-rollout-page.js';
import { Layout } from './ui/layout.js';
import { DeviceVariablesPage } from './variables/device-variables-page.js';
import { FleetVariablesPage } from './variables/fleet-variables-page.js';

export function App() {
  return (
    <Routes>
      <Route path="/sign-in" element={<SignInPage />} />
      <Route
        element={
          <RequireSession>
            <Layout />
          </RequireSession>
        }
      >
        <Route index element={<Navigate to="/fleets" replace />} />
        <Route path="/fleets" element={<FleetsPage />} />
        <Route path="/fleets/:slug" element={<FleetDevicesPage />} />
        <Route path="/fleets/:slug/releases" element={<FleetReleasesPage />} />
        <Route path="/fleets/:slug/rollout" element={<FleetRolloutPage />} />
        <Route path="/releases/:ref" element={<ReleasePage />} />
        <Route path="/devices/:uuid" element={<DevicePage />} />
        <Route path="/fleets/:slug/variables" element={<FleetVariablesPage kind="env" />} />
        <Route path="/fleets/:slug/configuration" element={<FleetVariablesPage kind="config" />} />
        <Route path="/devices/:uuid/variables" element={<DeviceVariablesPage />} />
        <Route path="/organizations" element={<OrganizationsPage />} />
        <Route path="/os-releases" element={<OsReleasesPage />} />
        <Route path="*" element={<p className="page-status">No such page.</p>} />
      </Route>
    </Routes>
  );
}
