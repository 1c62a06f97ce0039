/**
 * Log lines arrive with terminal escape codes (colours from `docker logs`, progress bars redrawing a line). They are
 * turned into plain text segments, each with CSS class names for its SGR colour and weight, and never into HTML:
 * the result is rendered as React text, so a line holding `<script>` shows those characters and runs nothing.
 */
export interface AnsiSegment {
  readonly text: string;
  /** Space-separated class names (`ansi-fg-1 ansi-bold`), empty when the text is unstyled. */
  readonly classes: string;
}

interface Style {
  fg: number | null;
  bg: number | null;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
}

const PLAIN: Style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false };

// CSI (ESC [ params final), OSC (ESC ] … BEL or ESC \), other two-byte escapes, and C0 controls but tab.
const CONTROL =
  // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal control sequences are exactly what is matched
  /\u001b\[([0-9;?]*)([@-~])|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u001b[@-_]?|[\u0000-\u0008\u000a-\u001f\u007f]/g;

/** The text of a line without any escape sequence or control character (tabs stay). */
export function stripAnsi(text: string): string {
  return text.replace(CONTROL, '');
}

/** Splits a line into styled segments; only SGR (`ESC[…m`) changes the style, every other sequence is dropped. */
export function parseAnsi(text: string): AnsiSegment[] {
  const segments: AnsiSegment[] = [];
  let style: Style = PLAIN;
  let last = 0;
  const push = (chunk: string) => {
    if (chunk === '') return;
    const classes = classesOf(style);
    const previous = segments[segments.length - 1];
    if (previous && previous.classes === classes)
      segments[segments.length - 1] = { text: previous.text + chunk, classes };
    else segments.push({ text: chunk, classes });
  };
  for (const match of text.matchAll(CONTROL)) {
    push(text.slice(last, match.index));
    last = match.index + match[0].length;
    if (match[2] === 'm') style = applySgr(style, match[1] ?? '');
  }
  push(text.slice(last));
  return segments;
}

function applySgr(current: Style, params: string): Style {
  const codes = params === '' ? [0] : params.split(';').map((code) => (code === '' ? 0 : Number(code)));
  let style = { ...current };
  for (let i = 0; i < codes.length; i++) {
    const code = codes[i]!;
    if (code === 0) style = { ...PLAIN };
    else if (code === 1) style.bold = true;
    else if (code === 2) style.dim = true;
    else if (code === 3) style.italic = true;
    else if (code === 4) style.underline = true;
    else if (code === 22) style.bold = style.dim = false;
    else if (code === 23) style.italic = false;
    else if (code === 24) style.underline = false;
    else if (code >= 30 && code <= 37) style.fg = code - 30;
    else if (code >= 90 && code <= 97) style.fg = code - 90 + 8;
    else if (code === 39) style.fg = null;
    else if (code >= 40 && code <= 47) style.bg = code - 40;
    else if (code >= 100 && code <= 107) style.bg = code - 100 + 8;
    else if (code === 49) style.bg = null;
    else if (code === 38 || code === 48) {
      // 256 colours (5;n): the first 16 map to the palette, the rest keep the current colour; true colour (2;r;g;b)
      // is skipped. Either way its arguments are consumed so they are not read as codes of their own.
      const mode = codes[i + 1];
      if (mode === 5) {
        const n = codes[i + 2];
        if (n !== undefined && n < 16) style[code === 38 ? 'fg' : 'bg'] = n;
        i += 2;
      } else if (mode === 2) i += 4;
    }
  }
  return style;
}

function classesOf(style: Style): string {
  const classes: string[] = [];
  if (style.fg !== null) classes.push(`ansi-fg-${style.fg}`);
  if (style.bg !== null) classes.push(`ansi-bg-${style.bg}`);
  if (style.bold) classes.push('ansi-bold');
  if (style.dim) classes.push('ansi-dim');
  if (style.italic) classes.push('ansi-italic');
  if (style.underline) classes.push('ansi-underline');
  return classes.join(' ');
}
