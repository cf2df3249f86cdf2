import type { ProgressEvent, RunStats } from './events.js';
import type { RunSummary } from './runner.js';

/** Where progress is written: standard error, or any stream with the same shape. */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/** Shows a run's progress: a live bar on a terminal, otherwise one plain line per finished cluster. */
export interface ProgressDisplay {
  readonly onProgress: (event: ProgressEvent) => void;
  /** Removes the bar and writes the summary. */
  finish(summary: RunSummary): void;
}

const REDRAW_MS = 100;
const ERASE_LINE = '\r\x1b[K';

export function progressDisplay(stream: ProgressStream): ProgressDisplay {
  const live = stream.isTTY === true;
  let last: RunStats | null = null;
  let timer: NodeJS.Timeout | null = null;
  let drawn = false;

  const draw = (): void => {
    timer = null;
    if (last === null) return;
    stream.write(`${ERASE_LINE}${barLine(last, stream.columns ?? 80)}`);
    drawn = true;
  };
  /** Writes a line above the bar, which is then drawn again below it. */
  const say = (line: string): void => {
    stream.write(`${live && drawn ? ERASE_LINE : ''}${line}\n`);
    if (live) draw();
  };

  return {
    onProgress(event: ProgressEvent): void {
      last = event.stats;
      const line = eventLine(event, live);
      if (line !== null) say(line);
      else if (live && timer === null) {
        timer = setTimeout(draw, REDRAW_MS);
        timer.unref();
      }
    },
    finish(summary: RunSummary): void {
      if (timer !== null) clearTimeout(timer);
      if (live && drawn) stream.write(ERASE_LINE);
      stream.write(formatSummary(summary));
    },
  };
}

/** The plain line for an event, or null for events only the bar shows. */
function eventLine(event: ProgressEvent, live: boolean): string | null {
  const of = `/${event.stats.clusters}`;
  switch (event.type) {
    case 'start':
      return null;
    case 'end': {
      // On a terminal the bar counts the clusters that went well; only trouble gets a line.
      if (live && event.why === 'ok') return null;
      const how = event.why === 'ok' ? 'ok' : `${event.why} (${exitText(event.exitCode, event.signal, event.error)})`;
      const retry = event.retryInMs !== null ? `; retry in ${seconds(event.retryInMs)}` : '';
      return `cluster ${event.cluster}${of} ${how} in ${seconds(event.durationMs)}, attempt ${event.attempt}${retry}`;
    }
    case 'orphan':
      return `stopping pid ${event.pid}${event.cluster !== null ? ` (cluster ${event.cluster}${of})` : ''}, left running by a runner that died`;
    case 'memory-wait':
      return `waiting for memory: ${bytes(event.availableBytes)} available, --mem-free ${bytes(event.memFree)}`;
    case 'connection':
      return event.state === 'lost'
        ? `lost the connection to Redis at ${event.address} (${event.error}); reconnecting`
        : `connected to Redis at ${event.address} again`;
    case 'stopping':
      return event.reason === 'halt'
        ? 'halting: too many clusters failed; no new clusters start'
        : `stopping (${event.reason}): no new clusters start; running ones are stopped and recorded as interrupted`;
  }
}

function exitText(exitCode: number | null, signal: string | null, error: string | null): string {
  // Both only when the runner killed it for a reason of its own (queue mode: its lock was lost).
  if (signal !== null && error !== null) return `signal ${signal}: ${(error.split('\n')[0] ?? error).slice(0, 200)}`;
  if (signal !== null) return `signal ${signal}`;
  if (error !== null) return (error.split('\n')[0] ?? error).slice(0, 200);
  return `exit code ${exitCode}`;
}

/** `[#####-----] 1234/10000 done · 2 failed · 3 running · 45.2/s · ETA 3m12s` */
function barLine(stats: RunStats, columns: number): string {
  const elapsed = (Date.now() - stats.startedAt) / 1000;
  const rate = elapsed > 0 ? stats.doneThisRun / elapsed : 0;
  const remaining = stats.clusters - stats.done;
  const eta = rate > 0 ? clock(remaining / rate) : '?';
  const text = ` ${stats.done}/${stats.clusters} done · ${stats.failed} failed · ${stats.running} running · ${rate.toFixed(1)}/s · ETA ${eta}`;
  const width = Math.max(10, Math.min(40, columns - text.length - 3));
  const filled = Math.round((stats.done / stats.clusters) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}]${text}`.slice(0, Math.max(1, columns - 1));
}

/** The summary written at the end of a run. */
export function formatSummary(summary: RunSummary): string {
  const parts = [`${summary.done} of ${summary.clusters} clusters done`];
  if (summary.doneBefore > 0) parts.push(`${summary.doneBefore} by earlier runs`);
  if (summary.failed > 0) parts.push(`${summary.failed} not done`);
  if (summary.notStarted > 0) parts.push(`${summary.notStarted} not started`);
  let text = `cluster-run: ${parts.join(', ')}; ${summary.attempts} attempts in ${seconds(summary.durationMs)}`;
  if (summary.stoppedBy !== null) text += `; stopped by ${summary.stoppedBy}`;
  text += '\n';
  if (summary.failedClusters.length > 0) {
    const shown = summary.failedClusters.slice(0, 20).join(', ');
    const more = summary.failedClusters.length > 20 ? `, and ${summary.failedClusters.length - 20} more` : '';
    text += `  not done: ${shown}${more} (rerun the same command to retry them)\n`;
  }
  if (summary.orphansStopped > 0) text += `  stopped ${summary.orphansStopped} process(es) left by a runner that died\n`;
  if (summary.tornLines > 0) text += `  skipped ${summary.tornLines} torn log line(s)\n`;
  if (summary.oldLog !== null) text += `  old log kept as ${summary.oldLog}\n`;
  if (summary.queue !== null) text += `  queue: ${summary.queue.url} job ${summary.queue.name}, this runner ${summary.queue.host}\n`;
  else text += `  log: ${summary.log}\n`;
  text += `  output: ${summary.outputDir}\n`;
  return text;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)}s` : clock(ms / 1000);
}

/** `42s`, `3m05s`, `2h10m`. */
export function clock(totalSeconds: number): string {
  const s = Math.round(totalSeconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let size = value;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return `${size.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}
