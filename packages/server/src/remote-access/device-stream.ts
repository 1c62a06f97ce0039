import { Duplex } from 'node:stream';
import { FlotillaError, isErrorCode, parseStreamControl } from '@flotilla/protocol';
import type { RawData, WebSocket } from 'ws';
import { byteLength, closeWith, releaseFrames } from './stream-relay.js';

/**
 * The device's half of a tunnel stream as a byte stream, for the server's own use (the public-URL proxy hands it
 * to an HTTP client as its connection). Resolves once the device says `ready`; rejects with its `error`.
 *
 * Back-pressure both ways: a device frame that the reader has no room for pauses the WebSocket until the reader
 * asks for more; a write completes only when ws has written it to the socket, so Node's Writable buffering
 * (its high-water mark) bounds what waits here.
 */
export function deviceStreamDuplex(
  socket: WebSocket,
  timeoutMs: number,
): Promise<Duplex & { bytesIn: number; bytesOut: number }> {
  return new Promise((resolve, reject) => {
    let stream: DeviceStream | undefined;
    const timer = setTimeout(
      () => fail(new FlotillaError('NETWORK_ERROR', 'the device did not open the connection')),
      timeoutMs,
    );
    const fail = (error: FlotillaError) => {
      clearTimeout(timer);
      closeWith(socket, 1000);
      reject(error);
    };
    socket.once('close', () => {
      if (!stream) fail(new FlotillaError('NETWORK_ERROR', 'the device closed the stream'));
    });
    releaseFrames(socket, (data: RawData, isBinary: boolean) => {
      if (stream) {
        stream.frame(data, isBinary);
        return;
      }
      const control = isBinary ? undefined : parseStreamControl(data.toString());
      if (control?.type === 'ready') {
        clearTimeout(timer);
        stream = new DeviceStream(socket);
        resolve(stream);
      } else if (control?.type === 'error') {
        fail(new FlotillaError(isErrorCode(control.code) ? control.code : 'NETWORK_ERROR', control.message));
      }
    });
  });
}

class DeviceStream extends Duplex {
  bytesIn = 0;
  bytesOut = 0;

  constructor(private readonly socket: WebSocket) {
    super({ allowHalfOpen: true });
    socket.on('close', () => {
      this.push(null);
      if (!this.writableFinished) this.destroy();
    });
    socket.on('error', (error) => this.destroy(error));
  }

  frame(data: RawData, isBinary: boolean): void {
    if (isBinary) {
      this.bytesOut += byteLength(data);
      if (!this.push(data)) this.socket.pause();
      return;
    }
    const control = parseStreamControl(data.toString());
    if (control?.type === 'eof') this.push(null);
    else if (control?.type === 'error') this.destroy(new FlotillaError('NETWORK_ERROR', control.message));
  }

  override _read(): void {
    if (this.socket.isPaused) this.socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    if (this.socket.readyState !== this.socket.OPEN) {
      callback(new FlotillaError('NETWORK_ERROR', 'the device stream is closed'));
      return;
    }
    this.bytesIn += chunk.length;
    this.socket.send(chunk, { binary: true }, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.socket.readyState !== this.socket.OPEN) callback();
    else this.socket.send(JSON.stringify({ type: 'eof' }), callback);
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    closeWith(this.socket, error ? 1011 : 1000);
    callback(error);
  }
}
