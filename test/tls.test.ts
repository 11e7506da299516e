/**
 * TLS on every listener, with real clients: mosquitto_pub/mosquitto_sub and MQTT.js on MQTTS
 * (token and client-certificate logins), MQTT.js over ws:// and wss://, https with the dev CA,
 * refused certificates (wrong CA, expired, revoked) counted by reason, a certificate replaced on
 * disk seen by the next connection, --plaintext false, and an edge linked to its cloud over TLS.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import mqtt from 'mqtt';
import { StartupError, startCloudNode } from '../src/node/index.js';
import { createLogger } from '../src/observability/index.js';
import { DevCertificateAuthority, type IssuedCertificate } from '../src/transport/tls/index.js';
import { ADMIN_KEY, startTestNode, type TestNode, tempDir, testConfig } from './support/harness.js';
import { runCli } from './support/process-node.js';
import { freePort } from './support/sparkplug.js';
import { until } from './support/wait.js';

interface Pki {
  dir: string;
  ca: DevCertificateAuthority;
  file(name: string): string;
  write(name: string, text: string): string;
  device(id: string, issued: IssuedCertificate): { cert: string; key: string };
}

async function makePki(): Promise<Pki> {
  const dir = tempDir('thingloop-tls-');
  const ca = await DevCertificateAuthority.create({ days: 30 });
  const file = (name: string) => join(dir, name);
  const write = (name: string, text: string) => {
    writeFileSync(file(name), text, { mode: 0o600 });
    return file(name);
  };
  write('ca.pem', ca.certificatePem);
  const server = await ca.issueServer(['localhost', '127.0.0.1', '::1'], { days: 30 });
  write('server.pem', server.certificatePem);
  write('server-key.pem', server.privateKeyPem);
  return {
    dir,
    ca,
    file,
    write,
    device: (id, issued) => ({
      cert: write(`device-${id}.pem`, issued.certificatePem),
      key: write(`device-${id}-key.pem`, issued.privateKeyPem),
    }),
  };
}

/** Runs a mosquitto client; resolves with its exit code and output (never rejects). */
function mosquitto(command: 'mosquitto_pub' | 'mosquitto_sub', args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 15_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function metricValue(t: TestNode, name: string, labels: Record<string, string>): Promise<number> {
  const response = await t.api<string>('/metrics');
  const text = String(response.body);
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (wanted.every((label) => line.includes(label))) return Number(line.split(' ').pop());
  }
  return 0;
}

async function storedSamples(t: TestNode, deviceId: string): Promise<number> {
  const result = await t.api<{ items?: unknown[] }>(`/api/v1/devices/${deviceId}/telemetry?from=-1h`);
  return result.body.items?.length ?? 0;
}

/** The serial number of the certificate a new TLS connection to `port` is shown. */
function servedSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca }, () => {
      const serial = socket.getPeerCertificate().serialNumber.toLowerCase();
      socket.end();
      resolve(serial);
    });
    socket.on('error', reject);
  });
}

function httpsGet(url: string, ca: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { ca, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** True when nothing accepts TCP connections on the port. */
function refusesConnections(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('TLS listeners', () => {
  let pki: Pki;
  let t: TestNode;
  let token: string;
  let pump: { cert: string; key: string };
  let revoked: { cert: string; key: string };
  let expired: { cert: string; key: string };
  let foreign: { cert: string; key: string };
  let unregistered: { cert: string; key: string };

  before(async () => {
    pki = await makePki();
    pump = pki.device('pump-tls-1', await pki.ca.issueDevice('pump-tls-1', { days: 30 }));
    const revokedIssue = await pki.ca.issueDevice('pump-tls-2', { days: 30 });
    revoked = pki.device('pump-tls-2', revokedIssue);
    expired = pki.device(
      'pump-tls-3',
      await pki.ca.issueDevice('pump-tls-3', { days: 1, notBefore: new Date(Date.now() - 10 * 86_400_000) }),
    );
    const other = await DevCertificateAuthority.create({ days: 30 }, 'Some other CA');
    foreign = pki.device('foreign', await other.issueDevice('pump-tls-1', { days: 30 }));
    unregistered = pki.device('ghost', await pki.ca.issueDevice('pump-ghost', { days: 30 }));
    pki.write('crl.pem', await pki.ca.revocationList([revokedIssue.serialNumber], 30));
    t = await startTestNode({
      tlsCert: pki.file('server.pem'),
      tlsKey: pki.file('server-key.pem'),
      tlsCa: pki.file('ca.pem'),
      tlsCrl: pki.file('crl.pem'),
      mqttsPort: 0,
      httpsPort: 0,
    });
    ({ token } = await t.registerDevice('pump-tls-1'));
    await t.registerDevice('pump-tls-2');
    await t.registerDevice('pump-tls-3');
  });

  after(async () => {
    await t.stop();
    rmSync(pki.dir, { recursive: true, force: true });
  });

  const mqttsArgs = () => ['-h', 'localhost', '-p', String(t.node.mqttsPort), '--cafile', pki.file('ca.pem'), '-q', '1'];

  test('the node reports its TLS ports next to the plaintext ones', () => {
    assert.ok(t.node.mqttsPort && t.node.mqttsPort > 0);
    assert.ok(t.node.httpsPort && t.node.httpsPort > 0);
    assert.ok(t.node.mqttPort > 0 && t.node.httpPort > 0, 'plaintext stays on by default');
  });

  test('mosquitto_pub with --cafile and a token publishes over MQTTS; the sample is stored', async () => {
    const before = await storedSamples(t, 'pump-tls-1');
    const result = await mosquitto('mosquitto_pub', [
      ...mqttsArgs(),
      '-i',
      'mosq-token',
      '-u',
      'pump-tls-1',
      '-P',
      token,
      '-t',
      'things/pump-tls-1/telemetry',
      '-m',
      '{"speed": 41}',
    ]);
    assert.equal(result.code, 0, result.stderr);
    await until('the sample stored', async () => ((await storedSamples(t, 'pump-tls-1')) > before ? true : undefined));
  });

  test('mosquitto_pub with a client certificate logs the device in without a token (mTLS)', async () => {
    const before = await storedSamples(t, 'pump-tls-1');
    const result = await mosquitto('mosquitto_pub', [
      ...mqttsArgs(),
      '--cert',
      pump.cert,
      '--key',
      pump.key,
      '-i',
      'mosq-cert',
      '-u',
      'pump-tls-1',
      '-t',
      'things/pump-tls-1/telemetry',
      '-m',
      '{"speed": 42}',
    ]);
    assert.equal(result.code, 0, result.stderr);
    await until('the sample stored', async () => ((await storedSamples(t, 'pump-tls-1')) > before ? true : undefined));
  });

  test('mosquitto_sub with a client certificate hears its desired state; the ACL still keeps it to its own topics', async () => {
    const twin = await t.api<{ version: number }>('/api/v1/devices/pump-tls-1/twin');
    const set = await t.api('/api/v1/devices/pump-tls-1/twin', {
      method: 'PATCH',
      body: { desired: { speed: 55 }, version: twin.body.version },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const heard = await mosquitto('mosquitto_sub', [
      ...mqttsArgs(),
      '--cert',
      pump.cert,
      '--key',
      pump.key,
      '-i',
      'mosq-sub',
      '-t',
      'things/pump-tls-1/twin/desired',
      '-C',
      '1',
      '-W',
      '10',
    ]);
    assert.equal(heard.code, 0, heard.stderr);
    assert.match(heard.stdout, /"speed":\s*55/, 'the retained desired state arrives');
    const otherTopic = await mosquitto('mosquitto_sub', [
      ...mqttsArgs(),
      '--cert',
      pump.cert,
      '--key',
      pump.key,
      '-i',
      'mosq-sub-other',
      '-t',
      'things/pump-tls-2/twin/desired',
      '-C',
      '1',
      '-W',
      '2',
    ]);
    assert.equal(otherTopic.stdout, '', "another device's desired state is not delivered");
  });

  test('a certificate from another CA, an expired and a revoked one are refused, each counted by reason', async () => {
    const cases: [string, { cert: string; key: string }, string, string][] = [
      ['wrong CA', foreign, 'pump-tls-1', 'certificate_unknown_ca'],
      ['expired', expired, 'pump-tls-3', 'certificate_expired'],
      ['revoked', revoked, 'pump-tls-2', 'certificate_revoked'],
      ['unregistered device', unregistered, 'pump-ghost', 'certificate_unknown_device'],
    ];
    for (const [what, files, id, reason] of cases) {
      const counted = await metricValue(t, 'thingloop_refusals_total', { listener: 'mqtts', reason });
      const result = await mosquitto('mosquitto_pub', [
        ...mqttsArgs(),
        '--cert',
        files.cert,
        '--key',
        files.key,
        '-i',
        `mosq-${reason}`,
        '-u',
        id,
        '-t',
        `things/${id}/telemetry`,
        '-m',
        '{"speed": 1}',
      ]);
      assert.notEqual(result.code, 0, `${what}: refused`);
      assert.match(result.stderr, /not authori[sz]ed|refused/i, `${what}: ${result.stderr}`);
      assert.equal(
        await metricValue(t, 'thingloop_refusals_total', { listener: 'mqtts', reason }),
        counted + 1,
        `${what}: counted as ${reason}`,
      );
    }
  });

  test('a revoked certificate cannot be rescued with a valid token', async () => {
    const { token: token2 } = await t.registerDevice('pump-tls-2b');
    const refused = mqtt.connectAsync(`mqtts://localhost:${t.node.mqttsPort}`, {
      ca: readFileSync(pki.file('ca.pem')),
      cert: readFileSync(revoked.cert),
      key: readFileSync(revoked.key),
      username: 'pump-tls-2b',
      password: token2,
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    await assert.rejects(refused, /Not authorized|not authorized/i);
  });

  test('MQTT.js connects over mqtts with a token and with a certificate', async () => {
    const ca = readFileSync(pki.file('ca.pem'));
    const byToken = await mqtt.connectAsync(`mqtts://localhost:${t.node.mqttsPort}`, {
      ca,
      username: 'pump-tls-1',
      password: token,
      clientId: 'mqttjs-token',
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    await byToken.publishAsync('things/pump-tls-1/telemetry', JSON.stringify({ speed: 43 }), { qos: 1 });
    await byToken.endAsync();
    const byCertificate = await mqtt.connectAsync(`mqtts://localhost:${t.node.mqttsPort}`, {
      ca,
      cert: readFileSync(pump.cert),
      key: readFileSync(pump.key),
      clientId: 'mqttjs-cert',
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    await byCertificate.publishAsync('things/pump-tls-1/telemetry', JSON.stringify({ speed: 44 }), { qos: 1 });
    await byCertificate.endAsync();
  });

  test('MQTT.js connects over WebSocket: ws:// on the HTTP port and wss:// on the HTTPS port', async () => {
    const before = await storedSamples(t, 'pump-tls-1');
    const plain = await mqtt.connectAsync(`ws://127.0.0.1:${t.node.httpPort}/mqtt`, {
      username: 'pump-tls-1',
      password: token,
      clientId: 'mqttjs-ws',
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    await plain.publishAsync('things/pump-tls-1/telemetry', JSON.stringify({ speed: 45 }), { qos: 1 });
    await plain.endAsync();
    const secure = await mqtt.connectAsync(`wss://localhost:${t.node.httpsPort}/mqtt`, {
      ca: readFileSync(pki.file('ca.pem')),
      username: 'pump-tls-1',
      password: token,
      clientId: 'mqttjs-wss',
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    await secure.publishAsync('things/pump-tls-1/telemetry', JSON.stringify({ speed: 46 }), { qos: 1 });
    await secure.endAsync();
    assert.ok((await storedSamples(t, 'pump-tls-1')) >= before + 2, 'both samples stored before their PUBACKs');
    const wrongToken = mqtt.connectAsync(`ws://127.0.0.1:${t.node.httpPort}/mqtt`, {
      username: 'pump-tls-1',
      password: 'not-the-token',
      reconnectPeriod: 0,
      protocolVersion: 4,
    });
    await assert.rejects(wrongToken, /Bad username or password|Not authorized/i);
  });

  test('HTTPS serves the same API with the dev CA; a client that does not trust it is refused', async () => {
    const ca = readFileSync(pki.file('ca.pem'), 'utf8');
    const health = await httpsGet(`https://localhost:${t.node.httpsPort}/healthz`, ca);
    assert.equal(health.status, 200);
    const devices = await httpsGet(`https://localhost:${t.node.httpsPort}/api/v1/devices`, ca, { authorization: `Bearer ${ADMIN_KEY}` });
    assert.equal(devices.status, 200);
    const anonymous = await httpsGet(`https://localhost:${t.node.httpsPort}/api/v1/devices`, ca);
    assert.equal(anonymous.status, 401, 'route access is the same on HTTPS');
    const other = await DevCertificateAuthority.create({ days: 1 }, 'Untrusted');
    await assert.rejects(httpsGet(`https://localhost:${t.node.httpsPort}/healthz`, other.certificatePem), /certificate/i);
  });

  test('a replaced certificate is served to the next connection; a broken file keeps the old one and is counted', async () => {
    const ca = pki.ca.certificatePem;
    const first = await servedSerial(t.node.mqttsPort ?? 0, ca);
    const renewed = await pki.ca.issueServer(['localhost', '127.0.0.1'], { days: 60 });
    // Key first, then certificate: in between the pair does not match and must not be taken.
    pki.write('server-key.pem', renewed.privateKeyPem);
    pki.write('server.pem', renewed.certificatePem);
    const seen = await until(
      'the renewed certificate served on MQTTS',
      async () => ((await servedSerial(t.node.mqttsPort ?? 0, ca)) === renewed.serialNumber.toLowerCase() ? true : undefined),
      10_000,
    );
    assert.ok(seen && first !== renewed.serialNumber.toLowerCase());
    assert.equal(await servedSerial(t.node.httpsPort ?? 0, ca), renewed.serialNumber.toLowerCase(), 'HTTPS too');
    const failedBefore = await metricValue(t, 'thingloop_tls_reloads_total', { outcome: 'failed' });
    pki.write('server.pem', '-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n');
    await until(
      'the broken file counted',
      async () => ((await metricValue(t, 'thingloop_tls_reloads_total', { outcome: 'failed' })) > failedBefore ? true : undefined),
      10_000,
    );
    assert.equal(await servedSerial(t.node.mqttsPort ?? 0, ca), renewed.serialNumber.toLowerCase(), 'the old certificate stays');
    pki.write('server.pem', renewed.certificatePem);
  });
});

describe('TLS start-up', () => {
  test('a taken MQTTS port stops start-up naming --mqtts-port', async () => {
    const pki = await makePki();
    const taken = await startTestNode({ tlsCert: pki.file('server.pem'), tlsKey: pki.file('server-key.pem'), mqttsPort: 0, httpsPort: 0 });
    try {
      await assert.rejects(
        startCloudNode(
          testConfig({
            tlsCert: pki.file('server.pem'),
            tlsKey: pki.file('server-key.pem'),
            mqttsPort: taken.node.mqttsPort,
            httpsPort: 0,
          }),
          { logger: createLogger({ level: 'silent' }) },
        ),
        (error: Error) =>
          error instanceof StartupError && /MQTTS port \d+ is already in use/.test(error.message) && /--mqtts-port/.test(error.message),
      );
    } finally {
      await taken.stop();
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });

  test('a key that does not belong to the certificate stops start-up naming the files', async () => {
    const pki = await makePki();
    const other = await pki.ca.issueServer(['localhost'], { days: 1 });
    const wrongKey = pki.write('other-key.pem', other.privateKeyPem);
    await assert.rejects(
      startCloudNode(testConfig({ tlsCert: pki.file('server.pem'), tlsKey: wrongKey, mqttsPort: 0, httpsPort: 0 }), {
        logger: createLogger({ level: 'silent' }),
      }),
      (error: Error) => error instanceof StartupError && error.message.includes(wrongKey),
    );
    rmSync(pki.dir, { recursive: true, force: true });
  });
});

describe('--plaintext false', () => {
  test('refuses to start without a certificate, with a clear message', async () => {
    await assert.rejects(
      startCloudNode(testConfig({ plaintext: false }), { logger: createLogger({ level: 'silent' }) }),
      (error: Error) => error instanceof StartupError && /--plaintext false/.test(error.message) && /--tls-cert/.test(error.message),
    );
  });

  test('leaves no plaintext port open; MQTTS and HTTPS serve', async () => {
    const pki = await makePki();
    const [mqttPort, httpPort] = [await freePort(), await freePort()];
    const t = await startTestNode({
      plaintext: false,
      mqttPort,
      httpPort,
      tlsCert: pki.file('server.pem'),
      tlsKey: pki.file('server-key.pem'),
      mqttsPort: 0,
      httpsPort: 0,
    });
    try {
      assert.equal(t.node.mqttPort, 0);
      assert.equal(t.node.httpPort, 0);
      assert.ok(await refusesConnections(mqttPort), 'no plaintext MQTT');
      assert.ok(await refusesConnections(httpPort), 'no plaintext HTTP');
      const ready = await httpsGet(`https://localhost:${t.node.httpsPort}/readyz`, pki.ca.certificatePem);
      assert.equal(ready.status, 200, ready.body);
      const client = await mqtt.connectAsync(`mqtts://localhost:${t.node.mqttsPort}`, {
        ca: pki.ca.certificatePem,
        username: '$admin',
        password: ADMIN_KEY,
        reconnectPeriod: 0,
        protocolVersion: 4,
      });
      // The node's own Sparkplug host application found its broker on MQTTS: its STATE is online.
      const state = new Promise<string>((resolve) => client.on('message', (_topic, payload) => resolve(payload.toString())));
      await client.subscribeAsync('spBv1.0/STATE/thingloop');
      assert.match(await state, /"online":\s*true/);
      await client.endAsync();
    } finally {
      await t.stop();
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });
});

describe('edge link over TLS', () => {
  test('an edge with an https:// cloud links over wss, trusting --tls-ca; a wrong CA does not link', async () => {
    const pki = await makePki();
    const cloud = await startTestNode({
      tlsCert: pki.file('server.pem'),
      tlsKey: pki.file('server-key.pem'),
      mqttsPort: 0,
      httpsPort: 0,
    });
    const created = await cloud.api<{ token: string }>('/api/v1/edges', { method: 'POST', body: { id: 'site-tls' } });
    const other = await DevCertificateAuthority.create({ days: 1 }, 'Untrusted');
    const otherCa = pki.write('other-ca.pem', other.certificatePem);
    const edgeConfig = {
      role: 'edge' as const,
      cloudUrl: `https://localhost:${cloud.node.httpsPort}`,
      edgeId: 'site-tls',
      edgeToken: created.body.token,
      sparkplug: false,
    };
    const edge = await startTestNode({ ...edgeConfig, tlsCa: pki.file('ca.pem') });
    try {
      await until('the edge linked over TLS', async () => {
        const status = await cloud.api<{ connected: boolean }>('/api/v1/edges/site-tls');
        return status.body.connected ? true : undefined;
      });
      const node = await edge.api<{ edge: { connected?: boolean; link?: string } }>('/api/v1/node');
      assert.ok(node.status === 200);
    } finally {
      await edge.stop();
    }
    await until('the link closed', async () => {
      const status = await cloud.api<{ connected: boolean }>('/api/v1/edges/site-tls');
      return status.body.connected ? undefined : true;
    });
    const failedBefore = await metricValue(cloud, 'thingloop_refusals_total', { listener: 'https', reason: 'tls_handshake_failed' });
    const untrusting = await startTestNode({ ...edgeConfig, cloudCa: otherCa });
    try {
      // The edge hangs up in the handshake (it does not trust the cloud's certificate): the cloud counts it, twice = a retry too.
      await until('the edge refusing the handshake twice', async () => {
        const failed = await metricValue(cloud, 'thingloop_refusals_total', { listener: 'https', reason: 'tls_handshake_failed' });
        return failed >= failedBefore + 2 ? true : undefined;
      });
      const status = await cloud.api<{ connected: boolean }>('/api/v1/edges/site-tls');
      assert.equal(status.body.connected, false, 'a cloud certificate the edge does not trust is not linked to');
    } finally {
      await untrusting.stop();
      await cloud.stop();
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });
});

describe('thingloop certs dev', () => {
  test('makes a CA, a server and device certificates and a CRL that a node uses as they are', async () => {
    const out = tempDir('thingloop-certs-');
    const help = await runCli({ args: ['certs', 'dev', '--help'] });
    assert.equal(help.code, 0);
    assert.match(help.stdout, /--device <id>/);
    const made = await runCli({ args: ['certs', 'dev', '--out', out, '--device', 'cli-pump', '--device', 'cli-old'] });
    assert.equal(made.code, 0, made.stderr);
    for (const name of ['ca.pem', 'ca-key.pem', 'server.pem', 'server-key.pem', 'device-cli-pump.pem', 'device-cli-pump-key.pem']) {
      assert.ok(statSync(join(out, name)).isFile(), name);
    }
    assert.equal(statSync(join(out, 'server-key.pem')).mode & 0o777, 0o600, 'keys are private');
    const caBefore = readFileSync(join(out, 'ca.pem'), 'utf8');
    const revoked = await runCli({ args: ['certs', 'dev', '--out', out, '--revoke', 'cli-old'] });
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal(readFileSync(join(out, 'ca.pem'), 'utf8'), caBefore, 'a second run reuses the CA');
    const unknown = await runCli({ args: ['certs', 'dev', '--out', out, '--revoke', 'never-issued'] });
    assert.notEqual(unknown.code, 0);
    assert.match(unknown.stderr, /cannot revoke never-issued/);

    const t = await startTestNode({
      tlsCert: join(out, 'server.pem'),
      tlsKey: join(out, 'server-key.pem'),
      tlsCa: join(out, 'ca.pem'),
      tlsCrl: join(out, 'crl.pem'),
      mqttsPort: 0,
      httpsPort: 0,
    });
    try {
      await t.registerDevice('cli-pump');
      await t.registerDevice('cli-old');
      const publish = (id: string) =>
        mosquitto('mosquitto_pub', [
          ...['-h', 'localhost', '-p', String(t.node.mqttsPort), '--cafile', join(out, 'ca.pem'), '-q', '1'],
          ...['--cert', join(out, `device-${id}.pem`), '--key', join(out, `device-${id}-key.pem`), '-i', `cli-${id}`],
          ...['-t', `things/${id}/telemetry`, '-m', '{"speed": 12}'],
        ]);
      const accepted = await publish('cli-pump');
      assert.equal(accepted.code, 0, accepted.stderr);
      const refused = await publish('cli-old');
      assert.notEqual(refused.code, 0, 'the revoked device is refused');
      assert.equal(await metricValue(t, 'thingloop_refusals_total', { listener: 'mqtts', reason: 'certificate_revoked' }), 1);
    } finally {
      await t.stop();
      rmSync(out, { recursive: true, force: true });
    }
  });
});
