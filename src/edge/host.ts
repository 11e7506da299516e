import { existsSync, statfsSync } from 'node:fs';
import { freemem, totalmem } from 'node:os';
import type { EdgeHeartbeat } from './records.js';

/** Accelerators the scheduler may place models on: device nodes present on this machine. */
export function detectAccelerators(): string[] {
  const found: string[] = [];
  if (existsSync('/dev/nvidia0')) found.push('nvidia-gpu');
  if (existsSync('/dev/dri/renderD128')) found.push('gpu-render-node');
  if (existsSync('/dev/apex_0')) found.push('coral-tpu');
  return found;
}

export type HostFigures = Pick<EdgeHeartbeat, 'cpuPercent' | 'memory' | 'disk' | 'accelerators'>;

/**
 * The machine an edge runs on, as its heartbeat reports it: CPU is measured over the time since
 * the previous sample, the disk is the one holding the data directory.
 */
export class HostProbe {
  private lastCpu = process.cpuUsage();
  private lastAt = Date.now();

  constructor(private readonly dataDir: string) {}

  sample(): HostFigures {
    const cpu = process.cpuUsage(this.lastCpu);
    const now = Date.now();
    const cpuPercent = ((cpu.user + cpu.system) / 1000 / Math.max(1, now - this.lastAt)) * 100;
    this.lastCpu = process.cpuUsage();
    this.lastAt = now;
    let disk = { freeBytes: 0, totalBytes: 0 };
    try {
      const fs = statfsSync(this.dataDir);
      disk = { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
    } catch {
      // statfs is unavailable on some platforms: report zeros rather than fail the heartbeat.
    }
    return {
      cpuPercent: Number(cpuPercent.toFixed(1)),
      memory: { usedBytes: totalmem() - freemem(), totalBytes: totalmem(), rssBytes: process.memoryUsage.rss() },
      disk,
      accelerators: detectAccelerators(),
    };
  }
}
