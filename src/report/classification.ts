/** Counts and scores of a classifier's answers on a labelled set. */
export interface Classification {
  /** `matrix[true][predicted]` counts. */
  readonly matrix: number[][];
  readonly accuracy: number;
  /** Per class: precision (of the answers "c", how many were c), recall (of the c's, how many were found). */
  readonly perClass: { precision: number; recall: number; support: number }[];
}

export function classify(predicted: ArrayLike<number>, labels: ArrayLike<number>, classes: number): Classification {
  const matrix = Array.from({ length: classes }, () => new Array<number>(classes).fill(0));
  let correct = 0;
  for (let i = 0; i < labels.length; i++) {
    matrix[labels[i]][predicted[i]]++;
    if (labels[i] === predicted[i]) correct++;
  }
  const perClass = matrix.map((row, c) => {
    const support = row.reduce((a, b) => a + b, 0);
    const answered = matrix.reduce((sum, r) => sum + r[c], 0);
    return { precision: answered === 0 ? 0 : row[c] / answered, recall: support === 0 ? 0 : row[c] / support, support };
  });
  return { matrix, accuracy: correct / labels.length, perClass };
}

/** The per-class table the command line prints. */
export function perClassTable(result: Classification, classNames: readonly string[]): string {
  const width = Math.max(5, ...classNames.map((n) => n.length));
  const lines = [`${'class'.padEnd(width)}  precision  recall  support`];
  result.perClass.forEach((c, i) => {
    lines.push(
      `${classNames[i].padEnd(width)}  ${c.precision.toFixed(4).padStart(9)}  ${c.recall.toFixed(4).padStart(6)}  ${String(c.support).padStart(7)}`,
    );
  });
  lines.push(
    `${'all'.padEnd(width)}  accuracy ${result.accuracy.toFixed(4)} on ${result.perClass.reduce((s, c) => s + c.support, 0)} images`,
  );
  return lines.join('\n');
}

/**
 * A confusion-matrix cell's colours, from its share of the row (the diagonal's is the recall): the
 * larger the share, the deeper the blue, with white text on the deepest.
 */
export function cellColors(share: number): { readonly background: string; readonly text: string } {
  const shade = Math.round(255 * (1 - share));
  return {
    background: `rgb(${shade}, ${Math.round(255 - 150 * share)}, 255)`,
    text: share > 0.5 ? '#ffffff' : '#222222',
  };
}
