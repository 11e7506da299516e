/**
 * Closed-loop benchmark (issue #4): sample published by a device → agent judges → desired
 * state set → desired received by the same device. A node in its own process, N SDK devices
 * over MQTT in a fleet process (bench/sdk-fleet.ts).
 *
 * One agent definition per model (`perceive.devices.model`), so every device runs its own
 * instance of it: `when: temp > 50`, `clear: temp < 30`, `set setpoint = temp`. Devices alternate
 * a unique high value (fires) and a low one (clears), so each high sample causes exactly one
 * decision, matched at the device by value. `--agents K` adds K-1 more definitions on the
 * same model that never fire: K agent instances are evaluated per sample.
 *
 *   npm run bench:agents -- --devices 1000 --rate 1000 --duration 20
 */
import { Command } from 'commander';
import { FleetProcess } from './lib/fleet-protocol.js';
import { ACTUATOR_MODEL } from './lib/models.js';
import { positive } from './lib/options.js';
import { ProcSampler } from './lib/proc-stats.js';
import { parsePrometheus, total } from './lib/prometheus.js';
import { api, registerFleet, removeData, scrape, startNode, stopNode } from './lib/thingloop-node.js';

interface Options {
  devices: number;
  rate: number;
  duration: number;
  warmup: number;
  agents: number;
}

const agentDefinition = (id: string, threshold: number) => ({
  id,
  mode: 'auto',
  perceive: { devices: { model: ACTUATOR_MODEL.id } },
  judge: { when: `temp > ${threshold}`, clear: `temp < 30` },
  act: { steps: [{ set: { property: 'setpoint', value: 'temp' } }] },
});

async function main(): Promise<void> {
  const options = new Command()
    .name('bench:agents')
    .description('Agent loop latency (device sample → desired at the device) with N SDK devices over MQTT')
    .option('--devices <n>', 'simulated devices (SDK connections)', positive, 1000)
    .option('--rate <samples/s>', 'aggregate sample rate (half of them fire the agent)', positive, 1000)
    .option('--duration <s>', 'measured seconds', positive, 20)
    .option('--warmup <s>', 'seconds before measuring', positive, 3)
    .option('--agents <k>', 'agent definitions on the model (1 fires, the rest never do)', positive, 1)
    .parse()
    .opts<Options>();

  const node = await startNode();
  let fleet: FleetProcess | undefined;
  try {
    const devices = await registerFleet(node, options.devices, 16, ACTUATOR_MODEL);
    await api(node, 'POST', '/agents', agentDefinition('bench-loop', 50));
    for (let k = 1; k < options.agents; k++) await api(node, 'POST', '/agents', agentDefinition(`bench-idle-${k}`, 1000 + k));
    fleet = await FleetProcess.start({ mqttUrl: node.mqttUrl, devices, connectConcurrency: 50 });
    process.stderr.write(`[fleet] ${options.devices} SDK devices connected in ${fleet.connectSeconds.toFixed(1)} s\n`);
    const sampler = new ProcSampler(node.pid);
    sampler.begin();
    const before = parsePrometheus(await scrape(node));
    sampler.mark();
    const result = await fleet.ask(
      { type: 'loop', rate: options.rate, warmupSeconds: options.warmup, seconds: options.duration },
      'loop-result',
    );
    const cpu = sampler.window();
    sampler.stop();
    const after = parsePrometheus(await scrape(node));
    const accepted = total(after, 'thingloop_messages_accepted_total') - total(before, 'thingloop_messages_accepted_total');
    const seconds = options.warmup + options.duration + 1;
    const l = result.latency;
    const lines = [
      `Agent loop — ${options.devices} SDK devices, ${options.agents} agent definition(s) on the model (1 fires), ${options.rate} samples/s, ${options.duration} s measured`,
      '',
      '| measure | figure |',
      '| --- | ---: |',
      `| loops measured (sample → desired at the device) | ${l.count} (${(l.count / options.duration).toFixed(0)}/s) |`,
      `| loop latency p50 / p90 / p99 / max | ${l.p50Ms.toFixed(1)} / ${l.p90Ms.toFixed(1)} / ${l.p99Ms.toFixed(1)} / ${l.maxMs.toFixed(1)} ms |`,
      `| high samples left unanswered at the end | ${result.open} |`,
      `| samples accepted by the node | ${accepted} (${(accepted / seconds).toFixed(0)}/s) |`,
      `| agent evaluations/s (samples × ${options.agents} agents) | ${((accepted / seconds) * options.agents).toFixed(0)} |`,
      `| server CPU avg / peak | ${cpu.cpuAvgPercent.toFixed(0)} % / ${cpu.cpuPeakPercent.toFixed(0)} % |`,
      `| server RSS peak | ${(cpu.rssPeakBytes / 1048576).toFixed(0)} MiB |`,
    ];
    process.stdout.write(`\n${lines.join('\n')}\n`);
  } finally {
    await fleet?.stop();
    await stopNode(node);
    removeData(node);
  }
}

main().catch((error: Error) => {
  process.stderr.write(`bench:agents: ${error.stack ?? error.message}\n`);
  process.exit(1);
});
