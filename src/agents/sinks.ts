import type { Alarm, AlarmHistoryEntry, AlarmSink } from './alarms.js';

/**
 * What a sink sends for an alarm event: the event and the alarm without its own delivery
 * records (they are the sinks' bookkeeping, and would grow with every notification).
 */
export interface AlarmNotice {
  event: AlarmHistoryEntry['event'];
  alarm: Omit<Alarm, 'notifications'> & { notifications: undefined };
}

export function alarmNotice(alarm: Alarm, event: AlarmHistoryEntry): AlarmNotice {
  return { event: event.event, alarm: { ...alarm, notifications: undefined } };
}

/**
 * A sink that publishes each notice once (a broker takes it or the publish throws): delivered
 * after one attempt. The MQTT sink is one, publishing on the device's alarm topic.
 */
export function publishingSink(name: string, publish: (deviceId: string, notice: AlarmNotice) => Promise<void>): AlarmSink {
  return {
    name,
    async deliver(alarm, event) {
      await publish(alarm.deviceId, alarmNotice(alarm, event));
      return { status: 'delivered', attempts: 1 };
    },
  };
}

/** A sink whose transport retries on its own and reports the outcome (the webhook). */
export function postingSink(name: string, post: (notice: AlarmNotice) => ReturnType<AlarmSink['deliver']>): AlarmSink {
  return { name, deliver: (alarm, event) => post(alarmNotice(alarm, event)) };
}
