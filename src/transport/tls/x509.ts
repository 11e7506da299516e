// @peculiar/x509 needs a Reflect polyfill loaded before it; every use in this module goes through here.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(x509.CryptoProvider.DEFAULT, webcrypto as unknown as ReturnType<typeof x509.cryptoProvider.get>);

export { x509 };
