const PLACEHOLDER = /\{\}|\{i\}|\{n\}/g;

/** The program and arguments that run one cluster. */
export interface ClusterCommand {
  readonly file: string;
  readonly args: readonly string[];
}

/**
 * Fills the command template for cluster `index` of `total`: `{}` becomes `i/N`, `{i}` and `{n}`
 * its parts; with no placeholder anywhere, `i/N` is appended as the last argument. With `shell`
 * the words are joined by spaces and run by `/bin/sh -c` (the filled values are digits and a
 * slash, so they need no quoting).
 */
export function clusterCommand(template: readonly string[], index: number, total: number, shell: boolean): ClusterCommand {
  const fill = (word: string): string =>
    word.replace(PLACEHOLDER, (placeholder) => (placeholder === '{}' ? `${index}/${total}` : placeholder === '{i}' ? `${index}` : `${total}`));
  const hasPlaceholder = template.some((word) => word.match(PLACEHOLDER) !== null);
  const words = hasPlaceholder ? template.map(fill) : [...template, `${index}/${total}`];
  if (shell) return { file: '/bin/sh', args: ['-c', words.join(' ')] };
  const [file, ...args] = words;
  return { file: file as string, args };
}
