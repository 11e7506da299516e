/**
 * Modbus TCP binding: the node is the Modbus client and polls PLCs. A device's register map lives
 * in its thing model as W3C WoT Modbus forms (`modbus+tcp://{{host}}:{{port}}/{{unitId}}/40001`,
 * `modv:entity`, `modv:type`, word order, `modv:pollingTime`, Thingloop's `modv:scale` and
 * `modv:offset`); nearby registers are read together, one connection per host:port serves every
 * unit behind it, desired values are written and read back, actions write coil and register
 * sequences, and an unreachable PLC goes offline and is retried with backoff.
 */
export { ModbusBinding, type ModbusBindingOptions, type PollRound, type PollState } from './binding.js';
export { EXCEPTION_NAMES, ModbusFault } from './connection.js';
export {
  type ActionMapping,
  coalesce,
  decodeRegisters,
  encodeRegisters,
  MODBUS_ENTITIES,
  type ModbusEntity,
  protocolAddress,
  REGISTER_TYPES,
  type ReadBlock,
  type RegisterMap,
  type RegisterPoint,
  type RegisterType,
  registerMap,
  type WriteStep,
} from './register-map.js';
