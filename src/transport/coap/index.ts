/**
 * CoAP binding: constrained and NB-IoT devices reach the node over CoAP (RFC 7252, Observe RFC
 * 7641, block-wise RFC 7959) at `coap://node/things/{id}/…`, authenticated by their device token
 * (option 65003, or `?t=` for stacks that cannot set options). Uplinks become the gateway's
 * `DeviceMessage`s and are answered once durable; desired state is observed and invocations wait
 * here until the device observes or fetches them. No DTLS (no maintained DTLS server for Node).
 */
export { CoapBinding, type CoapBindingOptions, type CoapLimits, DEFAULT_COAP_LIMITS } from './binding.js';
export type { PendingAction } from './mailbox.js';
export { TOKEN_OPTION, TOKEN_QUERY } from './requests.js';
