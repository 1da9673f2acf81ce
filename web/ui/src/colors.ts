// One colour per user, the same in every panel and on every page: the
// presence list, the file tree's markers and the editor's remote cursors.

const palette = ['#e5484d', '#30a46c', '#0091ff', '#f76b15', '#8e4ec6', '#12a594', '#d6409f', '#ffc53d', '#3e63dd', '#a18072'];

export function colourOf(userId: number): string {
  // Knuth's multiplicative hash spreads consecutive ids over the palette.
  return palette[(Math.imul(userId >>> 0, 2654435761) >>> 0) % palette.length];
}
