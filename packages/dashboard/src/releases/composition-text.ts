import type { ComposeFile } from '@flotilla/protocol';

/**
 * A release's compose composition as YAML, the way its author wrote docker-compose.yml: keys in their order, long
 * values unfolded. The YAML library is loaded with the first release page, not with the app. The result is shown as
 * text (never markup), whatever the values hold.
 */
export async function compositionText(composition: ComposeFile): Promise<string> {
  const { stringify } = await import('yaml');
  return stringify(composition, { lineWidth: 0, indent: 2 });
}
