import type { ReactNode } from 'react';

/** One term and its value, in the order shown. */
export type Fact = [term: string, value: ReactNode];

/** Facts as a description list: reads well to a screen reader and stacks on a phone. */
export function FactList({ facts, className }: { facts: Fact[]; className?: string }) {
  return (
    <dl className={className ? `facts ${className}` : 'facts'}>
      {facts.map(([term, value]) => (
        <div key={term} className="fact">
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
