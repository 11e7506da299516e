/**
 * Configuration and start-up of `thingloop serve`: precedence (flags > THINGLOOP_* env >
 * config file > defaults), errors that name where a bad value came from, ports already in
 * use, the generated admin key, and the help text. CLI cases run the real command.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { hashSecret } from '../src/access/index.js';
import { ConfigError, resolveConfig, SETTINGS } from '../src/node/index.js';
import { tempDir } from './support/harness.js';
import { type ProcessNode, runCli, startProcessNode } from './support/process-node.js';

/** The ConfigError message resolveConfig throws for these sources. */
function configErrorOf(sources: Parameters<typeof resolveConfig>[0]): string {
  try {
    resolveConfig(sources);
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.message;
  }
  assert.fail('resolveConfig accepted the configuration');
}

describe('resolveConfig', () => {
  let dir: string;
  let yamlFile: string;
  let jsonFile: string;

  before(() => {
    dir = tempDir('thingloop-config-');
    yamlFile = join(dir, 'thingloop.yaml');
    writeFileSync(
      yamlFile,
      ['httpPort: 3333', 'mqtt-port: 3883', 'logLevel: warn', 'retention: 14d', 'maxPayloadBytes: 64KiB', 'durability: full', ''].join(
        '\n',
      ),
    );
    jsonFile = join(dir, 'thingloop.json');
    writeFileSync(jsonFile, JSON.stringify({ httpPort: 4444, 'log-level': 'error', maxClockSkewMs: '2m', dataDir: '/var/lib/tl' }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('with nothing set, every setting is its default', () => {
    const { config, origins } = resolveConfig({ env: {} });
    for (const setting of SETTINGS) {
      assert.equal(config[setting.key], setting.defaultValue, setting.key);
      assert.equal(origins[setting.key], 'default', setting.key);
    }
    assert.equal(config.httpPort, 8080);
    assert.equal(config.mqttPort, 1883);
    assert.equal(config.adminKey, undefined);
  });

  test('a flag beats the environment, which beats a YAML file, which beats the default', () => {
    const env = { THINGLOOP_HTTP_PORT: '2222', THINGLOOP_LOG_LEVEL: 'debug', THINGLOOP_RETENTION: '3d' };
    const flags = { httpPort: '1111', logLevel: 'trace' };

    const all = resolveConfig({ flags, env, configFile: yamlFile });
    assert.equal(all.config.httpPort, 1111);
    assert.equal(all.origins.httpPort, 'flag');
    assert.equal(all.config.logLevel, 'trace');
    assert.equal(all.origins.logLevel, 'flag');
    assert.equal(all.config.retentionMs, 3 * 86_400_000, 'no flag: the environment wins over the file');
    assert.equal(all.origins.retentionMs, 'environment');
    assert.equal(all.config.mqttPort, 3883, 'only the file sets it (by its flag-style name)');
    assert.equal(all.origins.mqttPort, 'config file');
    assert.equal(all.config.maxPayloadBytes, 64 * 1024);
    assert.equal(all.config.durability, 'full');
    assert.equal(all.config.mqttHost, '0.0.0.0', 'set nowhere: the default');
    assert.equal(all.origins.mqttHost, 'default');

    const noFlags = resolveConfig({ env, configFile: yamlFile });
    assert.equal(noFlags.config.httpPort, 2222);
    assert.equal(noFlags.origins.httpPort, 'environment');
    assert.equal(noFlags.config.logLevel, 'debug');

    const fileOnly = resolveConfig({ env: {}, configFile: yamlFile });
    assert.equal(fileOnly.config.httpPort, 3333);
    assert.equal(fileOnly.origins.httpPort, 'config file');
    assert.equal(fileOnly.config.logLevel, 'warn');
    assert.equal(fileOnly.config.retentionMs, 14 * 86_400_000);
  });

  test('a JSON file is read too, by setting key or flag name, with the same precedence', () => {
    const fileOnly = resolveConfig({ env: {}, configFile: jsonFile });
    assert.equal(fileOnly.config.httpPort, 4444);
    assert.equal(fileOnly.config.logLevel, 'error');
    assert.equal(fileOnly.config.maxClockSkewMs, 120_000);
    assert.equal(fileOnly.config.dataDir, '/var/lib/tl');
    const withEnv = resolveConfig({ env: { THINGLOOP_DATA_DIR: '/srv/tl', THINGLOOP_MAX_CLOCK_SKEW: '5s' }, configFile: jsonFile });
    assert.equal(withEnv.config.dataDir, '/srv/tl');
    assert.equal(withEnv.config.maxClockSkewMs, 5000);
    const withFlag = resolveConfig({ flags: { dataDir: '/opt/tl' }, env: { THINGLOOP_DATA_DIR: '/srv/tl' }, configFile: jsonFile });
    assert.equal(withFlag.config.dataDir, '/opt/tl');
  });

  test('an empty environment variable counts as unset', () => {
    const { config, origins } = resolveConfig({ env: { THINGLOOP_HTTP_PORT: '' }, configFile: yamlFile });
    assert.equal(config.httpPort, 3333);
    assert.equal(origins.httpPort, 'config file');
  });

  test('durations and sizes parse', () => {
    const { config } = resolveConfig({
      flags: { retentionMs: '7d', maxPayloadBytes: '1MiB', maxClockSkewMs: '90s', maxSamplesPerMessage: '500' },
      env: {},
    });
    assert.equal(config.retentionMs, 7 * 86_400_000);
    assert.equal(config.maxPayloadBytes, 1024 * 1024);
    assert.equal(config.maxClockSkewMs, 90_000);
    assert.equal(config.maxSamplesPerMessage, 500);
    const sizes = ['262144', '256KiB', '256kb', '2MB'].map(
      (size) => resolveConfig({ env: { THINGLOOP_MAX_PAYLOAD: size } }).config.maxPayloadBytes,
    );
    assert.deepEqual(sizes, [262_144, 262_144, 262_144, 2 * 1024 * 1024]);
    const durations = ['90000ms', '15m', '1h', '2w', '1.5d', '60000'].map(
      (text) => resolveConfig({ env: { THINGLOOP_RETENTION: text } }).config.retentionMs,
    );
    assert.deepEqual(durations, [90_000, 900_000, 3_600_000, 14 * 86_400_000, 129_600_000, 60_000]);
  });

  test('retention under a minute and an empty payload limit are refused as typos', () => {
    for (const text of ['0', '0s', '250ms', '59s']) {
      assert.match(configErrorOf({ env: { THINGLOOP_RETENTION: text } }), /THINGLOOP_RETENTION: .* shorter than the 1m minimum retention/);
    }
    assert.match(configErrorOf({ flags: { maxPayloadBytes: '0' }, env: {} }), /^--max-payload: "0" must be at least 1 byte/);
  });

  test('a bad value names the flag, variable or file it came from', () => {
    const fromEnv = configErrorOf({ env: { THINGLOOP_HTTP_PORT: 'abc' } });
    assert.match(fromEnv, /THINGLOOP_HTTP_PORT/);
    assert.match(fromEnv, /"abc" is not a TCP port/);

    assert.match(configErrorOf({ flags: { mqttPort: '70000' }, env: {} }), /^--mqtt-port: "70000" is not a TCP port/);
    assert.match(configErrorOf({ flags: { retentionMs: '7 days' }, env: {} }), /^--retention: .*duration/);
    assert.match(configErrorOf({ flags: { maxPayloadBytes: '1 TiB' }, env: {} }), /^--max-payload: .*size/);
    assert.match(configErrorOf({ env: { THINGLOOP_MAX_BATCH: '0' } }), /^THINGLOOP_MAX_BATCH: "0" is not a positive integer/);
    assert.match(configErrorOf({ env: { THINGLOOP_DURABILITY: 'fast' } }), /^THINGLOOP_DURABILITY: "fast" must be one of normal, full/);
    assert.match(configErrorOf({ env: { THINGLOOP_LOG_LEVEL: 'loud' } }), /^THINGLOOP_LOG_LEVEL: /);

    const badFile = join(dir, 'bad-value.yaml');
    writeFileSync(badFile, 'mqttPort: many\n');
    const fromFile = configErrorOf({ env: {}, configFile: badFile });
    assert.ok(fromFile.includes(`mqttPort in ${badFile}`), fromFile);
    // The flag wins, so the bad file value is never parsed.
    assert.equal(resolveConfig({ flags: { mqttPort: '0' }, env: {}, configFile: badFile }).config.mqttPort, 0);
  });

  test('a port is decimal digits: blank, hex, exponent and negative forms are refused', () => {
    for (const text of [' ', '0x1F90', '1e3', '-0', '80.5', '-1']) {
      assert.match(
        configErrorOf({ env: { THINGLOOP_HTTP_PORT: text } }),
        /^THINGLOOP_HTTP_PORT: .* is not a TCP port/,
        JSON.stringify(text),
      );
    }
    assert.equal(resolveConfig({ env: { THINGLOOP_HTTP_PORT: '0' } }).config.httpPort, 0);
    assert.equal(resolveConfig({ env: { THINGLOOP_HTTP_PORT: '65535' } }).config.httpPort, 65535);
  });

  test('an unknown config-file key is refused with the list of known keys', () => {
    const file = join(dir, 'typo.yaml');
    writeFileSync(file, 'httpPort: 8081\nhttp_prot: 8082\ncolour: red\n');
    const message = configErrorOf({ env: {}, configFile: file });
    assert.match(message, /unknown settings: http_prot, colour/);
    for (const key of ['httpPort', 'mqttPort', 'dataDir', 'retentionMs', 'maxPayloadBytes', 'durability']) {
      assert.ok(message.includes(key), `the message lists ${key}: ${message}`);
    }
  });

  test('a missing, malformed or non-mapping config file is a ConfigError naming the file', () => {
    const missing = join(dir, 'nope.yaml');
    assert.match(configErrorOf({ env: {}, configFile: missing }), /cannot read config file .*nope\.yaml/);
    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{"httpPort": 80');
    assert.match(configErrorOf({ env: {}, configFile: broken }), /broken\.json is not valid YAML\/JSON/);
    const list = join(dir, 'list.yaml');
    writeFileSync(list, '- httpPort: 80\n');
    assert.match(configErrorOf({ env: {}, configFile: list }), /list\.yaml .*mapping/);
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, '');
    assert.equal(resolveConfig({ env: {}, configFile: empty }).config.httpPort, 8080, 'an empty file sets nothing');
  });
});

/** A plain TCP listener holding a loopback port. */
async function occupyPort(): Promise<{ server: Server; port: number }> {
  const server = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return { server, port: address.port };
}

describe('thingloop serve start-up (real CLI)', () => {
  const dirs: string[] = [];
  const running: ProcessNode[] = [];
  const newDir = () => {
    const dir = tempDir('thingloop-cli-');
    dirs.push(dir);
    return dir;
  };
  after(async () => {
    for (const node of running) await node.kill('SIGKILL');
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  for (const [flag, env, what] of [
    ['--http-port', 'THINGLOOP_HTTP_PORT', 'HTTP'],
    ['--mqtt-port', 'THINGLOOP_MQTT_PORT', 'MQTT'],
  ] as const) {
    test(`${what} port already in use: exit code 2 and stderr says to use ${flag} or ${env}`, async () => {
      const { server, port } = await occupyPort();
      try {
        const other = flag === '--http-port' ? '--mqtt-port' : '--http-port';
        const result = await runCli({
          // CoAP on a free port: the default 5683 may be held by a node another test runs.
          args: [
            'serve',
            '--data-dir',
            newDir(),
            flag,
            String(port),
            other,
            '0',
            '--http-host',
            '127.0.0.1',
            '--mqtt-host',
            '127.0.0.1',
            '--coap-port',
            '0',
          ],
          env: { THINGLOOP_ADMIN_KEY: 'port-test-admin-key-0123' },
        });
        assert.equal(result.code, 2, `stderr:\n${result.stderr}`);
        assert.ok(result.stderr.includes(`${what} port ${port} is already in use`), result.stderr);
        assert.ok(result.stderr.includes(`${flag} or ${env}`), result.stderr);
        assert.doesNotMatch(result.stdout, /cloud node started/);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    });
  }

  test('a bad setting stops the CLI with exit code 2 and names its source', async () => {
    const result = await runCli({ args: ['serve', '--data-dir', newDir()], env: { THINGLOOP_HTTP_PORT: 'abc' } });
    assert.equal(result.code, 2, `stderr:\n${result.stderr}`);
    assert.match(result.stderr, /thingloop: THINGLOOP_HTTP_PORT: "abc" is not a TCP port/);
    const file = join(newDir(), 'thingloop.yaml');
    writeFileSync(file, 'colour: red\n');
    const unknown = await runCli({ args: ['serve', '--config', file] });
    assert.equal(unknown.code, 2, `stderr:\n${unknown.stderr}`);
    assert.match(unknown.stderr, /unknown settings: colour; known: .*httpPort/);
  });

  test('without THINGLOOP_ADMIN_KEY the first start prints a generated key once; later starts keep it and never store it in clear', async () => {
    const dataDir = newDir();
    const first = await startProcessNode({ dataDir });
    running.push(first);
    const [key] = await first.waitForOutput('stderr', /tla_[A-Za-z0-9_-]{43}/);
    assert.equal((await first.api('/api/v1/devices', { auth: key })).status, 200);
    assert.equal((await first.api('/api/v1/devices', { auth: `${key}x` })).status, 401);
    assert.equal((await first.api('/api/v1/devices')).status, 401);
    assert.deepEqual(await first.kill('SIGTERM'), { code: 0, signal: null });
    // After the exit every byte of output has been read.
    assert.equal(first.stderr().split(key).length - 1, 1, `the key is printed exactly once:\n${first.stderr()}`);
    assert.ok(!first.stdout().includes(key), 'the key is not in the JSON log');

    const second = await startProcessNode({ dataDir });
    running.push(second);
    assert.equal((await second.api('/api/v1/devices', { auth: key })).status, 200, 'the generated key still works');
    assert.deepEqual(await second.kill('SIGTERM'), { code: 0, signal: null });
    assert.doesNotMatch(second.stderr(), /tla_|Admin API key/, 'no key is printed on a later start');

    const files = readdirSync(dataDir).map((name) => readFileSync(join(dataDir, name)));
    assert.ok(files.length > 0);
    const bytes = Buffer.concat(files);
    assert.equal(bytes.indexOf(key), -1, 'the key is not in the data directory in clear');
    assert.notEqual(bytes.indexOf(hashSecret(key)), -1, "the key's SHA-256 is stored");

    // A configured key replaces the stored one.
    const third = await startProcessNode({ dataDir, adminKey: 'chosen-admin-key-0123456' });
    running.push(third);
    assert.equal((await third.api('/api/v1/devices', { auth: 'chosen-admin-key-0123456' })).status, 200);
    assert.equal((await third.api('/api/v1/devices', { auth: key })).status, 401, 'the generated key was replaced');
    assert.deepEqual(await third.kill('SIGTERM'), { code: 0, signal: null });
    assert.doesNotMatch(third.stderr(), /tla_|Admin API key/);
  });

  test('thingloop --help and thingloop serve --help exit 0 and list the commands and flags', async () => {
    const [main, serve] = await Promise.all([runCli({ args: ['--help'] }), runCli({ args: ['serve', '--help'] })]);
    assert.equal(main.code, 0, main.stderr);
    assert.match(main.stdout, /Usage: thingloop/);
    assert.match(main.stdout, /serve/);
    assert.match(main.stdout, /--version/);
    assert.equal(serve.code, 0, serve.stderr);
    assert.match(serve.stdout, /Usage: thingloop serve/);
    for (const setting of SETTINGS) {
      assert.ok(serve.stdout.includes(`--${setting.flag} <value>`), `serve --help lists --${setting.flag}`);
      assert.ok(serve.stdout.includes(setting.env), `serve --help names ${setting.env}`);
    }
    assert.match(serve.stdout, /--config <file>/);
  });
});
