import { readdirSync, readFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DomainError } from '../errors/index.js';
import type { Logger } from '../observability/index.js';
import type { AgentEngine } from './engine.js';

const DEFINITION_EXTENSIONS = ['.yaml', '.yml', '.json'];

/** The files of a directory that hold agent definitions, in the order they load. */
export function definitionFiles(names: string[]): string[] {
  return names.filter((file) => DEFINITION_EXTENSIONS.includes(extname(file))).sort();
}

/** A definition file's text as the value the engine validates: JSON by extension, YAML otherwise. */
export function parseDefinitionFile(name: string, text: string): unknown {
  return extname(name) === '.json' ? JSON.parse(text) : parseYaml(text);
}

/**
 * Loads agent definitions from a directory (`--agents-dir`). A file that does not parse or
 * validate is reported with every problem and skipped: one bad file must not keep the node from
 * starting.
 */
export async function loadAgentFiles(engine: AgentEngine, directory: string, logger: Logger): Promise<string[]> {
  const loaded: string[] = [];
  let files: string[];
  try {
    files = definitionFiles(readdirSync(directory));
  } catch (error) {
    logger.error({ directory, err: (error as Error).message }, 'cannot read the agents directory (--agents-dir)');
    return loaded;
  }
  for (const file of files) {
    const path = join(directory, file);
    try {
      const definition = parseDefinitionFile(file, readFileSync(path, 'utf8'));
      const stored = await engine.put(definition, { create: false });
      loaded.push(stored.id);
    } catch (error) {
      const details = error instanceof DomainError ? error.details : undefined;
      logger.error({ file: path, err: (error as Error).message, problems: details }, 'agent definition skipped');
    }
  }
  return loaded;
}
