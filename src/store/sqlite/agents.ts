import {
  type AgentDefinition,
  type AgentDeviceState,
  type AgentStore,
  type Alarm,
  type AlarmQuery,
  type AlarmRepository,
  type DecisionQuery,
  type DecisionRecord,
  verificationOpen,
} from '../../agents/index.js';
import type { SqliteDatabase } from './database.js';

/** Open: the engine still has work on it (an approval, or a verification pending, holding, or verified and watched). */
const isOpen = (d: DecisionRecord) => d.outcome === 'awaiting-approval' || verificationOpen(d.verification);

export class SqliteAgentStore implements AgentStore {
  private readonly saveState;
  private readonly saveStateBatch;
  private readonly insertDecisionRow;
  private readonly updateDecisionRow;
  private readonly decisionById;

  constructor(private readonly db: SqliteDatabase) {
    // Decisions are written and read on the loop (per sample while a verification is pending).
    this.insertDecisionRow = db.prepare(
      'INSERT INTO decisions (id, agent_id, device_id, ts, outcome, open, record) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.updateDecisionRow = db.prepare('UPDATE decisions SET outcome = ?, open = ?, record = ? WHERE id = ?');
    this.decisionById = db.prepare<[string], { record: string }>('SELECT record FROM decisions WHERE id = ?');
    this.saveState = db.prepare(
      'INSERT INTO agent_states (agent_id, device_id, state) VALUES (?, ?, ?) ON CONFLICT (agent_id, device_id) DO UPDATE SET state = excluded.state',
    );
    this.saveStateBatch = db.transaction((entries: { agentId: string; deviceId: string; state: AgentDeviceState }[]) => {
      for (const e of entries) this.saveState.run(e.agentId, e.deviceId, JSON.stringify(e.state));
    });
  }

  async definitions(): Promise<AgentDefinition[]> {
    return this.db
      .prepare<[], { definition: string }>('SELECT definition FROM agents ORDER BY id')
      .all()
      .map((row) => JSON.parse(row.definition) as AgentDefinition);
  }
  async putDefinition(definition: AgentDefinition): Promise<void> {
    this.db
      .prepare('INSERT INTO agents (id, definition) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET definition = excluded.definition')
      .run(definition.id, JSON.stringify(definition));
  }
  async deleteDefinition(id: string): Promise<void> {
    this.db.prepare('DELETE FROM agents WHERE id = ?').run(id);
  }
  async loadStates(agentId: string): Promise<Record<string, AgentDeviceState>> {
    const rows = this.db
      .prepare<[string], { device_id: string; state: string }>('SELECT device_id, state FROM agent_states WHERE agent_id = ?')
      .all(agentId);
    return Object.fromEntries(rows.map((row) => [row.device_id, JSON.parse(row.state) as AgentDeviceState]));
  }
  async saveStates(entries: { agentId: string; deviceId: string; state: AgentDeviceState }[]): Promise<void> {
    this.saveStateBatch(entries);
  }
  async deleteStates(agentId: string): Promise<void> {
    this.db.prepare('DELETE FROM agent_states WHERE agent_id = ?').run(agentId);
  }
  async insertDecision(d: DecisionRecord): Promise<void> {
    this.insertDecisionRow.run(d.id, d.agentId, d.deviceId, d.ts, d.outcome, isOpen(d) ? 1 : 0, JSON.stringify(d));
  }
  async updateDecision(d: DecisionRecord): Promise<void> {
    this.updateDecisionRow.run(d.outcome, isOpen(d) ? 1 : 0, JSON.stringify(d), d.id);
  }
  async decision(id: string): Promise<DecisionRecord | undefined> {
    const row = this.decisionById.get(id);
    return row && (JSON.parse(row.record) as DecisionRecord);
  }
  async decisions(query: DecisionQuery): Promise<DecisionRecord[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    const add = (clause: string, value: string | number | undefined) => {
      if (value === undefined) return;
      where.push(clause);
      params.push(value);
    };
    add('agent_id = ?', query.agentId);
    add('device_id = ?', query.deviceId);
    add('outcome = ?', query.outcome);
    add('ts >= ?', query.from);
    add('ts < ?', query.to);
    const sql = `SELECT record FROM decisions ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ts DESC, rowid DESC LIMIT ?`;
    return this.db
      .prepare<(string | number)[], { record: string }>(sql)
      .all(...params, query.limit)
      .map((row) => JSON.parse(row.record) as DecisionRecord);
  }
  async openDecisions(): Promise<DecisionRecord[]> {
    return this.db
      .prepare<[], { record: string }>('SELECT record FROM decisions WHERE open = 1 ORDER BY ts')
      .all()
      .map((row) => JSON.parse(row.record) as DecisionRecord);
  }
  async getSetting(key: string): Promise<string | undefined> {
    return this.db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE key = ?').get(key)?.value;
  }
  async setSetting(key: string, value: string): Promise<void> {
    this.db
      .prepare('INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value')
      .run(key, value);
  }
}

export class SqliteAlarms implements AlarmRepository {
  private readonly insertRow;
  private readonly updateRow;
  private readonly byId;

  constructor(private readonly db: SqliteDatabase) {
    this.insertRow = db.prepare(
      'INSERT INTO alarms (id, agent_id, device_id, type, state, raised_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)',
    );
    this.updateRow = db.prepare('UPDATE alarms SET state = ?, record = ? WHERE id = ?');
    this.byId = db.prepare<[string], { record: string }>('SELECT record FROM alarms WHERE id = ?');
  }

  async insert(alarm: Alarm): Promise<void> {
    this.insertRow.run(alarm.id, alarm.agentId, alarm.deviceId, alarm.type, alarm.state, alarm.raisedAt, JSON.stringify(alarm));
  }
  async update(alarm: Alarm): Promise<void> {
    this.updateRow.run(alarm.state, JSON.stringify(alarm), alarm.id);
  }
  async get(id: string): Promise<Alarm | undefined> {
    const row = this.byId.get(id);
    return row && (JSON.parse(row.record) as Alarm);
  }
  async findOpen(agentId: string, deviceId: string, type: string): Promise<Alarm | undefined> {
    const row = this.db
      .prepare<[string, string, string], { record: string }>(
        "SELECT record FROM alarms WHERE agent_id = ? AND device_id = ? AND type = ? AND state != 'cleared' LIMIT 1",
      )
      .get(agentId, deviceId, type);
    return row && (JSON.parse(row.record) as Alarm);
  }
  async list(query: AlarmQuery): Promise<Alarm[]> {
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (query.state === 'open') where.push("state != 'cleared'");
    else if (query.state) {
      where.push('state = ?');
      params.push(query.state);
    }
    if (query.deviceId) {
      where.push('device_id = ?');
      params.push(query.deviceId);
    }
    if (query.agentId) {
      where.push('agent_id = ?');
      params.push(query.agentId);
    }
    if (query.before !== undefined) {
      where.push('raised_at < ?');
      params.push(query.before);
    }
    const sql = `SELECT record FROM alarms ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY raised_at DESC LIMIT ?`;
    return this.db
      .prepare<(string | number)[], { record: string }>(sql)
      .all(...params, query.limit)
      .map((row) => JSON.parse(row.record) as Alarm);
  }
}
