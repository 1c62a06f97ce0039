import { parentPort, workerData } from 'node:worker_threads';
import SqliteDatabase from 'better-sqlite3';

// The checkpointer's thread (checkpointer.ts): its own connection to the server's SQLite file, checkpointing the WAL
// without waiting on anyone (PASSIVE) every interval, until told to stop.
const { file, intervalMs } = workerData as { file: string; intervalMs: number };
const db = new SqliteDatabase(file);
let failing = false;
const checkpoint = () => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
    failing = false;
  } catch (error) {
    // A full disk or an I/O error: the next round tries again (SQLite's own checkpoint still runs meanwhile); told
    // once per spell of failures.
    if (!failing) parentPort?.postMessage({ error: (error as Error).message });
    failing = true;
  }
};
const timer = setInterval(checkpoint, intervalMs);
parentPort?.on('message', (message: unknown) => {
  if (message !== 'stop') return;
  clearInterval(timer);
  checkpoint();
  db.close();
  parentPort?.close();
});
parentPort?.postMessage('ready');
