// Loaded on demand (terminal-panel.tsx imports it dynamically): xterm.js and its stylesheet stay out of the first
// page load.
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';
import '@xterm/xterm/css/xterm.css';
import type { StreamControl } from '@flotilla/protocol';
import {
  endedStatus,
  readShellMessage,
  resizeMessage,
  shellUrl,
  stdinBinaryFrame,
  stdinFrame,
} from './shell-frames.js';

export interface TerminalEvents {
  /** The device said `ready`: the shell runs. */
  onReady(): void;
  /** The stream ended; `status` is plain text for the status line, `failed` unless the shell exited. */
  onEnd(status: string, failed: boolean): void;
  /** The user pressed the key that leaves the terminal (F6): focus goes elsewhere. */
  onLeave(): void;
}

export interface TerminalSession {
  focus(): void;
  /** Ends the stream (the device ends the shell) and removes the terminal. */
  close(): void;
}

/** The key that moves focus out of the terminal, which otherwise keeps every key (Tab included) for the shell. */
export const LEAVE_KEY = 'F6';

/**
 * A pseudo-terminal shell on the device's host (`service` undefined) or in a service's container, drawn by xterm.js
 * in `container` and sized to fill it: each change of the container's size reaches the device as `resize`.
 */
export function startTerminal(
  container: HTMLElement,
  target: { uuid: string; service: string | undefined },
  events: TerminalEvents,
): TerminalSession {
  const term = new Terminal({
    cursorBlink: true,
    fontFamily: 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace',
    fontSize: 14,
    scrollback: 5_000,
    theme: { background: '#101418', foreground: '#e4e8ec' },
  });
  const fit = new FitAddon();
  term.loadAddon(fit);
  term.open(container);
  fit.fit();
  const opened = { cols: term.cols, rows: term.rows };
  const ws = new WebSocket(
    shellUrl(window.location, target.uuid, { service: target.service, tty: '1', cols: opened.cols, rows: opened.rows }),
  );
  ws.binaryType = 'arraybuffer';

  let ready = false;
  let last: StreamControl | undefined;
  let ended = false;
  const send = (frame: Uint8Array | string) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(frame);
  };
  ws.onopen = () => {
    // The size may have changed between the URL and the upgrade.
    if (term.cols !== opened.cols || term.rows !== opened.rows) send(resizeMessage(term.cols, term.rows));
  };
  ws.onmessage = (event: MessageEvent<ArrayBuffer | string>) => {
    const message = readShellMessage(event.data);
    if (!message) return;
    if (message.kind === 'output') term.write(message.data);
    else if (message.control.type === 'ready') {
      ready = true;
      events.onReady();
    } else if (message.control.type === 'exit' || message.control.type === 'error') last = message.control;
  };
  ws.onclose = () => {
    if (ended) return;
    ended = true;
    observer.disconnect();
    term.options.disableStdin = true;
    term.options.cursorBlink = false;
    // A browser tells a page nothing about a refused upgrade (403, 404, 409 device offline): only that it closed.
    const status = last || ready ? endedStatus(last) : 'The server refused the shell, or the device is not connected.';
    events.onEnd(status, last?.type !== 'exit');
  };

  term.onData((data) => send(stdinFrame(data)));
  term.onBinary((data) => send(stdinBinaryFrame(data)));
  term.onResize(({ cols, rows }) => send(resizeMessage(cols, rows)));
  term.attachCustomKeyEventHandler((event) => {
    if (event.key !== LEAVE_KEY) return true;
    if (event.type === 'keydown') {
      event.preventDefault();
      events.onLeave();
    }
    return false;
  });
  // The container follows the window and the page's layout; the terminal follows the container.
  const observer = new ResizeObserver(() => {
    if (container.clientWidth > 0 && container.clientHeight > 0) fit.fit();
  });
  observer.observe(container);

  return {
    focus: () => term.focus(),
    close: () => {
      ended = true;
      observer.disconnect();
      ws.close();
      term.dispose();
    },
  };
}
