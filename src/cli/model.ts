import { readFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import type { Command } from 'commander';
import { parse as parseYaml } from 'yaml';
import { MODEL_ID_PATTERN, type ModelSummary, type ThingModelVersion } from '../model/index.js';
import { isNodeId, SECURITY_MODES, SECURITY_POLICIES, thingModelFromServer } from '../transport/opcua/index.js';
import { type ApiOptions, clientFor, withApiOptions } from './api-client.js';
import { formatFields, formatTable, printJson, time } from './table.js';

interface FromOpcuaOptions {
  node?: string;
  id?: string;
  securityMode: string;
  securityPolicy?: string;
  dataDir: string;
  timeout: string;
}

function oneOf<T extends string>(value: string, allowed: readonly T[], flag: string): T {
  const found = allowed.find((name) => name.toLowerCase() === value.toLowerCase());
  if (!found) throw new Error(`${flag} must be one of ${allowed.join(', ')}`);
  return found;
}

/** `thingloop model …`: thing model tools. */
export function addModelCommand(program: Command): void {
  const model = program
    .command('model')
    .description('thing models: list, show and store them on a running node (its HTTP API: --url, --key); draft one from an OPC UA server');
  addModelApiCommands(model);
  model
    .command('from-opcua')
    .description('browse an OPC UA server and print a draft WoT Thing Model (JSON) with a property for every readable variable')
    .argument('<endpoint>', 'server endpoint, e.g. opc.tcp://10.0.0.7:4840/UA/Line2')
    .option('--node <nodeId>', 'browse below this node instead of the Objects folder, e.g. ns=1;s=Line2')
    .option('--id <modelId>', 'the model id it will be registered under (its title, and the PUT in the hint)')
    .option('--security-mode <mode>', `message security: ${SECURITY_MODES.join(', ')}`, 'None')
    .option('--security-policy <policy>', `security policy: ${SECURITY_POLICIES.join(', ')} (default Basic256Sha256 when signing)`)
    .option(
      '--data-dir <dir>',
      'data directory whose opcua-pki folder holds the client certificate (the node uses the same)',
      './.thingloop',
    )
    .option('--timeout <ms>', 'deadline of each request to the server', '10000')
    .addHelpText(
      'after',
      [
        '',
        'Each property carries its form {"href": "{{endpoint}}", "opcua:nodeId": …}: register the model, then devices',
        'with {"binding": {"protocol": "opcua", "endpoint": "opc.tcp://…"}}. Types come from the DataType, readOnly',
        'from the AccessLevel, unit from EngineeringUnits and minimum/maximum from EURange where the server has them.',
        'Progress goes to stderr, the model to stdout.',
        '',
        'Example:',
        '  thingloop model from-opcua opc.tcp://localhost:4840/UA/Line2 --node "ns=1;s=Line2.Pump1" --id line2-pump > pump.json',
        '  curl -X PUT -H "Authorization: Bearer $KEY" -H "content-type: application/json" \\',
        '       --data @pump.json http://localhost:8080/api/v1/models/line2-pump',
        '',
      ].join('\n'),
    )
    .action(async (endpoint: string, options: FromOpcuaOptions) => {
      if (!/^opc\.tcp:\/\/[^/\s]+/i.test(endpoint))
        throw new Error(`"${endpoint}" is not an OPC UA endpoint: give opc.tcp://host:port/path`);
      if (options.node !== undefined && !isNodeId(options.node))
        throw new Error(`--node "${options.node}" is not a NodeId: use ns=1;s=Line2 or i=85`);
      if (options.id !== undefined && !MODEL_ID_PATTERN.test(options.id))
        throw new Error(`--id "${options.id}" must match ${MODEL_ID_PATTERN.source}`);
      const timeoutMs = Number(options.timeout);
      if (!Number.isInteger(timeoutMs) || timeoutMs < 100)
        throw new Error('--timeout must be a whole number of milliseconds (at least 100)');
      const securityMode = oneOf(options.securityMode, SECURITY_MODES, '--security-mode');
      const securityPolicy =
        options.securityPolicy === undefined ? undefined : oneOf(options.securityPolicy, SECURITY_POLICIES, '--security-policy');
      // stdout is the model (piped to a file or curl): node-opcua's notices ("Creating default
      // certificate…") are progress like ours and go to stderr.
      console.log = console.error;
      const document = await thingModelFromServer({
        endpoint,
        ...(options.node ? { node: options.node } : {}),
        ...(options.id ? { title: options.id } : {}),
        securityMode,
        ...(securityPolicy ? { securityPolicy } : {}),
        pkiDir: join(options.dataDir, 'opcua-pki'),
        timeoutMs,
        progress: (line) => process.stderr.write(`from-opcua: ${line}\n`),
      });
      process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
      const count = Object.keys(document.properties ?? {}).length;
      const id = options.id ?? 'my-model';
      process.stderr.write(`from-opcua: ${count} properties; register with PUT /api/v1/models/${id}\n`);
      // node-opcua keeps timers alive after disconnect; the model is printed, so the command is done.
      process.exit(0);
    });
}

const examples = (...lines: string[]) => ['', 'Example:', ...lines.map((line) => `  ${line}`), ''].join('\n');

const modelPath = (id: string) => `/api/v1/models/${encodeURIComponent(id)}`;

/** A model file: JSON, or YAML (.yaml/.yml, or anything that is not JSON). */
async function readModelFile(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new Error(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    return extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text);
  } catch (error) {
    throw new Error(`${file} is not valid ${extname(file).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message}`);
  }
}

/** `thingloop model list|show|put`: the node's thing model catalog. */
function addModelApiCommands(model: Command): void {
  withApiOptions(model.command('list').description('thing models on the node (latest version of each)'))
    .addHelpText('after', examples('thingloop model list', 'thingloop model list --json'))
    .action(async (options: ApiOptions) => {
      const { items } = await clientFor(options).get<{ items: ModelSummary[] }>('/api/v1/models', { doing: 'list thing models' });
      if (options.json) return printJson(items);
      process.stdout.write(
        formatTable(
          ['id', 'title', 'version', 'updated'],
          items.map((m) => [m.id, m.title, m.latestVersion, time(m.updatedAt)]),
          '(no thing models)',
        ),
      );
    });

  withApiOptions(model.command('show').description('one thing model: its document (latest version, or --version)'))
    .argument('<id>', 'model id')
    .option('--version <n>', 'this version instead of the latest')
    .addHelpText('after', examples('thingloop model show pump', 'thingloop model show pump --version 1 --json > pump.json'))
    .action(async (id: string, options: ApiOptions & { version?: string }) => {
      const version = options.version === undefined ? undefined : Number(options.version);
      if (version !== undefined && (!Number.isInteger(version) || version < 1)) throw new Error('--version must be a whole number from 1');
      const stored = await clientFor(options).get<ThingModelVersion>(
        `${modelPath(id)}${version !== undefined ? `?version=${version}` : ''}`,
        { doing: `read thing model "${id}"`, missing: `thing model "${id}"${version !== undefined ? ` version ${version}` : ''}` },
      );
      if (options.json) return printJson(stored);
      const { document } = stored;
      const names = (affordances: Record<string, unknown> | undefined) =>
        affordances && Object.keys(affordances).length > 0 ? Object.keys(affordances).join(', ') : undefined;
      process.stdout.write(
        formatFields([
          ['id', stored.id],
          ['version', stored.version],
          ['title', document.title],
          ['created', time(stored.createdAt)],
          ['properties', names(document.properties)],
          ['actions', names(document.actions)],
          ['events', names(document.events)],
        ]),
      );
    });

  withApiOptions(
    model.command('put').description('store a thing model from a file (JSON or YAML) as a new version; an unchanged one keeps its version'),
  )
    .argument('<file>', 'the W3C WoT Thing Model, .json or .yaml')
    .option('--id <id>', "the model id (default: the file's name without its extension)")
    .addHelpText('after', examples('thingloop model put examples/models/pump.json', 'thingloop model put line2.yaml --id line2-pump'))
    .action(async (file: string, options: ApiOptions & { id?: string }) => {
      const id = options.id ?? basename(file, extname(file));
      if (!MODEL_ID_PATTERN.test(id)) throw new Error(`the model id "${id}" must match ${MODEL_ID_PATTERN.source}: give --id`);
      const document = await readModelFile(file);
      const { status, body } = await clientFor(options).call<ThingModelVersion>(
        'PUT',
        modelPath(id),
        { doing: `store thing model "${id}"` },
        { body: document },
      );
      if (options.json) return printJson({ ...body, created: status === 201 });
      process.stdout.write(status === 201 ? `stored ${id} version ${body.version}\n` : `${id} unchanged (version ${body.version})\n`);
    });
}
