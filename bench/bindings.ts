/**
 * `npm run bench:bindings`: the device bindings' figures in one run, one after the other so they
 * do not share the two cores: Modbus TCP polling (200 PLCs × 50 registers at 1 s), OPC UA
 * monitored items (10,000 at 1 s) and CoAP telemetry (confirmable POSTs). Each part also runs
 * alone (`node --import tsx bench/bindings-<protocol>.ts --help`). Figures go to stdout and are
 * appended to docs/benchmarks.md.
 */
import { appendFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { runCoapBench } from './bindings-coap.js';
import { runModbusBench } from './bindings-modbus.js';
import { runOpcuaBench } from './bindings-opcua.js';

type Figures = Record<string, number | string>;

const PARTS: Record<string, { title: string; run: () => Promise<Figures> }> = {
  modbus: { title: 'Modbus TCP polling, 200 PLCs × 50 registers at 1 s', run: () => runModbusBench() },
  opcua: { title: 'OPC UA, 10,000 monitored items at 1 s', run: () => runOpcuaBench() },
  coap: { title: 'CoAP telemetry, confirmable POSTs', run: () => runCoapBench() },
};

function format(value: number | string): string {
  if (typeof value === 'string') return value;
  return Number.isInteger(value) ? value.toLocaleString('en-US') : value.toLocaleString('en-US', { maximumFractionDigits: 2 });
}

function table(figures: Figures): string[] {
  return ['| figure | value |', '| --- | --- |', ...Object.entries(figures).map(([name, value]) => `| ${name} | ${format(value)} |`)];
}

const program = new Command()
  .name('bench:bindings')
  .description('Figures of the Modbus TCP, OPC UA and CoAP bindings, appended to docs/benchmarks.md')
  .option('--only <parts>', `comma-separated subset of ${Object.keys(PARTS).join(', ')}`)
  .option('--no-write', 'do not append the figures to docs/benchmarks.md')
  .parse();
const options = program.opts<{ only?: string; write: boolean }>();
const chosen = options.only ? options.only.split(',').map((part) => part.trim()) : Object.keys(PARTS);
for (const part of chosen) {
  if (!PARTS[part]) program.error(`unknown part "${part}": choose from ${Object.keys(PARTS).join(', ')}`);
}

const lines = [
  '',
  `## Device bindings (issue #11): \`npm run bench:bindings\`, ${new Date().toISOString().slice(0, 16)}Z`,
  '',
  `Each part alone on the 2-core machine, one after the other (load average at the start: ${loadavg()[0]?.toFixed(1)}).`,
];
for (const part of chosen) {
  const { title, run } = PARTS[part] as (typeof PARTS)[string];
  process.stderr.write(`bench:bindings: ${title}…\n`);
  const figures = await run();
  lines.push('', `### ${title}`, '', ...table(figures));
}
lines.push('');
process.stdout.write(`${lines.join('\n')}\n`);
if (options.write) appendFileSync(fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url)), lines.join('\n'));
