/**
 * Summarises a V8 .cpuprofile (from `bench:ingest --cpu-prof DIR`): self time by area of
 * the code, the hottest functions, and inclusive time of the Thingloop functions on the
 * ingest path. `node --import tsx bench/profile-summary.ts FILE [--top N]`
 */
import { readFileSync } from 'node:fs';
import { Command } from 'commander';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** First match wins: specific libraries before the generic node_modules bucket. */
const AREAS: [string, (frame: CallFrame) => boolean][] = [
  ['idle', (f) => f.functionName === '(idle)'],
  ['garbage collection', (f) => f.functionName === '(garbage collector)'],
  [
    'MQTT broker (aedes, mqtt-packet, streams)',
    (f) => /node_modules\/(aedes|mqtt-packet|bl|readable-stream|fastq|qlobber|aedes-)/.test(f.url),
  ],
  [
    'SQLite (better-sqlite3)',
    (f) => /better-sqlite3/.test(f.url) || (['run', 'get', 'all', 'exec', 'prepare'].includes(f.functionName) && f.url === ''),
  ],
  ['ajv validators (generated code)', (f) => /^validate\d*$/.test(f.functionName) || /node_modules\/ajv/.test(f.url)],
  ['metrics (prom-client)', (f) => /prom-client/.test(f.url)],
  ['logging (pino)', (f) => /pino/.test(f.url)],
  ['HTTP (fastify)', (f) => /fastify|find-my-way|light-my-request/.test(f.url)],
  ['other node_modules', (f) => /node_modules/.test(f.url)],
  ['Thingloop src/', (f) => /\/src\//.test(f.url)],
  ['Node.js internals (net, streams, timers)', (f) => f.url.startsWith('node:')],
  ['V8 builtins / native (JSON, Buffer, …)', () => true],
];

function area(frame: CallFrame): string {
  return (AREAS.find(([, test]) => test(frame)) as [string, unknown])[0];
}

function shortUrl(url: string): string {
  return url.replace(/^file:\/\/.*?\/(node_modules|src)\//, '$1/');
}

function selfTimes(profile: CpuProfile): Map<number, number> {
  const self = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return self;
}

/** Inclusive time of each function name in src/, counted once per stack (recursion-safe). */
function inclusiveSrc(profile: CpuProfile, self: Map<number, number>): Map<string, number> {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  const walk = (id: number, onStack: Set<string>) => {
    const node = byId.get(id);
    if (!node) return;
    const { functionName, url } = node.callFrame;
    const key = /\/src\//.test(url) && functionName ? `${functionName} (${shortUrl(url)})` : '';
    const added = key !== '' && !onStack.has(key);
    if (added) onStack.add(key);
    const time = self.get(id) ?? 0;
    for (const name of onStack) totals.set(name, (totals.get(name) ?? 0) + time);
    for (const child of node.children ?? []) walk(child, onStack);
    if (added) onStack.delete(key);
  };
  walk(profile.nodes[0]!.id, new Set());
  return totals;
}

function main(): void {
  const program = new Command()
    .name('profile-summary')
    .argument('<file>', '.cpuprofile written by node --cpu-prof')
    .option('--top <n>', 'rows per table', (v) => Number(v), 25)
    .parse();
  const top = program.opts<{ top: number }>().top;
  const profile = JSON.parse(readFileSync(program.args[0] as string, 'utf8')) as CpuProfile;
  const self = selfTimes(profile);
  const totalUs = profile.endTime - profile.startTime;
  const byArea = new Map<string, number>();
  const byFunction = new Map<string, number>();
  for (const node of profile.nodes) {
    const time = self.get(node.id) ?? 0;
    const a = area(node.callFrame);
    byArea.set(a, (byArea.get(a) ?? 0) + time);
    const name = `${node.callFrame.functionName || '(anonymous)'} ${shortUrl(node.callFrame.url)}:${node.callFrame.lineNumber + 1}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + time);
  }
  const busyUs = totalUs - (byArea.get('idle') ?? 0);
  // Percentages are of wall time: idle shows how much headroom the event loop had.
  const pct = (us: number, of: number) => `${((us / of) * 100).toFixed(1).padStart(5)} %`;
  const print = (title: string, entries: Map<string, number>, of: number, n: number) => {
    process.stdout.write(`\n${title}\n`);
    for (const [name, us] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, n)) process.stdout.write(`${pct(us, of)}  ${name}\n`);
  };
  process.stdout.write(`profile: ${(totalUs / 1e6).toFixed(1)} s wall, ${(busyUs / 1e6).toFixed(1)} s busy (not idle)\n`);
  print('self time by area (% of wall time)', byArea, totalUs, 20);
  print('hottest functions, self time (% of wall time)', byFunction, totalUs, top);
  print('Thingloop functions, inclusive time (% of wall time)', inclusiveSrc(profile, self), totalUs, top);
}

main();
