import {
  type Device,
  USER_ROUTES,
  deviceRemovedEventSchema,
  deviceSchema,
  fleetChangedEventSchema,
  path,
} from '@flotilla/protocol';
import { useEffect, useRef, useState } from 'react';
import { LiveStream } from '../api/live-stream.js';
import { parseEvent } from '../api/parse-event.js';
import { useApi } from '../auth/session.js';

export interface FleetEventHandlers {
  onDevice(device: Device): void;
  onRemoved(uuid: string): void;
  /**
   * The fleet's release changed (a deploy, a pin): every device following it has a new target. One event for the
   * whole fleet, never one per device: refetch what is shown.
   */
  onFleetChanged?(targetRelease: string | null): void;
  /** The stream came back after a break: events were missed, refetch what is shown. */
  onReconnected(): void;
}

export type LiveState = 'connecting' | 'live' | 'down';

/** Follows `GET /fleets/:slug/events` while the component is shown; the handlers may change on every render. */
export function useFleetEvents(slug: string | null, handlers: FleetEventHandlers): LiveState {
  const api = useApi();
  const handlersRef = useRef(handlers);
  handlersRef.current = handlers;
  const [state, setState] = useState<LiveState>('connecting');

  useEffect(() => {
    if (slug === null) return;
    setState('connecting');
    const stream = new LiveStream({
      url: path(USER_ROUTES.fleetEvents.path, { slug }),
      events: {
        device: (data) => {
          const device = parseEvent(deviceSchema, data, 'device');
          if (device) handlersRef.current.onDevice(device);
        },
        'device-removed': (data) => {
          const removed = parseEvent(deviceRemovedEventSchema, data, 'device-removed');
          if (removed) handlersRef.current.onRemoved(removed.uuid);
        },
        'fleet-changed': (data) => {
          const changed = parseEvent(fleetChangedEventSchema, data, 'fleet-changed');
          if (changed) handlersRef.current.onFleetChanged?.(changed.targetRelease);
        },
      },
      onOpen: (reconnected) => {
        setState('live');
        if (reconnected) handlersRef.current.onReconnected();
      },
      onDown: () => {
        setState('down');
        // An EventSource does not say why it failed; a session that ended shows as a 401 here, and the API client
        // then sends the user to the sign-in page. Any other failure is retried by the stream.
        api.call(USER_ROUTES.csrfToken).catch(() => undefined);
      },
    });
    stream.start();
    return () => stream.close();
  }, [slug, api]);

  return state;
}
