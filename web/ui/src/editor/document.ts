// One open file: a CodeMirror editor bound to the file's `ot:<path>`
// channel through the OT client. Every local change becomes an op in code
// points; every op from others becomes editor changes in UTF-16 units.

import { autocompletion, closeBrackets, closeBracketsKeymap } from '@codemirror/autocomplete';
import { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
import { bracketMatching, foldGutter, foldKeymap, indentOnInput } from '@codemirror/language';
import { highlightSelectionMatches, searchKeymap } from '@codemirror/search';
import { Annotation, Compartment, EditorState, Transaction, type ChangeSpec, type Text } from '@codemirror/state';
import {
  EditorView,
  drawSelection,
  dropCursor,
  highlightActiveLine,
  highlightActiveLineGutter,
  highlightSpecialChars,
  keymap,
  lineNumbers,
  rectangularSelection,
} from '@codemirror/view';
import type { Channel } from '@replit/crosis';
import type { api } from '@replit/protocol';
import type { TextOp } from 'ot-text-unicode';
import { isOpen, type Connection } from '../connection';
import { h } from '../dom';
import { OTClient } from '../ot/client';
import { changesToOp, opToChanges, toCodePoints, toUtf16, wholeCodePoints, type Change, type TextSource } from '../ot/codepoints';
import type { Toasts } from '../toasts';
import type { Identity } from '../token';
import { clearCursors, remoteCursors, removeCursor, setCursor } from './cursors';
import { languageFor } from './languages';
import { theme } from './theme';

/** Marks the transactions that apply others' edits (or a reload): they are not sent back. */
const remoteEdit = Annotation.define<boolean>();

const source = (doc: Text): TextSource => ({ length: doc.length, slice: (a, b) => doc.sliceString(a, b) });

/** How long the cursor waits before it is sent, so that a burst of moves is one message. */
const cursorDelay = 40;

let cursorSerial = 0;

export interface DocumentOptions {
  conn: Connection;
  identity: Identity;
  path: string;
  toasts: Toasts;
  /** Called when the document's state changes (loaded, saving, saved). */
  changed(): void;
}

export class OpenDocument {
  readonly element: HTMLElement;
  readonly view: EditorView;
  readonly client: OTClient;
  /** Set when the file could not be opened. */
  problem = '';
  /** The time the document was first shown, in ms since the page's start. */
  loadedAt: number | null = null;

  private channel: Channel | null = null;
  private readonly closeChannel: () => void;
  private readonly editable = new Compartment();
  private readonly language = new Compartment();
  private cursorId = '';
  private cursorTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly opts: DocumentOptions) {
    const { path, identity } = opts;
    this.client = new OTClient(path, identity.userId, {
      reset: (text) => this.reset(text),
      remote: (op) => this.applyRemote(op),
      warn: (message) => opts.toasts.show(message, 'warning'),
      changed: () => opts.changed(),
    });
    this.element = h('div', { class: 'editor', 'data-path': path });
    this.view = new EditorView({
      parent: this.element,
      state: EditorState.create({
        doc: '',
        extensions: [
          // The document's text is exactly the file's: "\r" stays text.
          EditorState.lineSeparator.of('\n'),
          lineNumbers(),
          highlightActiveLineGutter(),
          highlightSpecialChars(),
          history(),
          foldGutter(),
          drawSelection(),
          dropCursor(),
          EditorState.allowMultipleSelections.of(true),
          indentOnInput(),
          bracketMatching(),
          closeBrackets(),
          autocompletion(),
          rectangularSelection(),
          highlightActiveLine(),
          highlightSelectionMatches(),
          keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap, ...foldKeymap, indentWithTab]),
          theme,
          remoteCursors,
          this.language.of([]),
          this.editable.of(this.editability(false)),
          EditorState.transactionFilter.of((tr) => this.keepWholeCodePoints(tr)),
          EditorView.updateListener.of((update) => {
            for (const tr of update.transactions) this.sendLocal(tr);
            if (update.selectionSet && update.transactions.some((tr) => !tr.annotation(remoteEdit))) this.scheduleCursor();
            if (update.focusChanged && update.view.hasFocus) this.scheduleCursor();
          }),
          EditorView.contentAttributes.of({ 'aria-label': `Editor: ${path}` }),
        ],
      }),
    });
    const load = languageFor(path);
    if (load) {
      load().then(
        (ext) => this.view.dispatch({ effects: this.language.reconfigure(ext) }),
        () => {},
      );
    }
    this.closeChannel = opts.conn.openChannel(
      { service: 'ot', name: `ot:${path}`, priority: 'high' },
      {
        open: (ch) => this.attach(ch),
        close: () => this.detach(),
      },
    );
  }

  get path(): string {
    return this.opts.path;
  }

  text(): string {
    return this.view.state.doc.toString();
  }

  focus(): void {
    this.view.focus();
  }

  destroy(): void {
    clearTimeout(this.cursorTimer);
    this.closeChannel();
    this.view.destroy();
    this.element.remove();
  }

  private editability(loaded: boolean) {
    const on = loaded && !this.opts.identity.readOnly;
    return [EditorView.editable.of(on), EditorState.readOnly.of(!on)];
  }

  private attach(ch: Channel): void {
    if (this.loadedAt === null) performance.mark(`conman:opened:${this.path}`);
    this.channel = ch;
    this.cursorId = `${this.opts.identity.userId}-${Date.now().toString(36)}-${++cursorSerial}`;
    this.client.attach(ch);
    ch.onCommand((cmd) => this.onCommand(cmd));
  }

  private detach(): void {
    this.channel = null;
    this.client.detach();
    this.view.dispatch({ effects: clearCursors.of(null) });
  }

  private onCommand(cmd: api.Command): void {
    this.client.handle(cmd);
    switch (cmd.body) {
      case 'otstatus':
        this.view.dispatch({ effects: clearCursors.of(null) });
        for (const c of cmd.otstatus?.cursors ?? []) this.showCursor(c);
        break;
      case 'otNewCursor':
        if (cmd.otNewCursor) this.showCursor(cmd.otNewCursor);
        break;
      case 'otDeleteCursor':
        if (cmd.otDeleteCursor?.id) this.view.dispatch({ effects: removeCursor.of(cmd.otDeleteCursor.id) });
        break;
      case 'error':
        if (!cmd.ref) this.opts.toasts.show(`${this.path}: ${cmd.error}`, 'error');
        break;
    }
  }

  private showCursor(c: api.IOTCursor): void {
    if (!c.id || c.id === this.cursorId) return;
    const doc = source(this.view.state.doc);
    const at = (points: number | null | undefined) => {
      try {
        return toUtf16(doc, points ?? 0);
      } catch {
        return doc.length;
      }
    };
    this.view.dispatch({
      effects: setCursor.of({
        id: c.id,
        userId: c.user?.id ?? 0,
        name: c.user?.name || 'someone',
        head: at(c.position),
        from: at(c.selectionStart),
        to: at(c.selectionEnd),
      }),
    });
  }

  /** reset shows text: the document was loaded or reloaded. */
  private reset(text: string): void {
    const first = this.loadedAt === null;
    const { main } = this.view.state.selection;
    this.view.dispatch({
      changes: { from: 0, to: this.view.state.doc.length, insert: text },
      selection: { anchor: Math.min(main.anchor, text.length), head: Math.min(main.head, text.length) },
      annotations: [remoteEdit.of(true), Transaction.addToHistory.of(false)],
      effects: this.editable.reconfigure(this.editability(true)),
    });
    if (first) this.loadedAt = performance.mark(`conman:loaded:${this.path}`).startTime;
    this.opts.changed();
  }

  /** applyRemote applies an op from others, in code points, to the editor. */
  private applyRemote(op: TextOp): void {
    let changes: Change[];
    try {
      changes = opToChanges(source(this.view.state.doc), op);
    } catch (e) {
      this.client.resync(`an edit from others does not fit this page's text (${(e as Error).message})`);
      return;
    }
    this.view.dispatch({ changes, annotations: [remoteEdit.of(true), Transaction.addToHistory.of(false)] });
  }

  /** keepWholeCodePoints rewrites a local change that would cut a surrogate pair. */
  private keepWholeCodePoints(tr: Transaction): Transaction | { changes: ChangeSpec[]; userEvent?: string } {
    if (!tr.docChanged || tr.annotation(remoteEdit)) return tr;
    const doc = source(tr.startState.doc);
    const fixed: Change[] = [];
    let changed = false;
    tr.changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
      const c = { from: fromA, to: toA, insert: inserted.toString() };
      const w = wholeCodePoints(doc, c);
      if (w.from !== c.from || w.to !== c.to || w.insert !== c.insert) changed = true;
      const last = fixed[fixed.length - 1];
      if (last && w.from < last.to) {
        last.to = Math.max(last.to, w.to);
        last.insert += w.insert;
      } else {
        fixed.push(w);
      }
    });
    if (!changed) return tr;
    return { changes: fixed, userEvent: tr.annotation(Transaction.userEvent) };
  }

  /** sendLocal turns a local transaction into an op for the OT client. */
  private sendLocal(tr: Transaction): void {
    if (!tr.docChanged || tr.annotation(remoteEdit)) return;
    const changes: Change[] = [];
    tr.changes.iterChanges((fromA, toA, _fromB, _toB, inserted) => {
      changes.push({ from: fromA, to: toA, insert: inserted.toString() });
    });
    this.client.edit(changesToOp(source(tr.startState.doc), changes));
  }

  private scheduleCursor(): void {
    clearTimeout(this.cursorTimer);
    this.cursorTimer = setTimeout(() => this.sendCursor(), cursorDelay);
  }

  private sendCursor(): void {
    const ch = this.channel;
    if (!isOpen(ch) || !this.client.loaded || this.client.phase !== 'ready') return;
    const doc = source(this.view.state.doc);
    const sel = this.view.state.selection.main;
    ch.send({
      otNewCursor: {
        id: this.cursorId,
        position: toCodePoints(doc, sel.head),
        selectionStart: toCodePoints(doc, sel.from),
        selectionEnd: toCodePoints(doc, sel.to),
      },
    });
  }
}
