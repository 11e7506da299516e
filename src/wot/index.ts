/**
 * W3C Web of Things out: a device's Thing Description (TD 1.1), so WoT consumers (node-wot and
 * others) find its properties, actions and events, their data schemas and units, and a form for
 * every way the platform reaches it: the HTTP API, the broker, and its fieldbus forms with the
 * device's binding parameters filled in.
 */
export { deviceThingDescription, deviceUrn, type ThingDescription, type ThingEndpoints } from './thing-description.js';
