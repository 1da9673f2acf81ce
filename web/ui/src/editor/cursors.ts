// Other people's cursors and selections in an editor, in their colours and
// with their names. Positions are the editor's (UTF-16); they move with
// every change until the person sends a new one.

import { StateEffect, StateField, type Range } from '@codemirror/state';
import { Decoration, EditorView, WidgetType, type DecorationSet } from '@codemirror/view';
import { colourOf } from '../colors';

export interface RemoteCursor {
  id: string;
  userId: number;
  name: string;
  head: number;
  from: number;
  to: number;
}

export const setCursor = StateEffect.define<RemoteCursor>();
export const removeCursor = StateEffect.define<string>();
export const clearCursors = StateEffect.define<null>();

class Caret extends WidgetType {
  constructor(
    readonly name: string,
    readonly colour: string,
  ) {
    super();
  }

  eq(other: Caret): boolean {
    return other.name === this.name && other.colour === this.colour;
  }

  toDOM(): HTMLElement {
    const caret = document.createElement('span');
    caret.className = 'remote-caret';
    caret.style.borderLeftColor = this.colour;
    const label = document.createElement('span');
    label.className = 'remote-caret-label';
    label.style.backgroundColor = this.colour;
    label.textContent = this.name;
    caret.append(label);
    return caret;
  }

  ignoreEvent(): boolean {
    return true;
  }
}

const cursorField = StateField.define<ReadonlyMap<string, RemoteCursor>>({
  create: () => new Map(),
  update(cursors, tr) {
    let next = cursors;
    if (tr.docChanged) {
      const moved = new Map<string, RemoteCursor>();
      for (const [id, c] of cursors) {
        moved.set(id, {
          ...c,
          head: tr.changes.mapPos(c.head),
          from: tr.changes.mapPos(c.from, 1),
          to: tr.changes.mapPos(c.to, -1),
        });
      }
      next = moved;
    }
    for (const e of tr.effects) {
      if (e.is(setCursor)) {
        const len = tr.state.doc.length;
        const clamp = (p: number) => Math.max(0, Math.min(p, len));
        next = new Map(next).set(e.value.id, {
          ...e.value,
          head: clamp(e.value.head),
          from: clamp(e.value.from),
          to: clamp(e.value.to),
        });
      } else if (e.is(removeCursor)) {
        next = new Map(next);
        (next as Map<string, RemoteCursor>).delete(e.value);
      } else if (e.is(clearCursors)) {
        next = new Map();
      }
    }
    return next;
  },
  provide: (field) =>
    EditorView.decorations.from(field, (cursors): DecorationSet => {
      const ranges: Range<Decoration>[] = [];
      for (const c of cursors.values()) {
        const colour = colourOf(c.userId);
        if (c.to > c.from) {
          ranges.push(
            Decoration.mark({ attributes: { style: `background-color: ${colour}40` }, class: 'remote-selection' }).range(
              c.from,
              c.to,
            ),
          );
        }
        ranges.push(Decoration.widget({ widget: new Caret(c.name, colour), side: 1 }).range(c.head));
      }
      return Decoration.set(ranges, true);
    }),
});

export const remoteCursors = cursorField;
