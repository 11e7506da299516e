/** A compiled model shared by the unit tests of telemetry queries and decoding. */
import { type CompiledThingModel, compileThingModel } from '../../src/model/index.js';

export function pumpModel(): CompiledThingModel {
  return compileThingModel({
    id: 'pump',
    version: 2,
    createdAt: 0,
    document: {
      title: 'Pump',
      properties: {
        speed: { type: 'number', minimum: 0, maximum: 100 },
        temperature: { type: 'number' },
        starts: { type: 'integer', minimum: 0 },
        running: { type: 'boolean' },
        mode: { type: 'string', enum: ['auto', 'manual'] },
      },
    },
  });
}
