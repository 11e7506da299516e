import { mkdir } from 'node:fs/promises';
import type { ClientSession, NodeId, ReferenceDescription } from 'node-opcua';
import type { ThingModel } from '../../model/index.js';
import { loadOpcua, type OpcuaModule } from './connection.js';
import { type BrowsedArgument, type BrowsedMethod, type BrowsedVariable, draftThingModel, uneceCode } from './draft-model.js';
import type { SecurityModeName, SecurityPolicyName } from './mapping.js';
import { BuiltInType } from './values.js';

/**
 * Browses a server's address space below a node (the Objects folder unless told) and drafts a
 * thing model from it: `thingloop model from-opcua`. The Server object (diagnostics every server
 * has) is skipped; the walk is bounded in depth and node count so a huge server still answers.
 */

export interface BrowseOptions {
  endpoint: string;
  /** Start node; default the Objects folder (i=85). */
  node?: string;
  title?: string;
  securityMode?: SecurityModeName;
  securityPolicy?: SecurityPolicyName;
  /** Client certificate folder (created when missing). */
  pkiDir: string;
  timeoutMs?: number;
  maxDepth?: number;
  maxNodes?: number;
  progress?: (line: string) => void;
}

const OBJECTS_FOLDER = 'ns=0;i=85';
const SERVER_OBJECT = 'ns=0;i=2253';
const HIERARCHICAL_REFERENCES = 'ns=0;i=33';
const HAS_PROPERTY = 'ns=0;i=46';

function deadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function browseAll(
  session: ClientSession,
  opcua: OpcuaModule,
  nodeId: string,
  referenceTypeId: string,
  nodeClassMask: number,
): Promise<ReferenceDescription[]> {
  const result = await session.browse({
    nodeId,
    browseDirection: opcua.BrowseDirection.Forward,
    referenceTypeId,
    includeSubtypes: true,
    nodeClassMask,
    resultMask: 63,
  });
  const references = [...(result.references ?? [])];
  let continuation = result.continuationPoint;
  while (continuation && continuation.length > 0) {
    const next = await session.browseNext(continuation, false);
    references.push(...(next.references ?? []));
    continuation = next.continuationPoint;
  }
  return references;
}

async function builtInOf(session: ClientSession, opcua: OpcuaModule, dataType: NodeId): Promise<number> {
  if (dataType.namespace === 0 && typeof dataType.value === 'number' && dataType.value <= BuiltInType.DiagnosticInfo) return dataType.value;
  return Number(await opcua.findBasicDataType(session, dataType));
}

/** Reads what a variable's model property needs: type, rank, access, description, EURange, EngineeringUnits. */
async function describeVariable(
  session: ClientSession,
  opcua: OpcuaModule,
  nodeId: string,
  path: string[],
): Promise<BrowsedVariable | undefined> {
  const { AttributeIds } = opcua;
  const [dataType, valueRank, accessLevel, description] = await session.read([
    { nodeId, attributeId: AttributeIds.DataType },
    { nodeId, attributeId: AttributeIds.ValueRank },
    { nodeId, attributeId: AttributeIds.AccessLevel },
    { nodeId, attributeId: AttributeIds.Description },
  ]);
  const access = Number(accessLevel?.value.value ?? 0);
  // Bit 0 CurrentRead, bit 1 CurrentWrite (Part 3, 8.57).
  if ((access & 1) === 0 || !dataType?.value.value) return undefined;
  const variable: BrowsedVariable = {
    nodeId,
    path,
    builtIn: await builtInOf(session, opcua, dataType.value.value as NodeId),
    valueRank: typeof valueRank?.value.value === 'number' ? valueRank.value.value : -1,
    writable: (access & 2) !== 0,
  };
  const text = description?.value.value?.text;
  if (typeof text === 'string' && text.trim() !== '') variable.description = text.trim();
  const properties = await browseAll(session, opcua, nodeId, HAS_PROPERTY, 2);
  const wanted = properties.filter((reference) => ['EURange', 'EngineeringUnits'].includes(reference.browseName.name ?? ''));
  if (wanted.length > 0) {
    const values = await session.read(
      wanted.map((reference) => ({ nodeId: reference.nodeId.toString(), attributeId: AttributeIds.Value })),
    );
    wanted.forEach((reference, index) => {
      const value: unknown = values[index]?.value.value;
      if (value === null || typeof value !== 'object') return;
      if (reference.browseName.name === 'EURange' && 'low' in value && 'high' in value) {
        const { low, high } = value;
        if (typeof low === 'number' && typeof high === 'number' && Number.isFinite(low) && Number.isFinite(high))
          variable.range = { low, high };
      } else if (reference.browseName.name === 'EngineeringUnits' && 'unitId' in value) {
        const code = typeof value.unitId === 'number' ? uneceCode(value.unitId) : undefined;
        const display =
          'displayName' in value && value.displayName !== null && typeof value.displayName === 'object' && 'text' in value.displayName
            ? value.displayName.text
            : undefined;
        variable.unit = { ...(code ? { code } : {}), ...(typeof display === 'string' ? { text: display } : {}) };
      }
    });
  }
  return variable;
}

function argumentsOf(
  list: { name?: string | null; dataType: NodeId; valueRank?: number; description?: { text?: string | null } }[],
  session: ClientSession,
  opcua: OpcuaModule,
): Promise<BrowsedArgument[]> {
  return Promise.all(
    list.map(async (argument, index) => ({
      name: argument.name && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(argument.name) ? argument.name : `arg${index}`,
      builtIn: await builtInOf(session, opcua, argument.dataType),
      valueRank: argument.valueRank ?? -1,
      ...(argument.description?.text ? { description: argument.description.text } : {}),
    })),
  );
}

/** Connects, walks the address space below the node, and returns the drafted thing model. */
export async function thingModelFromServer(options: BrowseOptions): Promise<ThingModel> {
  const opcua = await loadOpcua();
  const timeoutMs = options.timeoutMs ?? 10_000;
  const maxDepth = options.maxDepth ?? 8;
  const maxNodes = options.maxNodes ?? 5000;
  const progress = options.progress ?? (() => undefined);
  await mkdir(options.pkiDir, { recursive: true, mode: 0o700 });
  const certificates = new opcua.OPCUACertificateManager({ rootFolder: options.pkiDir, automaticallyAcceptUnknownCertificate: true });
  await certificates.initialize();
  const mode = options.securityMode ?? 'None';
  const client = opcua.OPCUAClient.create({
    applicationName: 'Thingloop model from-opcua',
    endpointMustExist: false,
    securityMode: opcua.MessageSecurityMode[mode],
    securityPolicy: opcua.SecurityPolicy[options.securityPolicy ?? (mode === 'None' ? 'None' : 'Basic256Sha256')],
    clientCertificateManager: certificates,
    connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
    transportTimeout: timeoutMs,
  });
  try {
    progress(`connecting to ${options.endpoint}`);
    await deadline(client.connect(options.endpoint), timeoutMs, `connecting to ${options.endpoint}`).catch((error: unknown) => {
      throw new Error(
        `cannot reach ${options.endpoint}: ${error instanceof Error ? error.message : String(error)}. Check the host, port and path (opc.tcp://host:4840/path), that the server runs, and that a firewall lets the port through`,
      );
    });
    const session = await deadline(client.createSession(), timeoutMs, 'creating a session');
    try {
      const start = options.node ?? OBJECTS_FOLDER;
      const [startName] = await session.read([{ nodeId: start, attributeId: opcua.AttributeIds.DisplayName }]);
      if (!startName || startName.statusCode.isNotGood()) {
        throw new Error(
          `the server has no node ${start} (${startName?.statusCode.name ?? 'no answer'}); pass --node with a NodeId such as ns=1;s=Line2`,
        );
      }
      const variables: BrowsedVariable[] = [];
      const methods: BrowsedMethod[] = [];
      const visited = new Set<string>([start]);
      // Breadth first: the shallow names come first in the model.
      let frontier: { nodeId: string; path: string[] }[] = [{ nodeId: start, path: [] }];
      for (let depth = 0; depth < maxDepth && frontier.length > 0 && visited.size < maxNodes; depth++) {
        const next: typeof frontier = [];
        for (const node of frontier) {
          // Objects, variables and methods below objects and folders.
          const references = await deadline(
            browseAll(session, opcua, node.nodeId, HIERARCHICAL_REFERENCES, 1 | 2 | 4),
            timeoutMs,
            `browsing ${node.nodeId}`,
          );
          for (const reference of references) {
            const id = reference.nodeId.toString();
            if (visited.has(id) || id === SERVER_OBJECT || visited.size >= maxNodes) continue;
            visited.add(id);
            const path = [...node.path, reference.browseName.name ?? id];
            if (reference.nodeClass === opcua.NodeClass.Object) {
              next.push({ nodeId: id, path });
            } else if (reference.nodeClass === opcua.NodeClass.Variable) {
              const variable = await deadline(describeVariable(session, opcua, id, path), timeoutMs, `reading ${id}`);
              if (variable) variables.push(variable);
            } else if (reference.nodeClass === opcua.NodeClass.Method) {
              const definition = await deadline(
                session.getArgumentDefinition(opcua.coerceNodeId(id)),
                timeoutMs,
                `reading ${id} arguments`,
              ).catch(() => undefined);
              if (!definition) continue;
              methods.push({
                objectId: node.nodeId,
                nodeId: id,
                path,
                inputs: await argumentsOf(definition.inputArguments, session, opcua),
                outputs: await argumentsOf(definition.outputArguments, session, opcua),
              });
            }
          }
        }
        progress(`depth ${depth + 1}: ${visited.size} nodes, ${variables.length} readable variables, ${methods.length} methods`);
        frontier = next;
      }
      if (visited.size >= maxNodes) progress(`stopped at ${maxNodes} nodes: pass --node to draft a model of a smaller part`);
      const title =
        options.title ?? (start === OBJECTS_FOLDER ? `OPC UA server ${options.endpoint}` : (startName.value.value?.text ?? start));
      return draftThingModel(variables, methods, {
        title,
        description: `Drafted from ${options.endpoint} below ${start} by thingloop model from-opcua`,
      });
    } finally {
      await deadline(session.close(), timeoutMs, 'closing the session').catch(() => undefined);
    }
  } finally {
    await deadline(client.disconnect(), timeoutMs, 'disconnecting').catch(() => undefined);
    await certificates.dispose().catch(() => undefined);
  }
}
