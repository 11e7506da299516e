/**
 * CPU and memory of another process, read from /proc (Linux only). CPU is reported as a
 * percentage of one core, so 150% means one and a half cores busy.
 */
import { readFileSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat; 100 on every mainstream Linux. */
const CLOCK_TICKS = 100;

export interface ProcSnapshot {
  at: number;
  cpuSeconds: number;
  rssBytes: number;
}

export function readProc(pid: number): ProcSnapshot | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may contain spaces; fields are counted after its ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { at: performance.now(), cpuSeconds: (utime + stime) / CLOCK_TICKS, rssBytes: rssKb * 1024 };
  } catch {
    return undefined; // the process is gone
  }
}

export function cpuPercent(from: ProcSnapshot, to: ProcSnapshot): number {
  const wallSeconds = (to.at - from.at) / 1000;
  return wallSeconds > 0 ? ((to.cpuSeconds - from.cpuSeconds) / wallSeconds) * 100 : 0;
}

export interface ProcWindow {
  cpuAvgPercent: number;
  cpuPeakPercent: number;
  rssPeakBytes: number;
  rssEndBytes: number;
}

/** Samples a process every `intervalMs`; `window()` summarises from `mark()` to now. */
export class ProcSampler {
  private timer: NodeJS.Timeout | undefined;
  private previous: ProcSnapshot | undefined;
  private start: ProcSnapshot | undefined;
  private cpuPeak = 0;
  private rssPeak = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 1000,
  ) {}

  begin(): void {
    this.previous = readProc(this.pid);
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  /** Starts the measured window (after warm-up): peaks and averages restart here. */
  mark(): void {
    this.start = readProc(this.pid);
    this.previous = this.start;
    this.cpuPeak = 0;
    this.rssPeak = this.start?.rssBytes ?? 0;
  }

  private sample(): ProcSnapshot | undefined {
    const now = readProc(this.pid);
    if (!now) return undefined;
    if (this.previous) this.cpuPeak = Math.max(this.cpuPeak, cpuPercent(this.previous, now));
    this.rssPeak = Math.max(this.rssPeak, now.rssBytes);
    this.previous = now;
    return now;
  }

  window(): ProcWindow {
    const end = this.sample();
    const start = this.start;
    return {
      cpuAvgPercent: start && end ? cpuPercent(start, end) : 0,
      cpuPeakPercent: this.cpuPeak,
      rssPeakBytes: this.rssPeak,
      rssEndBytes: end?.rssBytes ?? 0,
    };
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
