import { FlotillaError } from '@flotilla/protocol';

/**
 * A recursive-descent parser for the OData subset balena's clients send (pinejs-client-core's output): `$filter`
 * (with the string functions of FUNCTIONS), `$select`, `$expand` with nested options, `$orderby`, `$top`, `$skip`. It only builds a tree; names are checked
 * against the resource model by the translator.
 *
 * INVARIANT: every failure is a FlotillaError INVALID_ODATA_QUERY (400), never another exception, and the work done
 * is bounded by the input length: MAX_OPTION_LENGTH characters, MAX_DEPTH levels of nesting (parentheses, `not`,
 * lambdas and `$expand` together), so no input can exhaust the stack.
 */

export type Literal = string | number | boolean | null;
export type CompareOp = 'eq' | 'ne' | 'gt' | 'ge' | 'lt' | 'le';

export type Expr =
  | { kind: 'literal'; value: Literal }
  | { kind: 'path'; path: string[] }
  | { kind: 'compare'; op: CompareOp; left: Expr; right: Expr }
  | { kind: 'and' | 'or'; left: Expr; right: Expr }
  | { kind: 'not'; expr: Expr }
  | { kind: 'in'; left: Expr; values: Literal[] }
  | { kind: 'lambda'; op: 'any' | 'all'; path: string[]; alias: string; body: Expr }
  | { kind: 'call'; name: FunctionName; args: Expr[] };

/**
 * The `$filter` functions balena's clients send (pinejs-client-core's `$startswith`, `$endswith`, `$contains`,
 * `$substringof`, `$tolower`, `$toupper`): balena-sdk looks a device up by a short UUID with `startswith(uuid,'…')`.
 */
export const FUNCTIONS = ['startswith', 'endswith', 'contains', 'substringof', 'tolower', 'toupper'] as const;
export type FunctionName = (typeof FUNCTIONS)[number];
const isFunction = (name: string): name is FunctionName => (FUNCTIONS as readonly string[]).includes(name);

export interface Expand {
  navigation: string;
  /** `nav/$count`: the number of related rows instead of the rows. */
  count: boolean;
  options: QueryOptions;
}

export interface QueryOptions {
  select?: string[];
  filter?: Expr;
  expand?: Expand[];
  orderby?: { path: string[]; descending: boolean }[];
  top?: number;
  skip?: number;
}

export const MAX_OPTION_LENGTH = 16 * 1024;
export const MAX_DEPTH = 24;
export const MAX_TOP = 10_000;

const COMPARE_OPS = new Set<string>(['eq', 'ne', 'gt', 'ge', 'lt', 'le']);

export function invalidQuery(message: string): FlotillaError {
  return new FlotillaError('INVALID_ODATA_QUERY', message);
}

type Token =
  | { t: 'name'; v: string; at: number }
  | { t: 'string'; v: string; at: number }
  | { t: 'number'; v: number; at: number }
  | { t: 'punct'; v: string; at: number }
  | { t: 'end'; at: number };

const NAME = /[$A-Za-z_][A-Za-z0-9_]*/y;
const NUMBER = /-?\d+(\.\d+)?/y;
const SPACE = /\s+/y;

function tokenize(text: string): Token[] {
  if (text.length > MAX_OPTION_LENGTH) throw invalidQuery(`a query option is longer than ${MAX_OPTION_LENGTH}`);
  const out: Token[] = [];
  let i = 0;
  const at = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(text);
    return m ? m[0] : undefined;
  };
  while (i < text.length) {
    const space = at(SPACE);
    if (space) {
      i += space.length;
      continue;
    }
    const c = text[i] as string;
    if (c === "'") {
      let value = '';
      let j = i + 1;
      for (;;) {
        if (j >= text.length) throw invalidQuery(`unterminated string at ${i}`);
        if (text[j] === "'") {
          if (text[j + 1] === "'") {
            value += "'";
            j += 2;
            continue;
          }
          break;
        }
        value += text[j];
        j++;
      }
      out.push({ t: 'string', v: value, at: i });
      i = j + 1;
      continue;
    }
    const num = at(NUMBER);
    if (num) {
      const value = Number(num);
      if (!Number.isSafeInteger(value) && num.indexOf('.') < 0) throw invalidQuery(`number out of range at ${i}`);
      out.push({ t: 'number', v: value, at: i });
      i += num.length;
      continue;
    }
    const name = at(NAME);
    if (name) {
      out.push({ t: 'name', v: name, at: i });
      i += name.length;
      continue;
    }
    if ('(),/:;=*'.includes(c)) {
      out.push({ t: 'punct', v: c, at: i });
      i++;
      continue;
    }
    throw invalidQuery(`unexpected character ${JSON.stringify(c)} at ${i}`);
  }
  out.push({ t: 'end', at: text.length });
  return out;
}

class Parser {
  private pos = 0;
  private depth = 0;
  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.pos] as Token;
  }
  private next(): Token {
    const token = this.peek();
    if (token.t !== 'end') this.pos++;
    return token;
  }
  private isPunct(v: string): boolean {
    const token = this.peek();
    return token.t === 'punct' && token.v === v;
  }
  private isName(v: string): boolean {
    const token = this.peek();
    return token.t === 'name' && token.v === v;
  }
  private expectPunct(v: string): void {
    const token = this.next();
    if (token.t !== 'punct' || token.v !== v) throw invalidQuery(`expected "${v}" at ${token.at}`);
  }
  private expectName(): string {
    const token = this.next();
    if (token.t !== 'name') throw invalidQuery(`expected a name at ${token.at}`);
    return token.v;
  }
  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw invalidQuery(`the query nests deeper than ${MAX_DEPTH}`);
  }
  private leave(): void {
    this.depth--;
  }
  end(): void {
    const token = this.peek();
    if (token.t !== 'end') throw invalidQuery(`unexpected input at ${token.at}`);
  }
  atEnd(): boolean {
    return this.peek().t === 'end';
  }

  // ----------------------------------------------------------------------------------------------- $filter
  expression(): Expr {
    this.enter();
    let left = this.conjunction();
    while (this.isName('or')) {
      this.next();
      left = { kind: 'or', left, right: this.conjunction() };
    }
    this.leave();
    return left;
  }

  private conjunction(): Expr {
    let left = this.unary();
    while (this.isName('and')) {
      this.next();
      left = { kind: 'and', left, right: this.unary() };
    }
    return left;
  }

  private unary(): Expr {
    if (this.isName('not')) {
      this.next();
      this.enter();
      const expr = this.unary();
      this.leave();
      return { kind: 'not', expr };
    }
    const left = this.operand();
    const token = this.peek();
    if (token.t === 'name' && COMPARE_OPS.has(token.v)) {
      this.next();
      return { kind: 'compare', op: token.v as CompareOp, left, right: this.operand() };
    }
    if (token.t === 'name' && token.v === 'in') {
      this.next();
      this.expectPunct('(');
      const values: Literal[] = [];
      do {
        const value = this.operand();
        if (value.kind !== 'literal') throw invalidQuery(`"in" takes a list of literals (at ${token.at})`);
        values.push(value.value);
      } while (this.isPunct(',') && this.next());
      this.expectPunct(')');
      return { kind: 'in', left, values };
    }
    return left;
  }

  private operand(): Expr {
    const token = this.peek();
    if (token.t === 'punct' && token.v === '(') {
      this.next();
      const inner = this.expression();
      this.expectPunct(')');
      return inner;
    }
    if (token.t === 'string' || token.t === 'number') {
      this.next();
      return { kind: 'literal', value: token.v };
    }
    if (token.t !== 'name') throw invalidQuery(`expected a value or a name at ${token.at}`);
    if (token.v === 'null' || token.v === 'true' || token.v === 'false') {
      this.next();
      return { kind: 'literal', value: token.v === 'null' ? null : token.v === 'true' };
    }
    const path = [this.expectName()];
    if (this.isPunct('(')) {
      const name = path[0] as string;
      if (!isFunction(name))
        throw invalidQuery(
          `the function ${name}() is not supported (at ${token.at}); these are: ${FUNCTIONS.join(', ')}`,
        );
      return this.call(name);
    }
    while (this.isPunct('/')) {
      this.next();
      const segment = this.expectName();
      if ((segment === 'any' || segment === 'all') && this.isPunct('(')) return this.lambda(segment, path);
      path.push(segment);
    }
    return { kind: 'path', path };
  }

  private call(name: FunctionName): Expr {
    this.enter();
    this.expectPunct('(');
    const args = [this.operand()];
    while (this.isPunct(',')) {
      this.next();
      args.push(this.operand());
    }
    this.expectPunct(')');
    this.leave();
    return { kind: 'call', name, args };
  }

  private lambda(op: 'any' | 'all', path: string[]): Expr {
    this.enter();
    this.expectPunct('(');
    const alias = this.expectName();
    this.expectPunct(':');
    const body = this.expression();
    this.expectPunct(')');
    this.leave();
    return { kind: 'lambda', op, path, alias, body };
  }

  // ------------------------------------------------------------------------------------------ other options
  select(): string[] {
    if (this.isPunct('*')) {
      this.next();
      return [];
    }
    const names = [this.expectName()];
    while (this.isPunct(',')) {
      this.next();
      names.push(this.expectName());
    }
    return names;
  }

  orderby(): { path: string[]; descending: boolean }[] {
    const out: { path: string[]; descending: boolean }[] = [];
    do {
      const path = [this.expectName()];
      while (this.isPunct('/')) {
        this.next();
        path.push(this.expectName());
      }
      let descending = false;
      if (this.isName('asc') || this.isName('desc')) descending = (this.next() as { v: string }).v === 'desc';
      out.push({ path, descending });
    } while (this.isPunct(',') && this.next());
    return out;
  }

  count(): number {
    const token = this.next();
    if (token.t !== 'number' || !Number.isInteger(token.v) || token.v < 0 || token.v > MAX_TOP)
      throw invalidQuery(`expected a whole number from 0 to ${MAX_TOP} at ${token.at}`);
    return token.v;
  }

  expand(): Expand[] {
    this.enter();
    const out: Expand[] = [];
    do {
      const navigation = this.expectName();
      let count = false;
      if (this.isPunct('/')) {
        this.next();
        if (this.expectName() !== '$count') throw invalidQuery(`only nav/$count may follow a navigation in $expand`);
        count = true;
      }
      let options: QueryOptions = {};
      if (this.isPunct('(')) {
        this.next();
        options = this.nestedOptions();
        this.expectPunct(')');
      }
      out.push({ navigation, count, options });
    } while (this.isPunct(',') && this.next());
    this.leave();
    return out;
  }

  /** `$select=a,b;$filter=…;$expand=…` inside an `$expand`'s parentheses. */
  private nestedOptions(): QueryOptions {
    const options: QueryOptions = {};
    for (;;) {
      const token = this.peek();
      if (token.t !== 'name' || !token.v.startsWith('$')) break;
      this.next();
      this.expectPunct('=');
      applyOption(options, token.v, this);
      if (!this.isPunct(';')) break;
      this.next();
    }
    return options;
  }
}

function applyOption(options: QueryOptions, name: string, parser: Parser): void {
  if (name === '$filter') options.filter = parser.expression();
  else if (name === '$select') options.select = parser.select();
  else if (name === '$expand') options.expand = parser.expand();
  else if (name === '$orderby') options.orderby = parser.orderby();
  else if (name === '$top') options.top = parser.count();
  else if (name === '$skip') options.skip = parser.count();
  else throw invalidQuery(`unsupported query option ${name}`);
}

const OPTIONS = ['$filter', '$select', '$expand', '$orderby', '$top', '$skip'];

/**
 * The options of a request's query string (as Fastify parsed it). Other `$` options and parameter aliases (`@x`) are
 * refused; plain parameters (`apikey`) are left to the caller.
 */
export function parseQueryOptions(query: Record<string, unknown>): QueryOptions {
  const options: QueryOptions = {};
  for (const [name, raw] of Object.entries(query)) {
    if (name.startsWith('@')) throw invalidQuery('parameter aliases (@name) are not supported');
    if (!name.startsWith('$')) continue;
    if (name === '$format') continue;
    if (!OPTIONS.includes(name)) throw invalidQuery(`unsupported query option ${name}`);
    if (typeof raw !== 'string') throw invalidQuery(`${name} is given more than once`);
    const parser = new Parser(tokenize(raw));
    applyOption(options, name, parser);
    parser.end();
  }
  return options;
}

/** One key value in `resource(<key>)`: `123`, `'text'`, or `name='text'` for an alternate key. */
export function parseKey(text: string): { field: string | undefined; value: Literal } {
  const named = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/s.exec(text);
  const tokens = tokenize(named ? (named[2] as string) : text);
  const [first, last] = tokens;
  if (tokens.length !== 2 || !first || last?.t !== 'end' || (first.t !== 'string' && first.t !== 'number'))
    throw invalidQuery('a key is a number, a quoted string or name=value');
  return { field: named?.[1], value: first.v };
}
