/** The actuator model of the twin, action and agent benchmarks: a reading, a writable setpoint, an action. */
export const ACTUATOR_MODEL = {
  id: 'bench-actuator',
  document: {
    '@type': 'tm:ThingModel',
    title: 'Benchmark actuator',
    properties: {
      temp: { type: 'number', minimum: -50, maximum: 200, readOnly: true },
      setpoint: { type: 'number', minimum: 0, maximum: 1e9 },
    },
    actions: { reset: { output: { type: 'object' } } },
  },
};
