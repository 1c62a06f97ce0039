/** Which output a multiplexed frame carries. */
export type EngineOutput = 'stdout' | 'stderr';

/**
 * Splits the engine's multiplexed output (exec or attach without a TTY) into payloads as the bytes arrive: each frame
 * is an 8-byte header (stream type at byte 0: 1 stdout, 2 stderr; payload length as a big-endian uint32 at bytes 4–7)
 * then the payload. A frame may be cut anywhere across chunks; its payload is handed on in the pieces it arrives in
 * (views of the chunk, never copied or held), so nothing is buffered but a header cut in two.
 */
export class EngineFrames {
  /** Header bytes of a frame cut between chunks. */
  private header: Buffer | undefined;
  /** Payload bytes still expected for the current frame, and its output. */
  private left = 0;
  private output: EngineOutput = 'stdout';

  constructor(private readonly onPayload: (output: EngineOutput, data: Buffer) => void) {}

  write(chunk: Buffer): void {
    let at = 0;
    if (this.header) {
      const need = 8 - this.header.length;
      this.header = Buffer.concat([this.header, chunk.subarray(0, need)]);
      at = Math.min(need, chunk.length);
      if (this.header.length < 8) return;
      this.start(this.header, 0);
      this.header = undefined;
    }
    while (at < chunk.length) {
      if (this.left > 0) {
        const end = Math.min(chunk.length, at + this.left);
        this.onPayload(this.output, chunk.subarray(at, end));
        this.left -= end - at;
        at = end;
        continue;
      }
      if (chunk.length - at < 8) {
        this.header = Buffer.from(chunk.subarray(at));
        return;
      }
      this.start(chunk, at);
      at += 8;
    }
  }

  private start(buffer: Buffer, at: number): void {
    this.output = buffer[at] === 2 ? 'stderr' : 'stdout';
    this.left = buffer.readUInt32BE(at + 4);
  }
}
