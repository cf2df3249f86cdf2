/**
 * What a page's stale copy is keyed under: the page's own key template with this marker before
 * the key prefix. nginx builds it in the location that serves stale copies, the writer in the app;
 * both take it from `staleKeyConfig`, so the two keys cannot drift apart.
 */
export const STALE_KEY_MARKER = 'stale:';

/** The key config of a page's stale copy: the same template, with `STALE_KEY_MARKER` before the prefix. */
export function staleKeyConfig<T extends { readonly keyPrefix?: string }>(config: T): T {
  return { ...config, keyPrefix: `${STALE_KEY_MARKER}${config.keyPrefix ?? ''}` };
}
