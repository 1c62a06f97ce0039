import { useCallback, useEffect, useRef, useState } from 'react';

export interface Resource<T> {
  /** The last answer for this key; undefined until the first one. */
  readonly data: T | undefined;
  readonly error: unknown;
  readonly loading: boolean;
  reload(): void;
  /** Replaces the data in place (a live event, the answer to an edit) without a refetch. */
  mutate(change: (current: T | undefined) => T | undefined): void;
}

interface State<T> {
  key: string | null;
  data: T | undefined;
  error: unknown;
  loading: boolean;
}

/**
 * Loads `load()` whenever `key` changes (null: nothing to load yet). INVARIANT: an answer for an older key never
 * replaces a newer one, so fast navigation cannot show one device's data on another's page.
 */
export function useResource<T>(key: string | null, load: () => Promise<T>): Resource<T> {
  const loadRef = useRef(load);
  loadRef.current = load;
  const [state, setState] = useState<State<T>>({ key, data: undefined, error: undefined, loading: key !== null });
  const [round, setRound] = useState(0);

  // biome-ignore lint/correctness/useExhaustiveDependencies: `round` is how reload() asks for the same key again
  useEffect(() => {
    if (key === null) return;
    let current = true;
    setState((s) => ({ key, data: s.key === key ? s.data : undefined, error: undefined, loading: true }));
    loadRef.current().then(
      (data) => current && setState({ key, data, error: undefined, loading: false }),
      (error: unknown) =>
        current && setState((s) => ({ key, data: s.key === key ? s.data : undefined, error, loading: false })),
    );
    return () => {
      current = false;
    };
  }, [key, round]);

  const reload = useCallback(() => setRound((r) => r + 1), []);
  const mutate = useCallback(
    (change: (current: T | undefined) => T | undefined) => setState((s) => ({ ...s, data: change(s.data) })),
    [],
  );
  const fresh = state.key === key;
  return {
    data: fresh ? state.data : undefined,
    error: fresh ? state.error : undefined,
    loading: !fresh || state.loading,
    reload,
    mutate,
  };
}
