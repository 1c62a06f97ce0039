import type { ComposeFile } from '@flotilla/protocol';
import { useEffect, useState } from 'react';
import { compositionText } from './composition-text.js';

/** The release's compose composition as YAML text in a scrollable block (values are the user's: text only). */
export function CompositionView({ composition }: { composition: ComposeFile }) {
  const [text, setText] = useState<string | null>(null);
  useEffect(() => {
    let current = true;
    compositionText(composition).then(
      (yaml) => current && setText(yaml),
      // The YAML module failed to load (a deploy replaced the app's files): the same document as JSON still reads.
      () => current && setText(JSON.stringify(composition, null, 2)),
    );
    return () => {
      current = false;
    };
  }, [composition]);
  return (
    <section aria-labelledby="composition-title">
      <h2 id="composition-title">Composition</h2>
      {text === null ? (
        <p className="page-status">Loading…</p>
      ) : (
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrolling block must be reachable by keyboard to scroll it
        <pre className="composition" tabIndex={0}>
          <code>{text}</code>
        </pre>
      )}
    </section>
  );
}
