import { describeError } from '../api/dashboard-api.js';

/** A failed call, said in words with its stable code; announced to screen readers as it appears. */
export function ErrorText({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  return (
    <p className="error" role="alert">
      {describeError(error)}
    </p>
  );
}
