// A read-only view of the page's state for diagnostics and the browser
// tests: window.conmanIDE. It exposes no token and changes nothing.

import type { Connection, Status } from './connection';
import type { EditorTabs } from './editor/tabs';
import type { Presence } from './panels/presence';
import type { Runner, RunState } from './panels/runner';
import type { Shells } from './panels/shells';

export interface DocumentState {
  path: string;
  text: string;
  version: number;
  phase: string;
  unacknowledged: boolean;
  /** ms after the page's start when the document was first shown, or null. */
  loadedAt: number | null;
}

export interface Inspector {
  status(): Status;
  documents(): DocumentState[];
  terminal(name: string): string | null;
  console(): string;
  runState(): RunState;
  people(): number;
}

declare global {
  interface Window {
    conmanIDE?: Inspector;
  }
}

export function exposeInspector(parts: {
  conn: Connection;
  tabs: EditorTabs;
  shells: Shells;
  runner: Runner;
  presence: Presence;
}): void {
  const { conn, tabs, shells, runner, presence } = parts;
  window.conmanIDE = Object.freeze({
    status: () => conn.getStatus(),
    documents: () =>
      tabs.documents().map((d) => ({
        path: d.path,
        text: d.text(),
        version: d.client.version,
        phase: d.client.phase,
        unacknowledged: d.client.unacknowledged,
        loadedAt: d.loadedAt,
      })),
    terminal: (name: string) => shells.text(name),
    console: () => runner.console.text(),
    runState: () => runner.getState(),
    people: () => presence.count(),
  });
}
