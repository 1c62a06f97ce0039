import { ERROR_CODE_HEADER } from '@flotilla/protocol';

/**
 * A test's view of an answer body: JSON parsed; an error balena's clients are answered in plain text
 * (`<message> (<CODE>)`, the code in ERROR_CODE_HEADER: errors/error-handler.ts) as the `{error: {code, message}}`
 * body the other routes send, so one assertion fits both; any other text as it is (undefined when `keepText` is
 * false).
 */
export function answerData(
  text: string,
  header: (name: string) => string | string[] | null | undefined,
  keepText = true,
): unknown {
  if (!text) return undefined;
  const code = header(ERROR_CODE_HEADER);
  if (typeof code === 'string') {
    const message = text.endsWith(` (${code})`) ? text.slice(0, -(code.length + 3)) : text;
    return { error: { code, message } };
  }
  try {
    return JSON.parse(text);
  } catch {
    return keepText ? text : undefined;
  }
}
