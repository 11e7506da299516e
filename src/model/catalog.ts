import { invalid, notFound } from '../errors/index.js';
import { type CompiledThingModel, compileThingModel } from './compiled-model.js';
import { findModelProblems } from './model-document.js';
import { MODEL_ID_PATTERN, type ThingModel, type ThingModelVersion } from './thing-model.js';

export interface ModelSummary {
  id: string;
  title: string;
  latestVersion: number;
  updatedAt: number;
}

/** Storage port for thing models; versions are immutable once written. */
export interface ModelRepository {
  latest(id: string): Promise<ThingModelVersion | undefined>;
  get(id: string, version: number): Promise<ThingModelVersion | undefined>;
  versions(id: string): Promise<ThingModelVersion[]>;
  list(): Promise<ModelSummary[]>;
  insert(version: ThingModelVersion): Promise<void>;
}

export interface PutModelResult {
  model: ThingModelVersion;
  /** False when the document equals the latest version, which is then returned as is. */
  created: boolean;
}

/** JSON with object keys sorted: equal meaning, equal text (used to compare documents). */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Versioned thing models with their compiled validators. Compilation happens once per
 * version and is cached: the ingest path only ever looks a compiled model up.
 */
export class ModelCatalog {
  private readonly compiledCache = new Map<string, CompiledThingModel>();

  constructor(
    private readonly repository: ModelRepository,
    private readonly now: () => number,
  ) {}

  async put(id: string, document: unknown): Promise<PutModelResult> {
    if (!MODEL_ID_PATTERN.test(id)) {
      throw invalid(`model id "${id}" is invalid: use letters, digits, ".", "_" or "-" (at most 128)`);
    }
    const problems = findModelProblems(document);
    if (problems.length > 0) {
      throw invalid(`thing model "${id}" has ${problems.length} problem(s)`, problems);
    }
    const model = document as ThingModel;
    const latest = await this.repository.latest(id);
    if (latest && canonicalJson(latest.document) === canonicalJson(model)) {
      return { model: latest, created: false };
    }
    const version: ThingModelVersion = { id, version: (latest?.version ?? 0) + 1, document: model, createdAt: this.now() };
    await this.repository.insert(version);
    return { model: version, created: true };
  }

  /** Stores a version exactly as another node numbered it (edge sync); versions are immutable. */
  async adopt(version: ThingModelVersion): Promise<'applied' | 'unchanged'> {
    if (await this.repository.get(version.id, version.version)) return 'unchanged';
    const problems = findModelProblems(version.document);
    if (problems.length > 0) throw invalid(`thing model "${version.id}" v${version.version} has ${problems.length} problem(s)`, problems);
    await this.repository.insert(version);
    return 'applied';
  }

  async get(id: string, version?: number): Promise<ThingModelVersion> {
    const found = version === undefined ? await this.repository.latest(id) : await this.repository.get(id, version);
    if (!found) {
      throw notFound(version === undefined ? `no thing model "${id}"` : `no version ${version} of thing model "${id}"`);
    }
    return found;
  }

  list(): Promise<ModelSummary[]> {
    return this.repository.list();
  }

  versions(id: string): Promise<ThingModelVersion[]> {
    return this.repository.versions(id);
  }

  async compiled(id: string, version: number): Promise<CompiledThingModel> {
    const key = `${id}@${version}`;
    const cached = this.compiledCache.get(key);
    if (cached) return cached;
    const compiled = compileThingModel(await this.get(id, version));
    this.compiledCache.set(key, compiled);
    return compiled;
  }
}
