import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { controlPlaneImage } from './image-download.js';

const KEY = 'device-key-0123456789abcdef';

/**
 * An image server on loopback that honours Range as the control plane's os-images route does, checks the device
 * key, and cuts the connection after `cutAfter` bytes of each of the first `cuts` answers.
 */
async function imageServer(t: TestContext, image: Buffer, cuts: number, cutAfter: number) {
  const seen: Array<{ range: string | undefined; authorization: string | undefined }> = [];
  const server = createServer((req: IncomingMessage, res) => {
    seen.push({ range: req.headers.range, authorization: req.headers.authorization });
    if (req.headers.authorization !== `Bearer ${KEY}`) {
      res.writeHead(401).end();
      return;
    }
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = m ? Number(m[1]) : 0;
    const body = image.subarray(start);
    res.writeHead(m ? 206 : 200, {
      'content-length': String(body.length),
      ...(m ? { 'content-range': `bytes ${start}-${image.length - 1}/${image.length}` } : {}),
    });
    if (seen.length <= cuts) {
      res.write(body.subarray(0, cutAfter), () => res.destroy());
      return;
    }
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('OS image download from the control plane', () => {
  it('sends the device key and resumes with Range after each cut, to the same bytes', async (t) => {
    const image = randomBytes(3 << 20);
    const server = await imageServer(t, image, 2, 700_000);
    const open = controlPlaneImage({ apiEndpoint: server.url, deviceApiKey: KEY, retryDelayMs: 10 });
    const got = await readAll(
      (await open(`${server.url}/device/v1/u/os-images/h`, AbortSignal.timeout(30_000))).stream,
    );
    assert.ok(got.equals(image), `${got.length} bytes of ${image.length}`);
    assert.equal(server.seen.length, 3);
    assert.equal(server.seen[0]?.range, undefined);
    // Each resume asks from exactly what arrived: the cut lands after at least what the server wrote.
    const offsets = server.seen.slice(1).map((s) => Number(/^bytes=(\d+)-$/.exec(s.range ?? '')?.[1]));
    assert.ok(offsets[0] !== undefined && offsets[0] >= 700_000 && offsets[0] < image.length, String(offsets));
    assert.ok(offsets[1] !== undefined && offsets[1] > offsets[0], String(offsets));
    assert.ok(server.seen.every((s) => s.authorization === `Bearer ${KEY}`));
  });

  it('starts at the byte asked for (a write resumed after a restart), and resumes a cut from there', async (t) => {
    const image = randomBytes(2 << 20);
    const server = await imageServer(t, image, 1, 300_000);
    const open = controlPlaneImage({ apiEndpoint: server.url, deviceApiKey: KEY, retryDelayMs: 10 });
    const from = 1_234_567;
    const got = await open(`${server.url}/os`, AbortSignal.timeout(30_000), from);
    assert.equal(got.start, from);
    assert.ok((await readAll(got.stream)).equals(image.subarray(from)));
    assert.equal(server.seen[0]?.range, `bytes=${from}-`);
    assert.equal(server.seen[1]?.range, `bytes=${from + 300_000}-`, 'the cut resumed where the bytes stopped');
  });

  it('a server that ignores Range answers the whole image, which is said to start at 0', async (t) => {
    const image = randomBytes(100_000);
    const server = createServer((_req, res) =>
      res.writeHead(200, { 'content-length': String(image.length) }).end(image),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => server.close(resolve)));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const got = await controlPlaneImage({ apiEndpoint: url, deviceApiKey: KEY })(
      `${url}/os`,
      AbortSignal.timeout(10_000),
      5000,
    );
    assert.equal(got.start, 0);
    assert.ok((await readAll(got.stream)).equals(image));
  });

  it('gives up after too many cuts in a row without a byte, with NETWORK_ERROR', async (t) => {
    const image = randomBytes(1 << 20);
    const server = await imageServer(t, image, 100, 0);
    const open = controlPlaneImage({ apiEndpoint: server.url, deviceApiKey: KEY, retryDelayMs: 1, maxStalls: 3 });
    const { stream } = await open(`${server.url}/os`, AbortSignal.timeout(30_000));
    await assert.rejects(readAll(stream), { code: 'NETWORK_ERROR' });
    assert.equal(server.seen.length, 4, 'the first answer and three resumes');
  });

  it('a refusal is not retried, and the key goes to the API endpoint only', async (t) => {
    const image = randomBytes(1000);
    const server = await imageServer(t, image, 0, 0);
    const wrong = controlPlaneImage({ apiEndpoint: server.url, deviceApiKey: 'another-key-0123456789abcdef' });
    await assert.rejects(wrong(`${server.url}/os`, AbortSignal.timeout(10_000)), { code: 'UNEXPECTED_RESPONSE' });
    const elsewhere = controlPlaneImage({ apiEndpoint: 'http://127.0.0.2:1', deviceApiKey: KEY });
    // Another origin: the plain reader, without the key, which this server refuses.
    await assert.rejects(elsewhere(`${server.url}/os`, AbortSignal.timeout(10_000)), { code: 'UNEXPECTED_RESPONSE' });
    assert.deepEqual(
      server.seen.map((s) => s.authorization),
      ['Bearer another-key-0123456789abcdef', undefined],
    );
  });
});
