import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Command } from 'commander';
import { certificateSerial, DevCertificateAuthority, revokedSerials } from '../transport/tls/index.js';

interface DevOptions {
  out: string;
  device: string[];
  revoke: string[];
  days: string;
  host: string[];
  tenant?: string;
}

/** Device ids become file names: the registry's own id characters, nothing a path could be made of. */
const DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

const collect = (value: string, previous: string[]) => [...previous, value];

async function writePem(path: string, text: string, secret: boolean): Promise<void> {
  await writeFile(path, text, { mode: secret ? 0o600 : 0o644 });
  // An existing file keeps its mode on overwrite: a key must still end up private.
  if (secret) await chmod(path, 0o600);
}

/** `thingloop certs …`: certificates for trying TLS out. */
export function addCertsCommand(program: Command): void {
  const certs = program.command('certs').description('certificates for TLS and device client certificates (mTLS)');
  certs
    .command('dev')
    .description(
      'make a local CA, a server certificate for this machine and device client certificates (for trying TLS out, not production)',
    )
    .requiredOption('--out <dir>', 'directory to write the PEM files to (created if missing; a CA already there is reused)')
    .option('--device <id>', 'issue a client certificate for this device id (repeatable)', collect, [])
    .option('--revoke <id>', "revoke this device's certificate (device-ID.pem in --out) and write crl.pem (repeatable)", collect, [])
    .option('--days <n>', 'validity of new certificates, in days', '365')
    .option('--host <name>', 'another DNS name or IP address for the server certificate (repeatable)', collect, [])
    .option('--tenant <id>', "put this tenant in the device certificates' subject O (none: the default tenant)")
    .addHelpText(
      'after',
      [
        '',
        'Writes ca.pem and ca-key.pem (the CA; reused when present), server.pem and server-key.pem (for',
        'localhost, 127.0.0.1 and ::1, plus --host), device-ID.pem and device-ID-key.pem (subject CN = ID),',
        'and crl.pem when revoking (it keeps the serials an earlier crl.pem revoked). Keys are ECDSA P-256, mode 0600.',
        '',
        'Example:',
        '  thingloop certs dev --out ./certs --device pump-0001',
        '  thingloop serve --tls-cert certs/server.pem --tls-key certs/server-key.pem --tls-ca certs/ca.pem',
        '  mosquitto_pub -h localhost -p 8883 --cafile certs/ca.pem --cert certs/device-pump-0001.pem \\',
        '    --key certs/device-pump-0001-key.pem -u pump-0001 -t things/pump-0001/telemetry -m \'{"speed": 40}\'',
        '  thingloop certs dev --out ./certs --revoke pump-0001   # then serve with --tls-crl certs/crl.pem',
        '',
      ].join('\n'),
    )
    .action(async (options: DevOptions) => {
      const days = Number(options.days);
      if (!Number.isInteger(days) || days < 1 || days > 3650) throw new Error('--days must be a whole number of days from 1 to 3650');
      for (const id of [...options.device, ...options.revoke]) {
        if (!DEVICE_ID.test(id)) throw new Error(`"${id}" is not a device id (letters, digits and . _ : -; at most 128)`);
      }
      const out = options.out;
      await mkdir(out, { recursive: true, mode: 0o700 });
      const caPath = join(out, 'ca.pem');
      const caKeyPath = join(out, 'ca-key.pem');
      const reuse = existsSync(caPath) && existsSync(caKeyPath);
      const authority = reuse
        ? await DevCertificateAuthority.load(await readFile(caPath, 'utf8'), await readFile(caKeyPath, 'utf8'))
        : await DevCertificateAuthority.create({ days: Math.max(days, 3650) });
      const written: string[] = [];
      if (!reuse) {
        await writePem(caPath, authority.certificatePem, false);
        await writePem(caKeyPath, await authority.privateKeyPem(), true);
        written.push(caPath, caKeyPath);
      }
      // The server certificate is made on the first run (and again when names are added); a rerun that only
      // issues or revokes device certificates leaves it alone, so a running node does not reload for nothing.
      if (!existsSync(join(out, 'server.pem')) || options.host.length > 0 || !reuse) {
        const server = await authority.issueServer(['localhost', '127.0.0.1', '::1', ...options.host], { days });
        await writePem(join(out, 'server.pem'), server.certificatePem, false);
        await writePem(join(out, 'server-key.pem'), server.privateKeyPem, true);
        written.push(join(out, 'server.pem'), join(out, 'server-key.pem'));
      }
      for (const id of options.device) {
        const device = await authority.issueDevice(id, { days }, options.tenant);
        await writePem(join(out, `device-${id}.pem`), device.certificatePem, false);
        await writePem(join(out, `device-${id}-key.pem`), device.privateKeyPem, true);
        written.push(join(out, `device-${id}.pem`), join(out, `device-${id}-key.pem`));
      }
      if (options.revoke.length > 0) {
        const crlPath = join(out, 'crl.pem');
        const serials = new Set(existsSync(crlPath) ? revokedSerials(await readFile(crlPath, 'utf8')) : []);
        for (const id of options.revoke) {
          const path = join(out, `device-${id}.pem`);
          if (!existsSync(path)) throw new Error(`cannot revoke ${id}: ${path} does not exist (issue it with --device ${id} first)`);
          serials.add(certificateSerial(await readFile(path, 'utf8')));
        }
        await writePem(crlPath, await authority.revocationList([...serials], days), false);
        written.push(crlPath);
      }
      process.stdout.write(
        `${reuse ? `using the CA in ${caPath}` : `made a CA (${authority.subject})`}\n${written.map((path) => `wrote ${path}`).join('\n')}\n`,
      );
    });
}
