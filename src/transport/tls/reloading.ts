import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { SecureContextOptions } from 'node:tls';
import { loadTlsMaterial, type TlsFiles, type TlsMaterial } from './material.js';

/** A server whose context can be swapped for new connections: `tls.Server` and `https.Server`. */
export interface ContextHolder {
  setSecureContext(options: SecureContextOptions): void;
}

export interface ReloadObserver {
  /** New files were read and every server uses them for new connections. */
  applied(material: TlsMaterial): void;
  /** New files were unusable: the old context stays. */
  failed(error: Error): void;
}

export interface ReloadingOptions {
  /** Quiet time after the last change before the files are read (editors and `cp` write in steps). */
  debounceMs?: number;
  observer?: ReloadObserver;
}

const DEFAULT_DEBOUNCE_MS = 250;

/**
 * The TLS context of a node's listeners, following its files. The directories holding the files
 * are watched (so a file replaced by rename, as certbot and `mv` do, is still seen); after a
 * quiet time every file is read again and, if they make a usable context, each server takes it
 * for its next connections. Connections already open keep the context they started with. A
 * broken new file is reported and the old context kept, so a bad deploy never takes TLS down.
 */
export class ReloadingTlsContext {
  private current: TlsMaterial;
  private readonly holders = new Set<ContextHolder>();
  private readonly watchers: FSWatcher[] = [];
  private timer: NodeJS.Timeout | undefined;
  private reading: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** Reloads applied and refused since start. */
  applied = 0;
  failed = 0;

  private constructor(
    readonly files: TlsFiles,
    first: TlsMaterial,
    private readonly options: ReloadingOptions,
  ) {
    this.current = first;
  }

  /** Reads the files once (throwing a `TlsFileError` that names the bad one) and starts watching them. */
  static async open(files: TlsFiles, options: ReloadingOptions = {}): Promise<ReloadingTlsContext> {
    const context = new ReloadingTlsContext(files, await loadTlsMaterial(files), options);
    context.watchFiles();
    return context;
  }

  get material(): TlsMaterial {
    return this.current;
  }

  /** Options for a server being created now. */
  get secureContextOptions(): SecureContextOptions {
    return this.current.options;
  }

  /** The server takes every future reload; `release` when it closes. */
  follow(holder: ContextHolder): void {
    this.holders.add(holder);
  }

  release(holder: ContextHolder): void {
    this.holders.delete(holder);
  }

  /** Reads the files now (also what a change triggers); resolves when applied or refused. */
  async reload(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.readOnce().finally(() => {
      this.reading = undefined;
    });
    await this.reading;
    if (this.again && !this.closed) {
      this.again = false;
      await this.reload();
    }
  }

  private async readOnce(): Promise<void> {
    let next: TlsMaterial;
    try {
      next = await loadTlsMaterial(this.files);
    } catch (error) {
      if (this.closed) return;
      this.failed += 1;
      this.options.observer?.failed(error as Error);
      return;
    }
    if (this.closed || next.fingerprint === this.current.fingerprint) return;
    for (const holder of this.holders) holder.setSecureContext(next.options);
    this.current = next;
    this.applied += 1;
    this.options.observer?.applied(next);
  }

  private watchFiles(): void {
    const paths = [this.files.cert, this.files.key, this.files.ca, this.files.crl].filter((p): p is string => p !== undefined);
    const byDirectory = new Map<string, Set<string>>();
    for (const path of paths.map((p) => resolve(p))) {
      const names = byDirectory.get(dirname(path)) ?? new Set<string>();
      names.add(basename(path));
      byDirectory.set(dirname(path), names);
    }
    for (const [directory, names] of byDirectory) {
      try {
        const watcher = watch(directory, { persistent: false }, (_event, name) => {
          if (name === null || names.has(name.toString())) this.changed();
        });
        watcher.on('error', (error) => this.options.observer?.failed(error));
        this.watchers.push(watcher);
      } catch (error) {
        this.options.observer?.failed(new Error(`cannot watch ${directory} for certificate changes: ${(error as Error).message}`));
      }
    }
  }

  private changed(): void {
    if (this.closed) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.reload().catch(() => undefined);
    }, this.options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    for (const watcher of this.watchers) watcher.close();
    this.holders.clear();
    await this.reading;
  }
}
